"""Clip contrast: two random segments of the same recording are a positive pair (COLA;
Saeed et al. 2021, "Contrastive Learning of General-Purpose Audio Representations"), scored
by SimCLR's NT-Xent with negatives from the whole global batch (`losses.info_nce`).

Each segment gets its own random crop, gain, noise and SpecAugment time/frequency masks; a
bidirectional encoder's features are mean-pooled over real frames and projected by an MLP.
The evaluators use the pooled features before the projector, on the whole clip.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax import methods
from sslax import models
from sslax.augment import audio as audio_aug
from sslax.methods import apc
from sslax.models import audio as audio_models
from sslax.models import heads


class ClipModel(nn.Module):
  encoder: nn.Module
  projector: nn.Module

  def __call__(self, x_BxFxM, mask_BxF):
    """→ (frame features h [B, F, D], projections of their masked mean [B, P])."""
    h_BxFxD, _ = self.encoder(x_BxFxM, mask_BxF)
    return h_BxFxD, self.projector(audio_models.masked_mean(h_BxFxD, mask_BxF), train=True)


def make(config: ml_collections.ConfigDict) -> methods.Method:
  front = apc.front_end(config)
  c, a = config.clip_contrast, config.audio
  model = ClipModel(models.make_encoder(config.model, causal=False),
                    heads.MLP(hidden_dims=tuple(c.proj_hidden_dims), out_dim=c.proj_dim,
                              use_bn=False))

  def view(key, batch):
    crop_key, mask_key = jax.random.split(key)
    x_BxFxM, mask_BxF = front.features(*front.crops(crop_key, batch))
    keys_B = audio_aug.per_example(mask_key, x_BxFxM.shape[0])
    x_BxFxM = jax.vmap(lambda k, x: audio_aug.spec_augment(
        k, x, time_masks=a.time_masks, time_width=a.time_width, freq_masks=a.freq_masks,
        freq_width=a.freq_width))(keys_B, x_BxFxM)
    return x_BxFxM, mask_BxF

  def loss(params, model_state, extra, batch, rng):
    del extra
    (x_a, m_a), (x_b, m_b) = (view(jax.random.fold_in(rng, i), batch) for i in range(2))
    # Both segments in one forward pass.
    _, z_2NxP = model.apply({'params': params}, jnp.concatenate([x_a, x_b]),
                            jnp.concatenate([m_a, m_b]))
    z_a, z_b = jnp.split(z_2NxP, 2)
    logits, labels = losses.nt_xent_logits(z_a, z_b, temperature=c.temperature)
    value = losses.info_nce(z_a, z_b, temperature=c.temperature)
    return value, (model_state, {'contrastive_acc': losses.contrastive_accuracy(logits, labels)})

  return methods.Method(init=apc.make_init(model, front), loss=loss,
                        update_extra=methods.no_extra, embed=apc.make_embed(model, front),
                        embed_sequence=apc.make_embed_sequence(model, front))
