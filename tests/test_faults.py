"""Injected faults lose nothing: NaN steps, a corrupt newest checkpoint, SIGTERM, SIGKILL."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import checkpoint
from sslax import methods
from sslax import train
from tests.test_train import _params, data_dir, smoke_config  # noqa: F401 (fixture)

REPO = pathlib.Path(__file__).resolve().parents[1]


def _poison_step(monkeypatch, bad_step: int) -> None:
  """Makes the loss (and so every gradient) NaN at 1-based step `bad_step` only.

  The step is recognised by its key, fold_in(train_key, bad_step - 1) (train.make_init,
  make_train_step), so nothing in the trainer knows about the injection.
  """
  real_get = methods.get
  def get(name):
    make = real_get(name)
    def make_poisoned(config):
      method = make(config)
      train_key = jax.random.split(jax.random.PRNGKey(config.seed))[1]
      bad_key = jax.random.fold_in(train_key, bad_step - 1)
      def loss(params, model_state, extra, batch, rng):
        value, aux = method.loss(params, model_state, extra, batch, rng)
        return value * jnp.where(jnp.all(rng == bad_key), jnp.nan, 1.0), aux
      return method._replace(loss=loss)
    return make_poisoned
  monkeypatch.setattr(methods, 'get', get)


def _finite(tree) -> bool:
  return all(np.isfinite(x).all() for x in jax.tree.leaves(tree))


def test_nan_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, data_dir,
                                                                      monkeypatch):
  _poison_step(monkeypatch, 3)
  config = smoke_config(data_dir, log_every=100)   # the step is exact between log points too
  with pytest.raises(FloatingPointError, match=r'NaN/inf at step 3;.*last checkpoint: step 2'):
    train.run(config, str(tmp_path))
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2']
  state, meta = _params(tmp_path, config)
  assert meta['step'] == 2 and _finite(state.params)


def test_nan_skip_policy_leaves_the_update_out_and_counts_it(tmp_path, data_dir, monkeypatch):
  _poison_step(monkeypatch, 3)
  config = smoke_config(data_dir, evaluate=False, nan_policy='skip', log_every=1,
                        **{'checkpoint.every_steps': 1})
  train.run(config, str(tmp_path))
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  skipped = {r['step']: r['skipped_steps'] for r in rows if 'loss' in r}
  assert skipped == {1: 0, 2: 0, 3: 1, 4: 1}
  from sslax import sharding, optim
  mesh = sharding.make_mesh(config.mesh)
  tx, _ = optim.make(config)
  abstract = jax.eval_shape(train.make_init(methods.get(config.method)(config), tx,
                                            train.sample_batch(config), config.seed))
  mngr = checkpoint.Manager(str(tmp_path / 'checkpoints'), max_to_keep=3)
  after = {s: jax.device_get(mngr.restore(abstract, sharding.state_shardings(abstract, mesh), s))
           for s in (2, 3, 4)}
  mngr.close()
  (s2, _), (s3, m3), (s4, m4) = after[2], after[3], after[4]
  assert int(s3.step) == 3 and m3['skipped_steps'] == 1
  # Step 3's update was dropped whole: parameters, optimiser moments and count, BN statistics.
  for part in ('params', 'opt_state', 'model_state'):
    jax.tree.map(np.testing.assert_array_equal, getattr(s3, part), getattr(s2, part))
  assert _finite(s4.params) and not all(
      np.array_equal(a, b) for a, b in zip(jax.tree.leaves(s4.params), jax.tree.leaves(s3.params)))


def test_corrupt_newest_checkpoint_is_skipped_with_a_warning(tmp_path, data_dir, caplog):
  config = smoke_config(data_dir, evaluate=False)
  train.run(config, str(tmp_path))
  # Truncate step 4's array data files (OCDBT keeps them in `d/` directories), as a disk
  # error or a copy cut short would. (Torn saves never get a step name: Orbax renames a
  # save's tmp dir only when complete; the SIGKILL test below covers those.)
  for victim in (tmp_path / 'checkpoints' / '4').rglob('d/*'):
    victim.write_bytes(victim.read_bytes()[:victim.stat().st_size // 2])
  state, meta = _params(tmp_path, config)   # the same Manager.restore that train.run uses
  assert meta['step'] == 2 and int(state.step) == 2
  assert 'Checkpoint step 4' in caplog.text and 'unreadable' in caplog.text
  # Moved aside, so the resumed run can save step 4 again.
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4.corrupt']


def _start(workdir, data_dir, total_steps: int) -> subprocess.Popen:
  cmd = [sys.executable, '-m', 'sslax.main', '--config', 'configs/simclr_digits.py:smoke',
         '--workdir', str(workdir), f'--config.data.data_dir={data_dir}',
         '--config.progress_bar=False', f'--config.total_steps={total_steps}',
         '--config.log_every=1', '--config.checkpoint.every_steps=8']
  # The same XLA flags as this process (8 devices, -O0): the same program, bit for bit.
  return subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
  deadline = time.monotonic() + timeout
  while not predicate():
    if proc.poll() is not None:
      raise AssertionError(f'run ended early (rc {proc.returncode}): {proc.stderr.read()[-3000:]}')
    if time.monotonic() > deadline:
      proc.kill()
      raise AssertionError('timed out waiting for the run')
    time.sleep(0.02)


def _saved_steps(workdir) -> list[int]:
  """Finalised checkpoint steps (Orbax renames a save's tmp dir to its step when done)."""
  d = workdir / 'checkpoints'
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if d.exists() else []


def test_sigterm_saves_and_exits_0_then_sigkill_then_resume_is_bit_exact(tmp_path, data_dir):
  total = 24
  run_dir = tmp_path / 'run'
  # 1. Preemption notice just after the first logged step: save that step, exit 0.
  proc = _start(run_dir, data_dir, total)
  _wait_for(lambda: (run_dir / 'metrics.jsonl').exists()
            and (run_dir / 'metrics.jsonl').read_text().strip(), proc)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-3000:]
  assert 'Preemption notice (SIGTERM): saved step' in out
  preempted_at = _saved_steps(run_dir)[-1]
  assert 0 < preempted_at < total and not (run_dir / 'results.json').exists()

  # 2. Rerun, then SIGKILL (no chance to clean up) once a later periodic save has landed.
  proc = _start(run_dir, data_dir, total)
  _wait_for(lambda: _saved_steps(run_dir)[-1] > preempted_at, proc)
  proc.kill()
  proc.communicate(timeout=60)
  killed_after = _saved_steps(run_dir)[-1]
  assert killed_after < total and not (run_dir / 'results.json').exists()

  # 3. Rerun to the end; compare with an uninterrupted run of the same config.
  config = smoke_config(data_dir, evaluate=False, total_steps=total, log_every=1,
                        **{'checkpoint.every_steps': 8})
  train.run(config, str(run_dir))
  train.run(config, str(tmp_path / 'straight'))
  resumed, meta = _params(run_dir, config)
  straight, _ = _params(tmp_path / 'straight', config)
  assert meta['step'] == total
  for part in ('params', 'opt_state', 'model_state', 'rng'):
    jax.tree.map(np.testing.assert_array_equal, getattr(resumed, part), getattr(straight, part))
  # Data order and augmentations too: every logged loss of the resumed run matches.
  def losses(d):
    rows = [json.loads(l) for l in (d / 'metrics.jsonl').read_text().splitlines()]
    return {r['step']: r['loss'] for r in rows if 'loss' in r}
  resumed_losses, straight_losses = losses(run_dir), losses(tmp_path / 'straight')
  for step in range(killed_after + 1, total + 1):
    assert resumed_losses[step] == straight_losses[step], step
