"""Clip contrast: two random segments of the same recording are a positive pair (COLA;
Saeed et al. 2021, "Contrastive Learning of General-Purpose Audio Representations"), scored
by SimCLR's NT-Xent with negatives from the whole global batch (`losses.info_nce`).

Each segment gets its own random crop, gain, noise and SpecAugment time/frequency masks; a
bidirectional encoder's features are mean-pooled over real frames and projected by an MLP.
The evaluators use the pooled features before the projector, on the whole clip.

Large batches, as SimCLR: `clip_contrast.chunked_loss` (losses.nt_xent_chunked, [2n, 2N]
logits per device) and GradCache (grad_accum_steps > 1; exact: no BatchNorm anywhere).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import methods
from sslax import models
from sslax.augment import audio as audio_aug
from sslax.methods import apc
from sslax.methods import simclr
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
                              use_bn=False, dtype=models.compute_dtype(config.model)))

  def view(key, batch):
    crop_key, mask_key = jax.random.split(key)
    x_BxFxM, mask_BxF = front.features(*front.crops(crop_key, batch))
    keys_B = audio_aug.per_example(mask_key, x_BxFxM.shape[0])
    x_BxFxM = jax.vmap(lambda k, x: audio_aug.spec_augment(
        k, x, time_masks=a.time_masks, time_width=a.time_width, freq_masks=a.freq_masks,
        freq_width=a.freq_width))(keys_B, x_BxFxM)
    return x_BxFxM, mask_BxF

  mesh = methods.chunked_loss_mesh(config, 'clip_contrast')

  def embed_inputs(batch, rng):
    """Both segments of every clip, stacked for one forward pass: ([2N, F, M] frames,
    [2N, F] masks)."""
    (x_a, m_a), (x_b, m_b) = (view(jax.random.fold_in(rng, i), batch) for i in range(2))
    return jnp.concatenate([x_a, x_b]), jnp.concatenate([m_a, m_b])

  def forward(params, model_state, extra, inputs):
    del extra
    return model.apply({'params': params}, *inputs)[1], model_state

  def loss_from_embeddings(z_2NxP):
    return simclr.nt_xent(z_2NxP, temperature=c.temperature, mesh=mesh)

  return apc.make_split_method(model, front, embed_inputs, forward, loss_from_embeddings)
