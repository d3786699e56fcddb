"""Contrastive predictive coding (van den Oord et al. 2018, "Representation Learning with
Contrastive Predictive Coding") on log-mel frames.

The encoder's convolutional front end gives local latents z_t; its causal transformer gives
contexts c_t from frames <= t. For each step ahead k (config.cpc.steps_ahead) a linear map
W_k predicts z_{t+k} from c_t, scored by InfoNCE against every other (time, example) latent
of the global batch (`losses.next_frame_contrastive`). The evaluators use the mean of c over
the real frames of the whole clip.

Large batches: the logits are [B F, B F] per k. `cpc.chunked_loss` splits their rows by
example over the devices (each keeps its own examples' frames as anchors against every
gathered latent: losses.next_frame_contrastive_chunked); grad_accum_steps > 1 runs GradCache
with per-example embeddings (the predictions, the latents z and the frame mask), exact because
the encoder never mixes examples.
"""
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax import methods
from sslax import models
from sslax import sharding
from sslax.methods import apc
from sslax.models import audio as audio_models


def make(config: ml_collections.ConfigDict) -> methods.Method:
  front = apc.front_end(config)
  steps = tuple(config.cpc.steps_ahead)
  temperature = config.cpc.temperature
  model = audio_models.WithHeads(models.make_encoder(config.model, causal=True),
                                 out_dim=config.model.width, num_outputs=len(steps))
  mesh = methods.chunked_loss_mesh(config, 'cpc')

  def embed_inputs(batch, rng):
    return front.features(*front.crops(rng, batch))

  def forward(params, model_state, extra, inputs):
    del extra
    x_BxFxM, mask_BxF = inputs
    _, z_BxFxD, preds = model.apply({'params': params}, x_BxFxM, mask_BxF)
    # The mask rides along as a float leaf so GradCache can chunk it with the embeddings.
    return {'preds': tuple(preds), 'z': z_BxFxD,
            'mask': mask_BxF.astype(jnp.float32)}, model_state

  def one_k(pred_BxFxD, z_BxFxD, pair_mask):
    if mesh is not None:
      return losses.next_frame_contrastive_chunked(pred_BxFxD, z_BxFxD, pair_mask,
                                                   temperature=temperature, mesh=mesh,
                                                   axes=sharding.BATCH_AXES)
    logits, weights = losses.next_frame_contrastive_logits(pred_BxFxD, z_BxFxD, pair_mask,
                                                           temperature=temperature)
    value = losses.next_frame_contrastive(pred_BxFxD, z_BxFxD, pair_mask,
                                          temperature=temperature)
    hits = (jnp.argmax(logits, -1) == jnp.arange(logits.shape[0])).astype(weights.dtype)
    return value, jnp.sum(hits * weights) / jnp.maximum(jnp.sum(weights), 1.0)

  def loss_from_embeddings(embeddings):
    z_BxFxD, mask_BxF = embeddings['z'], jax.lax.stop_gradient(embeddings['mask']) > 0.5
    values, metrics = [], {}
    for k, pred_BxFxD in zip(steps, embeddings['preds']):
      pair_mask = mask_BxF[:, :-k] & mask_BxF[:, k:]
      value, metrics[f'acc_k{k}'] = one_k(pred_BxFxD[:, :-k], z_BxFxD[:, k:], pair_mask)
      values.append(value)
    return jnp.mean(jnp.stack(values)), metrics

  return apc.make_split_method(model, front, embed_inputs, forward, loss_from_embeddings)
