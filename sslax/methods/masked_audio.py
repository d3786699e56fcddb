"""Masked-segment prediction on log-mel frames: spans of frames are hidden (set to 0, the
mean after normalisation) and a bidirectional encoder reconstructs them; MSE on the hidden
frames only (`losses.masked_mse`). Span masking as in wav2vec 2.0 (Baevski et al. 2020);
the regression target as in Mockingjay (Liu et al. 2020, "Mockingjay: Unsupervised Speech
Representation Learning with Deep Bidirectional Transformer Encoders").

The evaluators use the mean of the contextual features over the real frames of the whole,
unmasked clip.
"""
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax import methods
from sslax import models
from sslax.augment import masking
from sslax.methods import apc
from sslax.models import audio as audio_models


def make(config: ml_collections.ConfigDict) -> methods.Method:
  front = apc.front_end(config)
  m = config.masked_audio
  model = audio_models.WithHeads(models.make_encoder(config.model, causal=False),
                                 out_dim=config.audio.n_mels, num_outputs=1)

  def loss(params, model_state, extra, batch, rng):
    del extra
    crop_key, mask_key = jax.random.split(rng)
    x_BxFxM, mask_BxF = front.features(*front.crops(crop_key, batch))
    hidden_BxF = masking.frame_span_mask(mask_key, mask_BxF, start_prob=m.start_prob,
                                         span=m.span)
    inputs_BxFxM = jnp.where(hidden_BxF[..., None], 0.0, x_BxFxM)
    _, _, (pred_BxFxM,) = model.apply({'params': params}, inputs_BxFxM, mask_BxF)
    value = losses.masked_mse(pred_BxFxM, x_BxFxM, hidden_BxF)
    metrics = {'masked_fraction': hidden_BxF.sum() / jnp.maximum(mask_BxF.sum(), 1)}
    return value, (model_state, metrics)

  return methods.Method(init=apc.make_init(model, front), loss=loss,
                        update_extra=methods.no_extra, embed=apc.make_embed(model, front),
                        embed_sequence=apc.make_embed_sequence(model, front))
