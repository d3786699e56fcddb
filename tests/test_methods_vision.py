"""The vision method zoo on the shared trainer: sharded == single-device steps, EMA targets,
and smoke runs end to end with resume."""
import functools
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
from sslax.data import readers
from sslax.methods import _siamese
from tests import resumes
from tests.conftest import assert_fraction_of

METHODS = ('byol', 'mocov3', 'vicreg', 'barlow', 'dino', 'mae')
# Methods with an EMA target and the extra key that holds it (same structure as params['net']).
EMA_TARGETS = {'byol': 'target', 'mocov3': 'target', 'dino': 'teacher'}


def smoke_config(method: str, data_dir):
  c = importlib.import_module(f'sslax.configs.{method}_images').get_config('smoke')
  c.data.data_dir = str(data_dir)
  c.progress_bar = False
  return c


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('tfds')


@functools.cache
def _cached_step(method: str, num_devices: int, data_dir):
  # Shared by the sharding and EMA tests: each compile costs seconds on the test CPU.
  config = smoke_config(method, data_dir)
  return _step_on(jax.devices()[:num_devices], config, _first_batch(config, data_dir))


def _first_batch(config, data_dir):
  records = readers.Records(config.data.source, 'train', data_dir=str(data_dir), in_memory=True)
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
  _, one, m1 = _cached_step(method, 1, data_dir)
  _, eight, m8 = _cached_step(method, 8, data_dir)
  np.testing.assert_allclose(m8['loss'], m1['loss'], rtol=1e-5)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  for part in ('params', 'model_state', 'extra'):
    jax.tree.map(close, getattr(eight, part), getattr(one, part))


@pytest.mark.parametrize('method', sorted(EMA_TARGETS))
def test_ema_target_moves_by_the_scheduled_amount_and_gets_no_gradient(method, data_dir):
  config = smoke_config(method, data_dir)
  key = EMA_TARGETS[method]
  before, after, _ = _cached_step(method, 1, data_dir)
  tau = float(_siamese.cosine_momentum(0, base=config[method].momentum_base,
                                       total_steps=config.total_steps))
  assert tau == pytest.approx(config[method].momentum_base)
  expected = jax.tree.map(lambda t, o: tau * t + (1 - tau) * o,
                          before.extra[key], after.params['net'])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               after.extra[key], expected)
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(after.extra[key]),
                                                       jax.tree.leaves(before.extra[key])))
  # No gradient reaches the target: the loss's gradient with respect to it is exactly zero.
  method_fns = methods.get(config.method)(config)
  batch = {k: jnp.asarray(v) for k, v in _first_batch(config, data_dir).items()}
  grad_extra = jax.grad(lambda target: method_fns.loss(
      before.params, before.model_state, {**before.extra, key: target}, batch,
      jax.random.PRNGKey(0))[0])(before.extra[key])
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grad_extra))


def test_dino_centre_and_teacher_temperature_follow_their_schedules(data_dir):
  config = smoke_config('dino', data_dir)
  before, after, metrics = _cached_step('dino', 1, data_dir)
  d = config.dino
  assert metrics['teacher_temperature'] == pytest.approx(d.warmup_teacher_temperature)
  warm = d.warmup_teacher_temperature_steps
  expected_next = d.warmup_teacher_temperature + (
      d.teacher_temperature - d.warmup_teacher_temperature) / warm
  assert after.extra['teacher_temperature'] == pytest.approx(expected_next)
  assert np.any(after.model_state['center'] != 0)
  np.testing.assert_array_equal(before.model_state['center'], 0)


def test_cosine_momentum_schedule():
  total = 100
  taus = [float(_siamese.cosine_momentum(k, base=0.99, total_steps=total))
          for k in (0, 50, 100, 150)]
  np.testing.assert_allclose(taus, [0.99, 0.995, 1.0, 1.0], rtol=1e-6)


# Two representatives keep the suite short (each run is ~30 s of compiles and evaluation):
# BYOL (ResNet, EMA target in `extra`, the siamese code the other ResNet methods share) and
# MAE (ViT on kept patches). Every method's step is covered by the 8-device test above.
@pytest.mark.parametrize('method', ('byol', 'mae'))
def test_smoke_run_resumes_to_the_uninterrupted_state(method, data_dir, tmp_path, monkeypatch):
  """The smoke config trains and evaluates; a copy of its workdir cut back to step 2's
  checkpoint resumes to the end and holds the same parameters, optimiser state, model state
  (BatchNorm statistics) and `extra` (BYOL's EMA target), bit for bit (tests/resumes.py)."""
  config = smoke_config(method, data_dir)
  config.eval.max_test_examples = 0   # all 360 test digits: the last batch of 64 is padded
  # Saves at steps 2 and 3: the straight run trains 3 steps and its copy resumed from step 2
  # one, 4 steps in all, as the kill run and resume this test made before did.
  config.total_steps = 3
  saves = resumes.record_saves(monkeypatch)
  results = train.run(config, str(tmp_path / 'run'))
  assert results['step'] == config.total_steps
  assert sorted(os.listdir(tmp_path / 'run' / 'checkpoints')) == ['2', '3']
  # The 360 test digits exactly, though they come in padded batches of 64.
  for key in ('knn/accuracy', 'random_init/knn/accuracy', 'linear_probe/accuracy'):
    assert_fraction_of(results[key], 360, key)
  resumes.resume_copy(saves, config, tmp_path / 'run', tmp_path / 'resumed', step=2)
  assert sorted(os.listdir(tmp_path / 'resumed' / 'checkpoints')) == ['2', '3']
  resumes.assert_same_final_state(saves, tmp_path / 'run', tmp_path / 'resumed', step=3)
