"""What the learning tests (tests/test_learning_*.py) share: a short run that must learn.

Each learning test pretrains one method for under a minute of CPU and asserts that what it
learnt beats a baseline (random init, unigram, copy-last-frame) by a margin chosen from the seed
spread measured when the test was written (numbers in each test's docstring); a method whose
loss is a constant, or whose gradients are zero, fails them.

Training runs in a child Python process on one CPU device, not in the test process: with the
8 fake devices of conftest.py, runs of a few hundred steps on a loaded 2-core machine aborted
in XLA's CPU all-reduce ("Termination timeout for `all reduce` ... only 5 of them arrived",
3 of 6 runs while writing these tests). One device has no collectives. The child keeps XLA's
default optimisation level: conftest's -O0 cost the same CPU here (image test: 44.8 vs 44.5 s).
The test modules import conftest only inside their test functions, so the child, which
imports them for their `config`, never sees the fake devices.
"""
import json
import os
import pathlib
import subprocess
import sys

import ml_collections

REPO = pathlib.Path(__file__).resolve().parents[1]
# The child's program: the test module's config for a seed, trained by the ordinary trainer.
_TRAIN = ('import sys\n'
          'from importlib import import_module\n'
          'from sslax import cli, train\n'
          'cli.tune_gc()   # as the sslax commands do\n'
          'module, data_dir, seed, workdir = sys.argv[1:]\n'
          'train.run(import_module(module).config(data_dir, int(seed)), workdir)\n')


def quick(config: ml_collections.ConfigDict, data_dir, evals=('knn', 'linear_probe')):
  """`config` with only `evals` on (at the end of training), no progress bar, one checkpoint."""
  for name, ev in config.evals.items():
    ev.enabled = name in evals
    ev.every_steps = 0
  config.progress_bar = False
  config.checkpoint.every_steps = config.total_steps
  config.log_every = config.total_steps
  config.data.data_dir = str(data_dir)
  return config


def _child(args: list[str]) -> str:
  """Runs `python args...` from the repository root on one CPU device; returns its stdout."""
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'XLA_FLAGS': ''}
  # ~45 s of CPU at most, but 10 min of wall time was seen with four of these beside other
  # jobs on 2 cores (load average 22): the limit only catches a hang.
  done = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=1800)
  if done.returncode:
    raise AssertionError(f'{args} failed ({done.returncode}):\n{done.stderr[-4000:]}')
  return done.stdout


def train(module: str, data_dir, workdir, seed: int = 0) -> dict:
  """Trains `module`'s `config(data_dir, seed)` in `workdir`; returns its results.json."""
  _child(['-c', _TRAIN, module, str(data_dir), str(seed), str(workdir)])
  return json.loads((pathlib.Path(workdir) / 'results.json').read_text())


def experiment(script: str, *args: str) -> dict:
  """The JSON that experiments/`script` prints."""
  return json.loads(_child([str(REPO / 'experiments' / script), *args]))
