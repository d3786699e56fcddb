"""Chunked (shard_map, sslax.losses.chunked) InfoNCE equals the plain global one, value and
gradients; as SimCLR's config.simclr.chunked_loss, one train step equals the plain one."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import losses
from sslax import methods
from sslax import optim
from sslax import sharding
from sslax import train
from sslax import validate
from sslax.data import readers
from tests.test_train import data_dir, smoke_config  # noqa: F401 (fixture)


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


def test_simclr_chunked_loss_switch_gives_the_same_train_step(data_dir):
  """config.simclr.chunked_loss: one jitted train step on 8 devices, switch on == switch off."""
  records = readers.Records('builtin:digits', 'train', data_dir=str(data_dir), in_memory=True)
  outputs, programs = [], []
  for chunked in (False, True):
    config = smoke_config(data_dir, **{'simclr.chunked_loss': chunked})
    mesh = sharding.make_mesh(config.mesh)
    method = methods.get(config.method)(config)
    tx, lr = optim.make(config)
    init = train.make_init(method, tx, train.sample_batch(config), config.seed)
    sh = sharding.state_shardings(jax.eval_shape(init), mesh)
    step = jax.jit(train.make_train_step(method, tx, lr),
                   in_shardings=(sh, sharding.batch_sharding(mesh)),
                   out_shardings=(sh, sharding.replicated(mesh)))
    batch = sharding.to_global(records.take(np.arange(config.batch_size)), mesh)
    state = jax.jit(init, out_shardings=sh)()
    compiled = step.lower(state, batch).compile()
    programs.append(compiled.as_text())
    new_state, metrics = compiled(state, batch)
    outputs.append(jax.device_get((new_state.params, metrics)))
  (p_plain, m_plain), (p_chunked, m_chunked) = outputs
  for key in ('loss', 'contrastive_acc', 'grad_norm'):
    np.testing.assert_allclose(m_chunked[key], m_plain[key], rtol=1e-5, err_msg=key)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               p_chunked, p_plain)
  # The chunked program never holds [2N, 2N] logits, only [2n, 2N] rows per device.
  two_n = 2 * config.batch_size
  assert f'f32[{two_n},{two_n}]' not in programs[1]
  assert f'f32[{two_n // 8},{two_n}]' in programs[1]


def test_chunked_loss_outside_simclr_names_the_key():
  from sslax.configs import mlm_text
  config = mlm_text.get_config('smoke')
  config.simclr = {'chunked_loss': True}
  with pytest.raises(ValueError, match=r"config.simclr.chunked_loss=True only applies to SimCLR"):
    validate.check(config, num_devices=8, num_processes=1)
