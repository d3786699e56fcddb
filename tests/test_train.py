"""The trainer end to end on the smoke config: outputs, resume, sharding, config errors."""
import json
import os
import pathlib

import chex
import jax
import ml_collections
import numpy as np
import pytest

from sslax import methods
from sslax import optim
from sslax import sharding
from sslax import train
from sslax.data import readers
from sslax.data import train_batches
from tests.conftest import assert_fraction_of, without_evaluation

REPO = pathlib.Path(__file__).resolve().parents[1]


def smoke_config(data_dir, evaluate: bool = True, **overrides) -> ml_collections.ConfigDict:
  """configs/simclr_digits.py:smoke on `data_dir` with `overrides` (dotted keys); without
  evaluation (conftest.without_evaluation) unless `evaluate`."""
  from sslax.configs import simclr_digits
  c = simclr_digits.get_config('smoke')
  c.data.data_dir = str(data_dir)
  c.progress_bar = False
  # All 360 test digits (smoke samples 128, two whole batches): scores are then checked to
  # count exactly 360 examples although the last batch of 64 is padded.
  c.eval.max_test_examples = 0
  c.eval.max_train_examples = 0   # and the whole train split as the kNN bank and probe data
  for k, v in overrides.items():
    node = c
    *parents, leaf = k.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = v
  return c if evaluate else without_evaluation(c)


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('tfds')


def _params(workdir, config):
  """Final parameters of the run in `workdir`, restored unsharded."""
  from sslax import checkpoint
  mesh = sharding.make_mesh(config.mesh)
  method = methods.get(config.method)(config)
  tx, _ = optim.make(config)
  abstract = jax.eval_shape(train.make_init(method, tx, train.sample_batch(config), config.seed))
  mngr = checkpoint.Manager(os.path.join(workdir, 'checkpoints'), max_to_keep=3)
  state, meta = mngr.restore(abstract, sharding.state_shardings(abstract, mesh))
  mngr.close()
  return jax.device_get(state), meta


def test_smoke_run_writes_the_workdir_contract(tmp_path, data_dir):
  config = smoke_config(data_dir)
  results = train.run(config, str(tmp_path))
  assert json.loads((tmp_path / 'config.json').read_text())['method'] == 'simclr'
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  train_rows = [r for r in rows if 'loss' in r]
  assert [r['step'] for r in train_rows] == [2, 4]
  for key in ('loss', 'learning_rate', 'steps_per_sec', 'examples_per_sec'):
    assert key in train_rows[-1], key
  assert all(np.isfinite(r['loss']) for r in train_rows)
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4']
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(tmp_path / 'tensorboard'))
  written = json.loads((tmp_path / 'results.json').read_text())
  assert written == pytest.approx(results)
  # Scores over the 360 test digits exactly, though they come in padded batches of 64.
  for key in ('linear_probe/accuracy', 'knn/accuracy', 'random_init/linear_probe/accuracy',
              'random_init/knn/accuracy'):
    assert_fraction_of(written[key], 360, key)
  # Digits are easy: even the smoke encoder's features are far above chance (0.1).
  assert written['random_init/knn/accuracy'] > 0.5
  # The raw-input baseline (logistic regression on 16x16 pixels) is in both reports.
  assert written['raw_input/logistic/accuracy'] > 0.9
  assert '| raw input (logistic) |' in (tmp_path / 'results.md').read_text()


class _Interrupt(Exception):
  pass


def run_killed_after(config, workdir, monkeypatch, steps: int) -> None:
  """Runs `config` in `workdir` with its data stream dying after `steps` batches, as a kill
  would; the real stream is back afterwards, so the next `train.run` resumes."""
  real = train_batches.make_train
  def dying(*args, **kwargs):
    for i, batch in enumerate(real(*args, **kwargs)):
      if i == steps:
        raise _Interrupt()
      yield batch
  monkeypatch.setattr(train_batches, 'make_train', dying)
  with pytest.raises(_Interrupt):
    train.run(config, str(workdir))
  monkeypatch.setattr(train_batches, 'make_train', real)


def test_interrupted_run_resumes_to_the_same_parameters(tmp_path, data_dir, monkeypatch):
  config = smoke_config(data_dir, evaluate=False)
  # No evaluator on: nothing scored, no raw-input baseline, no random-init encoder built.
  assert train.run(config, str(tmp_path / 'straight')) == {'step': 4}
  straight, _ = _params(tmp_path / 'straight', config)

  # The run dies between step 2's save and step 3.
  run_killed_after(config, tmp_path / 'resumed', monkeypatch, steps=2)
  assert sorted(os.listdir(tmp_path / 'resumed' / 'checkpoints')) == ['2']
  train.run(config, str(tmp_path / 'resumed'))
  resumed, meta = _params(tmp_path / 'resumed', config)

  assert meta['step'] == 4
  chex.assert_trees_all_equal(resumed.params, straight.params, strict=True)
  chex.assert_trees_all_equal(resumed.opt_state, straight.opt_state, strict=True)
  chex.assert_trees_all_equal(resumed.model_state, straight.model_state, strict=True)


