"""Frame prediction losses (audio and video): masked-frame reconstruction, next-frame regression
(APC) and next-frame InfoNCE (CPC) with the global batch's negatives."""
import jax
import jax.numpy as jnp
import optax

from sslax.losses.numerics import MASKED_LOGIT, l2_normalize, loss_dtype


def masked_mse(pred_xD: jax.Array, target_xD: jax.Array, weights_x: jax.Array) -> jax.Array:
  """Mean squared error over the weighted positions of the whole (global) batch.

  MAE's reconstruction loss (He et al. 2022, "Masked Autoencoders Are Scalable Vision
  Learners", section 3: per-patch pixels [N, L, P] with a [N, L] mask of the hidden patches)
  and masked-frame reconstruction of log-mel frames: only positions hidden from the model
  count.

  Args:
    pred_xD: [..., D] predictions.
    target_xD: [..., D] targets (no gradient flows into them).
    weights_x: [...] 1 where a position counts, 0 elsewhere (bool or float).

  Returns:
    Scalar: the mean over weighted positions and over D; 0 when nothing is weighted.
  """
  dtype = loss_dtype(jnp.result_type(pred_xD, target_xD))
  err_x = jnp.mean(jnp.square(pred_xD.astype(dtype)
                              - jax.lax.stop_gradient(target_xD).astype(dtype)), axis=-1)
  weights_x = weights_x.astype(dtype)
  return jnp.sum(err_x * weights_x) / jnp.maximum(jnp.sum(weights_x), 1.0)


def next_frame_regression(pred_BxTxD: jax.Array, target_BxTxD: jax.Array, mask_BxT: jax.Array,
                          k: int, *, distance: str = 'l1') -> jax.Array:
  """Autoregressive predictive coding (Chung et al. 2019, "An Unsupervised Autoregressive Model
  for Speech Representation Learning", eq. 2): the prediction made at step t is compared with
  the target frame at t + k.

  A pair (t, t + k) counts when both frames are real (mask true); the mean is over the
  global batch's counted pairs and over D, so it does not depend on sharding.

  Args:
    pred_BxTxD: [B, T, D] predictions, made from frames <= t by a causal model.
    target_BxTxD: [B, T, D] target frames (no gradient flows into them).
    mask_BxT: [B, T] true for real frames.
    k: steps ahead, 1 <= k < T.
    distance: 'l1' (APC's choice) or 'l2' (squared error).

  Returns:
    Scalar float32 (float64 for float64 inputs).
  """
  t = pred_BxTxD.shape[1]
  if not 1 <= k < t:
    raise ValueError(f'k={k} steps ahead needs 1 <= k < T={t} frames.')
  if distance not in ('l1', 'l2'):
    raise ValueError(f"distance={distance!r} is unknown; choose 'l1' or 'l2'.")
  dtype = loss_dtype(jnp.result_type(pred_BxTxD, target_BxTxD))
  diff = (pred_BxTxD[:, :-k].astype(dtype)
          - jax.lax.stop_gradient(target_BxTxD[:, k:]).astype(dtype))
  err_BxT = jnp.mean(jnp.abs(diff) if distance == 'l1' else jnp.square(diff), axis=-1)
  weights_BxT = (mask_BxT[:, :-k] & mask_BxT[:, k:]).astype(dtype)
  return jnp.sum(err_BxT * weights_BxT) / jnp.maximum(jnp.sum(weights_BxT), 1.0)


def next_frame_contrastive_logits(context_BxTxD: jax.Array, future_BxTxD: jax.Array,
                                  mask_BxT: jax.Array, *,
                                  temperature: float) -> tuple[jax.Array, jax.Array]:
  """Logits [B*T, B*T] of `next_frame_contrastive` (masked columns at a large negative) and
  the weights [B*T] of its rows (1 for real anchors)."""
  if context_BxTxD.ndim != 3 or context_BxTxD.shape != future_BxTxD.shape:
    raise ValueError(f'context and future must both be [B, T, D]; got {context_BxTxD.shape} '
                     f'and {future_BxTxD.shape}.')
  b, t, d = context_BxTxD.shape
  dtype = loss_dtype(jnp.result_type(context_BxTxD, future_BxTxD))
  c_NxD = l2_normalize(context_BxTxD.reshape(b * t, d).astype(dtype))
  f_NxD = l2_normalize(future_BxTxD.reshape(b * t, d).astype(dtype))
  logits_NxN = jnp.matmul(c_NxD, f_NxD.T, precision=jax.lax.Precision.HIGHEST) / jnp.asarray(
      temperature, dtype)
  valid_N = mask_BxT.reshape(b * t)
  logits_NxN = jnp.where(valid_N[None, :], logits_NxN, jnp.asarray(MASKED_LOGIT, dtype))
  return logits_NxN, valid_N.astype(dtype)


def next_frame_contrastive(context_BxTxD: jax.Array, future_BxTxD: jax.Array,
                           mask_BxT: jax.Array, *, temperature: float) -> jax.Array:
  """Contrastive predictive coding's InfoNCE (van den Oord et al. 2018, "Representation
  Learning with Contrastive Predictive Coding", eq. 4), negatives from the global batch.

  The caller aligns the pairs: `context[b, t]` is the prediction (W_k c_t) and
  `future[b, t]` its true future latent z_{t+k}. Each real anchor (b, t) scores every real
  future (b', t') of the global batch by cosine similarity / temperature (the normalised
  form of wav2vec 2.0, Baevski et al. 2020, which trains more stably than CPC's raw dot
  product); its own future is the positive, all other times of all examples are negatives:
    l_{b,t} = -log softmax_{(b',t') real}(s[(b,t), (b',t')])[(b,t)].
  The mean is over real anchors. Under `jax.jit` on batch-sharded global arrays every
  device's latents are negatives, as on one device.

  Args:
    context_BxTxD: [B, T, D] predictions of the future latents.
    future_BxTxD: [B, T, D] true future latents, aligned with the context.
    mask_BxT: [B, T] true where both the anchor and its future are real frames.
    temperature: softmax temperature tau > 0.

  Returns:
    Scalar float32 (float64 for float64 inputs); 0 when no anchor is real.
  """
  logits_NxN, weights_N = next_frame_contrastive_logits(context_BxTxD, future_BxTxD,
                                                        mask_BxT, temperature=temperature)
  labels_N = jnp.arange(logits_NxN.shape[0])
  xent_N = optax.softmax_cross_entropy_with_integer_labels(logits_NxN, labels_N)
  return jnp.sum(xent_N * weights_N) / jnp.maximum(jnp.sum(weights_N), 1.0)
