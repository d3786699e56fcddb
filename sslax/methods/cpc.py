"""Contrastive predictive coding (van den Oord et al. 2018, "Representation Learning with
Contrastive Predictive Coding") on log-mel frames.

The encoder's convolutional front end gives local latents z_t; its causal transformer gives
contexts c_t from frames <= t. For each step ahead k (config.cpc.steps_ahead) a linear map
W_k predicts z_{t+k} from c_t, scored by InfoNCE against every other (time, example) latent
of the global batch (`losses.next_frame_contrastive`). The evaluators use the mean of c over
the real frames of the whole clip.
"""
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax import methods
from sslax import models
from sslax.methods import apc
from sslax.models import audio as audio_models


def make(config: ml_collections.ConfigDict) -> methods.Method:
  front = apc.front_end(config)
  steps = tuple(config.cpc.steps_ahead)
  model = audio_models.WithHeads(models.make_encoder(config.model, causal=True),
                                 out_dim=config.model.width, num_outputs=len(steps))

  def loss(params, model_state, extra, batch, rng):
    del extra
    x_BxFxM, mask_BxF = front.features(*front.crops(rng, batch))
    _, z_BxFxD, preds = model.apply({'params': params}, x_BxFxM, mask_BxF)
    values, metrics = [], {}
    for k, pred_BxFxD in zip(steps, preds):
      pair_mask = mask_BxF[:, :-k] & mask_BxF[:, k:]
      logits, weights = losses.next_frame_contrastive_logits(
          pred_BxFxD[:, :-k], z_BxFxD[:, k:], pair_mask, temperature=config.cpc.temperature)
      values.append(losses.next_frame_contrastive(
          pred_BxFxD[:, :-k], z_BxFxD[:, k:], pair_mask, temperature=config.cpc.temperature))
      hits = (jnp.argmax(logits, -1) == jnp.arange(logits.shape[0])).astype(weights.dtype)
      metrics[f'acc_k{k}'] = jnp.sum(hits * weights) / jnp.maximum(jnp.sum(weights), 1.0)
    return jnp.mean(jnp.stack(values)), (model_state, metrics)

  return methods.Method(init=apc.make_init(model, front), loss=loss,
                        update_extra=methods.no_extra, embed=apc.make_embed(model, front),
                        embed_sequence=apc.make_embed_sequence(model, front))
