import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax.models import heads
from sslax.models import resnet


@pytest.mark.parametrize('stem, block, size, expected_dim', [
    ('cifar', 'basic', 16, 16), ('imagenet', 'basic', 32, 16), ('cifar', 'bottleneck', 16, 64)])
def test_resnet_pools_to_last_width(stem, block, size, expected_dim):
  model = resnet.ResNet(widths=(8, 16), blocks=(1, 1), block=block, stem=stem, stem_width=8)
  x = jnp.ones((2, size, size, 3))
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  out, state = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert out.shape == (2, expected_dim)
  assert 'batch_stats' in state


def test_zero_init_residual_makes_blocks_identity_at_init():
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 8, 8, 8))
  block = resnet.BasicBlock(width=8, stride=1, norm='batch', zero_init=True)
  variables = block.init(jax.random.PRNGKey(0), x, train=False)
  np.testing.assert_allclose(block.apply(variables, x, train=False), jax.nn.relu(x), atol=1e-6)


def test_batchnorm_uses_the_whole_global_batch():
  """BN statistics over a sharded batch equal those over the same batch on one device."""
  model = resnet.ResNet(widths=(8,), blocks=(1,), stem_width=8)
  x = jax.random.normal(jax.random.PRNGKey(2), (16, 8, 8, 1))
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  fwd = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats']))
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  sharded = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data')))
  (out1, st1), (out8, st8) = fwd(variables, x), fwd(variables, sharded)
  np.testing.assert_allclose(out8, out1, rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), st8, st1)


def test_bad_names_raise():
  with pytest.raises(ValueError, match='config.model.stem'):
    resnet.ResNet(stem='tiny').init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 1)), train=False)


def test_projector_output_dim():
  mlp = heads.MLP(hidden_dims=(8,), out_dim=4)
  v = mlp.init(jax.random.PRNGKey(0), jnp.ones((3, 5)), train=False)
  assert mlp.apply(v, jnp.ones((3, 5)), train=False).shape == (3, 4)
