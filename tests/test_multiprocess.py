"""Two real processes on 127.0.0.1 (2 fake CPU devices each) train like one 4-device process,
across a preemption notice (SIGTERM) to both that saves one checkpoint the rerun resumes."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys

import jax
import numpy as np

from sslax import cli
from sslax import methods
from sslax import optim
from sslax import sharding
from sslax import train
from sslax.data import readers
from sslax.data import train_batches
from tests.test_train import _params, data_dir, smoke_config  # noqa: F401 (fixture)

REPO = pathlib.Path(__file__).resolve().parents[1]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _start(workdir, data_dir, devices: int, *extra: str) -> subprocess.Popen:
  """`python -m sslax.main` on the SimCLR smoke config; `extra`: distributed and config flags."""
  cmd = [sys.executable, '-m', 'sslax.main', '--config', 'configs/simclr_digits.py:smoke',
         '--workdir', str(workdir), f'--config.data.data_dir={data_dir}',
         '--config.progress_bar=False', '--config.log_every=1',
         '--config.evals.linear_probe.steps=5', *extra]   # evaluation: only that it runs
  # Not this process's 8-device flag (STACK.md): each child sets its own device count, and
  # compiles as this process does.
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'XLA_FLAGS':
         f'--xla_force_host_platform_device_count={devices} {cli.FAST_COMPILE_FLAGS}'}
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _start_two(workdir, data_dir, *extra: str) -> list[subprocess.Popen]:
  """Processes 0 and 1 of one run, 2 CPU devices each, coordinated over 127.0.0.1."""
  port = _free_port()
  return [_start(workdir, data_dir, 2, f'--coordinator_address=127.0.0.1:{port}',
                 '--num_processes=2', f'--process_id={i}', '--initialization_timeout=60', *extra)
          for i in range(2)]


def _losses(workdir) -> list[tuple[int, float]]:
  rows = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return [(r['step'], r['loss']) for r in rows if 'loss' in r]


def _one_process_four_devices(config):
  """train.run's state, step and data stream on 4 of this process's devices: (losses, state)."""
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:4])
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  init = train.make_init(method, tx, train.sample_batch(config), config.seed)
  shardings = sharding.state_shardings(jax.eval_shape(init), mesh, config.fsdp_min_size)
  state = jax.jit(init, out_shardings=shardings)()
  step = jax.jit(train.make_train_step(method, tx, lr),
                 in_shardings=(shardings, sharding.batch_sharding(mesh)))
  batches = train_batches.make_train(config, mesh)
  losses = []
  for s in range(1, config.total_steps + 1):
    state, metrics = step(state, next(batches))
    losses.append((s, float(metrics['loss'])))
  return losses, jax.device_get(state)


def _finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[str]:
  """Waits for every process; all must exit 0. Returns their stdouts."""
  outs = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=timeout)
      assert p.returncode == 0, err[-3000:]
      outs.append(out)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  return outs


def test_two_processes_match_one_four_device_process_through_a_preemption(tmp_path, data_dir):
  """Two processes train like one 4-device process, across a preemption notice: SIGTERM to
  both (as a VM shutdown or `scancel` sends) saves one checkpoint of the last step trained and
  exits 0; the same command resumes from it, and one 8-device process restores the end."""
  from tests.test_faults import _saved_steps, _wait_for
  # A constant learning rate: the resumed run's shorter total_steps then changes no update.
  # Small, so Adam's sign-like steps on near-zero gradients (whose float reduction order
  # differs between 2 processes and 1) stay small over the run's tens of steps.
  constant_lr = {'optim.warmup_steps': 0, 'optim.end_lr_fraction': 1.0,
                 'optim.learning_rate': 1e-4}
  lr_flags = [f'--config.{k}={v}' for k, v in constant_lr.items()]
  config = smoke_config(data_dir)
  # Build the digits data once here, so the children only read it.
  readers.Records(config.data.source, 'train', data_dir=str(data_dir), in_memory=False)
  run_dir = tmp_path / 'two'

  # 1. Preemption notice to both processes once step 1 is logged. Only the preemption saves
  # (every_steps=total): a periodic save would hide one that saved nothing.
  total = 500
  procs = _start_two(run_dir, data_dir, *lr_flags, f'--config.total_steps={total}',
                     f'--config.checkpoint.every_steps={total}')
  try:
    _wait_for(lambda: (run_dir / 'metrics.jsonl').exists()
              and (run_dir / 'metrics.jsonl').read_text().strip(), procs[0])
  finally:
    for p in procs:
      p.send_signal(signal.SIGTERM)
  outs = _finish(procs, timeout=120)
  assert 'Preemption notice (SIGTERM): saved step' in outs[0]
  saved, trained = _saved_steps(run_dir), [s for s, _ in _losses(run_dir)]
  assert len(saved) == 1 and 0 < saved[0] == trained[-1] < total, (saved, trained[-3:])
  assert not (run_dir / 'results.json').exists()

  # 2. The same command resumes (to 2 more steps) and evaluates; meanwhile, in this process,
  # the reference: one process, 4 devices, uninterrupted.
  preempted_at, total = saved[0], saved[0] + 2
  print(f'preempted at step {preempted_at}')
  procs = _start_two(run_dir, data_dir, *lr_flags, f'--config.total_steps={total}')
  config = smoke_config(data_dir, total_steps=total, **constant_lr)
  one, reference = _one_process_four_devices(config)
  outs = _finish(procs)
  assert f'Resuming from step {preempted_at}' in outs[0]

  two = _losses(run_dir)
  # Only process 0 wrote: one row per step, not two; no step lost or repeated.
  assert [s for s, _ in two] == [s for s, _ in one] == list(range(1, total + 1))
  np.testing.assert_allclose([l for _, l in two], [l for _, l in one], rtol=1e-5)
  assert (run_dir / 'results.json').exists()

  # One checkpoint, written by both processes, restored here by one 8-device process.
  restored, meta = _params(run_dir, config)
  assert meta['step'] == total
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               restored.params, reference.params)
