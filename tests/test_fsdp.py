"""FSDP sharding rules, and restoring one checkpoint onto other device counts and meshes."""
import jax
import numpy as np

from sslax import checkpoint
from sslax import methods
from sslax import optim
from sslax import sharding
from sslax import train
from sslax.data import readers
from tests.test_train import data_dir, smoke_config  # noqa: F401 (fixture)

MIN_SIZE = 256   # the smoke model is tiny; production default is config.fsdp_min_size


def _setup(config):
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  init = train.make_init(method, tx, train.sample_batch(config), config.seed)
  return init, train.make_train_step(method, tx, lr), jax.eval_shape(init)


def test_fsdp_shards_large_weights_and_matches_data_parallel(data_dir):
  config = smoke_config(data_dir)
  init, step, abstract = _setup(config)
  records = readers.Records(config.data.source, 'train', data_dir=str(data_dir), in_memory=True)
  local = records.take(np.arange(config.batch_size))

  fsdp_mesh = sharding.make_mesh({'data': 2, 'fsdp': 4})
  shardings = sharding.state_shardings(abstract, fsdp_mesh, MIN_SIZE)
  for a, s in zip(jax.tree.leaves(abstract.params), jax.tree.leaves(shardings.params)):
    if a.size >= MIN_SIZE and any(d % 4 == 0 for d in a.shape):
      assert 'fsdp' in s.spec, (a.shape, s.spec)
  # Adam's moments follow their parameter.
  mu = shardings.opt_state[0].mu
  jax.tree.map(lambda m, p: np.testing.assert_equal(m.spec, p.spec), mu, shardings.params)
  share = sharding.replicated_fraction(abstract.params, shardings.params)
  assert share < 0.2, share

  outputs = []
  for mesh, min_size in ((sharding.make_mesh({'data': 8}), MIN_SIZE), (fsdp_mesh, MIN_SIZE)):
    sh = sharding.state_shardings(abstract, mesh, min_size)
    state = jax.jit(init, out_shardings=sh)()
    new_state, metrics = jax.jit(step, in_shardings=(sh, sharding.batch_sharding(mesh)),
                                 out_shardings=(sh, sharding.replicated(mesh)))(
                                     state, sharding.to_global(local, mesh))
    if mesh is fsdp_mesh:   # still sharded after the step (no silent replication)
      kernel = new_state.params['encoder']['stage1_block0']['Conv_1']['kernel']
      assert {s.data.size for s in kernel.addressable_shards} == {kernel.size // 4}
    outputs.append(jax.device_get((new_state.params, metrics['loss'])))
  (p_dp, l_dp), (p_fsdp, l_fsdp) = outputs
  np.testing.assert_allclose(l_fsdp, l_dp, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), p_fsdp, p_dp)


def test_one_checkpoint_restores_on_any_device_count_and_mesh(tmp_path, data_dir):
  config = smoke_config(data_dir)
  init, _, abstract = _setup(config)
  meshes = {
      'data8': sharding.make_mesh({'data': 8}),
      'one': sharding.make_mesh({'data': 1}, jax.devices()[:1]),
      'fsdp2x4': sharding.make_mesh({'data': 2, 'fsdp': 4}),
  }
  sh = {k: sharding.state_shardings(abstract, m, MIN_SIZE) for k, m in meshes.items()}
  original = jax.jit(init, out_shardings=sh['data8'])()
  expected = jax.device_get(original)

  def roundtrip(state, name, src, dst):
    mngr = checkpoint.Manager(str(tmp_path / name), max_to_keep=1)
    mngr.save(0, state, {'step': 0})
    mngr.wait()
    restored, _ = mngr.restore(abstract, sh[dst])
    mngr.close()
    jax.tree.map(lambda r, s: np.testing.assert_equal(r.sharding, s), restored, sh[dst])
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), expected)
    return restored

  one = roundtrip(original, 'a', 'data8', 'one')          # 8 -> 1 device
  roundtrip(one, 'b', 'one', 'data8')                      # 1 -> 8 devices
  roundtrip(original, 'c', 'data8', 'fsdp2x4')             # data parallel -> FSDP
