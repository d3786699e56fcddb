"""The float rules every loss shares: the dtype a loss computes in, a finite stand-in for -inf on
masked logits, and an L2 normalisation that keeps all-zero rows finite."""
import jax
import jax.numpy as jnp

# Finite stand-in for -inf on masked logits: exp() of it is exactly 0 in float32/float64, yet
# unlike -inf it never produces `-inf - -inf = nan` inside softmax or its gradient.
MASKED_LOGIT = -1e9
# Floor on the squared norm before normalising, so an all-zero embedding gives a zero vector
# (and a finite gradient) instead of 0/0.
_MIN_SQUARED_NORM = 1e-24


def loss_dtype(dtype: jnp.dtype) -> jnp.dtype:
  """float32 for low-precision inputs (bf16/f16 logits lose the softmax), float64 kept."""
  return jnp.promote_types(dtype, jnp.float32)


def l2_normalize(x_NxD: jax.Array, axis: int = -1) -> jax.Array:
  """Scales rows to unit L2 norm; zero rows stay zero. Same shape as the input."""
  squared_norm_Nx1 = jnp.sum(jnp.square(x_NxD), axis=axis, keepdims=True)
  return x_NxD * jax.lax.rsqrt(jnp.maximum(squared_norm_Nx1, _MIN_SQUARED_NORM))
