"""The vision method zoo on the shared trainer: sharded == single-device steps, EMA targets,
and smoke runs end to end with resume."""
import importlib
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import methods
from sslax import optim
from sslax import sharding
from sslax import train
from sslax.data import pipeline
from sslax.methods import _siamese

METHODS = ('byol', 'mocov3', 'vicreg', 'barlow')


def smoke_config(method: str, data_dir):
  c = importlib.import_module(f'configs.{method}_images').get_config('smoke')
  c.data.data_dir = str(data_dir)
  c.progress_bar = False
  return c


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('tfds')


def _first_batch(config, data_dir):
  records = pipeline.Records(config.data.source, 'train', data_dir=str(data_dir), in_memory=True)
  return records.take(np.arange(config.batch_size))


def _step_on(devices, config, local_batch):
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  init = train.make_init(method, tx, train.sample_batch(config), config.seed)
  mesh = sharding.make_mesh(config.mesh, devices)
  shardings = sharding.state_shardings(jax.eval_shape(init), mesh)
  state = jax.jit(init, out_shardings=shardings)()
  step_fn = jax.jit(train.make_train_step(method, tx, lr),
                    in_shardings=(shardings, sharding.batch_sharding(mesh)))
  new_state, metrics = step_fn(state, sharding.to_global(local_batch, mesh))
  return jax.device_get((state, new_state, metrics))


@pytest.mark.parametrize('method', METHODS)
def test_eight_device_step_equals_one_device_step(method, data_dir):
  config = smoke_config(method, data_dir)
  local = _first_batch(config, data_dir)
  _, one, m1 = _step_on(jax.devices()[:1], config, local)
  _, eight, m8 = _step_on(jax.devices(), config, local)
  np.testing.assert_allclose(m8['loss'], m1['loss'], rtol=1e-5)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  for part in ('params', 'model_state', 'extra'):
    jax.tree.map(close, getattr(eight, part), getattr(one, part))


@pytest.mark.parametrize('method', ('byol', 'mocov3'))
def test_ema_target_moves_by_the_scheduled_amount_and_gets_no_gradient(method, data_dir):
  config = smoke_config(method, data_dir)
  local = _first_batch(config, data_dir)
  before, after, _ = _step_on(jax.devices()[:1], config, local)
  tau = float(_siamese.cosine_momentum(0, base=config[method].momentum_base,
                                       total_steps=config.total_steps))
  assert tau == pytest.approx(config[method].momentum_base)
  expected = jax.tree.map(lambda t, o: tau * t + (1 - tau) * o,
                          before.extra['target'], after.params['net'])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               after.extra['target'], expected)
  # No gradient reaches the target: its loss-gradient is exactly zero.
  method_fns = methods.get(config.method)(config)
  batch = {k: jnp.asarray(v) for k, v in local.items()}
  grad_target = jax.grad(lambda extra: method_fns.loss(
      before.params, before.model_state, extra, batch, jax.random.PRNGKey(0))[0])(before.extra)
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grad_target))


def test_cosine_momentum_schedule():
  total = 100
  taus = [float(_siamese.cosine_momentum(k, base=0.99, total_steps=total))
          for k in (0, 50, 100, 150)]
  np.testing.assert_allclose(taus, [0.99, 0.995, 1.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize('method', METHODS)
def test_smoke_run_resumes(method, data_dir, tmp_path):
  config = smoke_config(method, data_dir)
  config.total_steps = 2
  train.run(config, str(tmp_path))
  config.total_steps = 4
  results = train.run(config, str(tmp_path))
  assert results['step'] == 4
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4']
  assert 0.0 <= results['knn/accuracy'] <= 1.0