def test_eight_device_step_equals_one_device_step(data_dir):
  config = smoke_config(data_dir)
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  init = train.make_init(method, tx, train.sample_batch(config), config.seed)
  step = train.make_train_step(method, tx, lr)
  records = readers.Records(config.data.source, 'train', data_dir=str(data_dir), in_memory=True)
  local = records.take(np.arange(config.batch_size))

  outputs = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.make_mesh(config.mesh, devices)
    abstract = jax.eval_shape(init)
    shardings = sharding.state_shardings(abstract, mesh)
    state = jax.jit(init, out_shardings=shardings)()
    step_fn = jax.jit(step, in_shardings=(shardings, sharding.batch_sharding(mesh)))
    new_state, metrics = step_fn(state, sharding.to_global(local, mesh))
    outputs.append(jax.device_get((new_state.params, new_state.model_state, metrics['loss'])))
  (p1, s1, l1), (p8, s8, l8) = outputs
  np.testing.assert_allclose(l8, l1, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), p8, p1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), s8, s1)


def test_random_init_encoders_are_each_seeds_step_0_from_one_program(data_dir, monkeypatch):
  """The run's init and its random-init encoders share one compiled program (the key is its
  argument); each seed's encoder must be the state make_init gives that seed, and no seed may
  repeat another."""
  config = smoke_config(data_dir, **{'eval.num_seeds': 3})
  lowered = []
  monkeypatch.setattr(train, 'compile_one_shot',
                      lambda jitted, *args: lowered.append(args) or jitted.lower(*args).compile())
  parts = train.build(config, sharding.make_mesh(config.mesh), train.sample_batch(config))
  (initial,) = parts.init.states([config.seed])
  encoders = train.random_init_encoders(config, parts.init)
  assert len(lowered) == 1 and len(encoders) == 3
  # With every evaluator off nothing would score them: none, and nothing compiled.
  assert train.random_init_encoders(without_evaluation(config), parts.init) == []
  assert len(lowered) == 1
  chex.assert_trees_all_equal(jax.device_get(initial.params), jax.device_get(encoders[0][0]))
  sample = train.sample_batch(config)
  for i, (params, model_state) in enumerate(encoders):
    want = jax.jit(train.make_init(parts.method, parts.tx, sample, config.seed + i))()
    chex.assert_trees_all_equal(jax.device_get(params), jax.device_get(want.params))
    chex.assert_trees_all_equal(jax.device_get(model_state), jax.device_get(want.model_state))
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(encoders[0][0]),
                                                      jax.tree.leaves(encoders[1][0])))


def test_one_shot_options_give_the_weights_of_xlas_default_level(data_dir):
  """ONE_SHOT_OPTIONS (init at LLVM level 1) must not change a seed's weights from XLA's
  default level 2 (the tests' XLA_FLAGS say level 0; explicit options override them)."""
  config = smoke_config(data_dir)
  method = methods.get(config.method)(config)
  tx, _ = optim.make(config)
  lowered = jax.jit(train.make_init(method, tx, train.sample_batch(config), config.seed)).lower()
  default = lowered.compile(compiler_options={'xla_backend_optimization_level': 2})()
  one_shot = lowered.compile(compiler_options=train.ONE_SHOT_OPTIONS)()
  chex.assert_trees_all_equal(jax.device_get(one_shot), jax.device_get(default), strict=True)


@pytest.mark.parametrize('overrides, error, match', [
    ({'method': 'simclrr'}, ValueError, r"config.method='simclrr' is unknown"),
    ({'batch_size': 12}, ValueError, r'config.batch_size=12 is not divisible by the 8'),
    ({'data.source': 'npz:/nowhere/x.npz'}, FileNotFoundError, r'data.source.*/nowhere/x.npz'),
    ({'eval.source': 'folder:/nowhere'}, FileNotFoundError, r'eval.source.*/nowhere'),
    ({'data.source': 'ftp:digits'}, ValueError, r'data.source'),
    ({'optim.name': 'adam'}, ValueError, r"config.optim.name='adam' is unknown"),
    ({'total_steps': 0}, ValueError, r'config.total_steps=0 must be positive'),
    ({'data.read_threads': 0}, ValueError, r'config.data.read_threads=0 must be >= 1'),
])
def test_bad_config_fails_before_compiling(tmp_path, data_dir, overrides, error, match):
  with pytest.raises(error, match=match):
    train.run(smoke_config(data_dir, **overrides), str(tmp_path))
  assert not (tmp_path / 'checkpoints').exists()


def test_resume_with_incompatible_config_names_the_changed_keys(tmp_path, data_dir):
  train.run(smoke_config(data_dir, evaluate=False, total_steps=2), str(tmp_path))
  with pytest.raises(ValueError, match=r'model.widths'):
    train.run(smoke_config(data_dir, total_steps=4, **{'model.widths': (8, 8)}), str(tmp_path))
  # The workdir still describes the checkpoint it holds.
  assert json.loads((tmp_path / 'config.json').read_text())['model']['widths'] == [8, 16]
