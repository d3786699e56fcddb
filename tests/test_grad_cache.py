"""GradCache micro-batching equals the plain full-batch loss and gradients."""
import jax
import numpy as np
import pytest

from sslax import grad_cache
from sslax import methods
from sslax import sharding
from sslax.data import readers
from tests.test_train import data_dir, smoke_config  # noqa: F401 (fixture)


def test_grad_cache_equals_the_full_batch_loss_and_gradients(data_dir):
  # Per-example norms (GroupNorm, no projector BN): micro-batching is then exact.
  config = smoke_config(data_dir, **{'model.norm': 'group', 'simclr.proj_batch_norm': False})
  method = methods.get(config.method)(config)
  mesh = sharding.make_mesh(config.mesh)
  records = readers.Records(config.data.source, 'train', data_dir=str(data_dir), in_memory=True)
  batch = sharding.to_global(records.take(np.arange(config.batch_size)), mesh)
  params, model_state, extra = method.init(jax.random.PRNGKey(0), batch)
  rng = jax.random.PRNGKey(1)

  @jax.jit
  def plain(params):
    return jax.value_and_grad(method.loss, has_aux=True)(params, model_state, extra, batch, rng)
  @jax.jit
  def cached(params):
    return grad_cache.value_and_grad(method, params, model_state, batch, rng, 4)
  (loss, (_, metrics)), grads = plain(params)
  (loss_c, (_, metrics_c)), grads_c = cached(params)
  np.testing.assert_allclose(loss_c, loss, rtol=1e-5)
  np.testing.assert_allclose(metrics_c['contrastive_acc'], metrics['contrastive_acc'])
  scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(grads))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale),
               grads_c, grads)


def test_grad_accum_needs_a_method_with_the_split():
  method = methods.Method(init=None, loss=None, update_extra=None, embed=None)
  with pytest.raises(ValueError, match=r"config.grad_accum_steps=4 needs .*config.method='x'"):
    grad_cache.check_method(method, 'x', 4)
  grad_cache.check_method(method, 'x', 1)
