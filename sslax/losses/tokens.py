"""Token prediction losses: masked (BERT) and next-token (GPT) language modelling."""
import jax
import jax.numpy as jnp
import optax

from sslax.losses.numerics import loss_dtype


def masked_token_xent(logits_xV: jax.Array, targets_x: jax.Array,
                      weights_x: jax.Array) -> jax.Array:
  """Masked-LM loss (Devlin et al. 2019, "BERT", section 3.1): mean cross-entropy over the
  predicted positions of the whole (global) batch.

  Any leading shape works: dense [B, L, V] logits with a [B, L] mask, or logits gathered at
  P chosen positions, [B, P, V] with [B, P] weights. Positions of weight 0 contribute
  neither value nor gradient. The mean is over the global number of weighted positions, so
  examples with more masked tokens count more (as in BERT), independent of sharding.

  Args:
    logits_xV: [..., V] logits.
    targets_x: [...] int target ids.
    weights_x: [...] 1 where a position is predicted, 0 elsewhere (bool or float).

  Returns:
    Scalar float32; 0 when nothing is weighted.
  """
  xent_x = optax.softmax_cross_entropy_with_integer_labels(
      logits_xV.astype(loss_dtype(logits_xV.dtype)), targets_x)
  weights_x = weights_x.astype(xent_x.dtype)
  return jnp.sum(xent_x * weights_x) / jnp.maximum(jnp.sum(weights_x), 1.0)


def next_token_xent(logits_BxLxV: jax.Array, tokens_BxL: jax.Array,
                    valid_BxL: jax.Array) -> jax.Array:
  """Causal LM loss (Radford et al. 2018/2019, GPT): logits at position t predict token t+1;
  mean over the global batch's valid targets.

  Args:
    logits_BxLxV: [B, L, V] logits of a causal model run on `tokens_BxL`.
    tokens_BxL: [B, L] int token ids.
    valid_BxL: [B, L] true for real (non-PAD) tokens; target t+1 counts when it is valid.

  Returns:
    Scalar float32.
  """
  return masked_token_xent(logits_BxLxV[:, :-1], tokens_BxL[:, 1:], valid_BxL[:, 1:])


def token_accuracy(logits_xV: jax.Array, targets_x: jax.Array, weights_x: jax.Array) -> jax.Array:
  """Weighted fraction of positions whose argmax logit is the target (a training metric)."""
  weights_x = weights_x.astype(jnp.float32)
  hits_x = (jnp.argmax(logits_xV, axis=-1) == targets_x).astype(jnp.float32)
  return jnp.sum(hits_x * weights_x) / jnp.maximum(jnp.sum(weights_x), 1.0)
