"""config.model.dtype: the compute dtype every encoder and head runs in (DESIGN.md, "Precision")."""
import jax.numpy as jnp
import ml_collections

from sslax import errors

DTYPES = ('float32', 'bfloat16')


def compute_dtype(model_config: ml_collections.ConfigDict) -> jnp.dtype:
  """config.model.dtype: activations and matmuls; parameters and optimiser state stay float32."""
  name = model_config.get('dtype', 'float32')
  if name not in DTYPES:
    raise errors.ConfigError(f'config.model.dtype={name!r} is unknown; choose one of {DTYPES}.')
  return jnp.dtype(name)
