"""Chunked (shard_map) InfoNCE equals the plain global one, value and gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import losses
from sslax import sharding


@pytest.mark.parametrize('mesh_config', [{'data': 8}, {'data': 2, 'fsdp': 4}])
def test_chunked_info_nce_equals_info_nce(mesh_config):
  mesh = sharding.make_mesh(mesh_config)
  k_a, k_b = jax.random.split(jax.random.PRNGKey(0))
  z_a = jax.random.normal(k_a, (32, 16))
  z_b = z_a + 0.3 * jax.random.normal(k_b, (32, 16))
  shard = lambda x: jax.device_put(x, sharding.batch_sharding(mesh))

  def plain(a, b):
    return losses.info_nce(a, b, temperature=0.2)
  def chunked(a, b):
    return losses.info_nce_chunked(a, b, temperature=0.2, mesh=mesh)
  value, grads = jax.jit(jax.value_and_grad(plain, argnums=(0, 1)))(z_a, z_b)
  value_c, grads_c = jax.jit(jax.value_and_grad(chunked, argnums=(0, 1)))(shard(z_a), shard(z_b))
  np.testing.assert_allclose(value_c, value, rtol=1e-5)
  for g_c, g in zip(grads_c, grads):
    np.testing.assert_allclose(g_c, g, rtol=1e-5, atol=1e-7)

  # No device ever holds a [2N, 2N] (64x64) array: the largest per-device matrix is [2n, 2N].
  hlo = jax.jit(chunked).lower(shard(z_a), shard(z_b)).compile().as_text()
  assert 'f32[64,64]' not in hlo
  n_local = 32 // sharding.data_parallel_size(mesh)
  assert f'f32[{2 * n_local},64]' in hlo
