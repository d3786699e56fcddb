"""Test set-up: 8 fake CPU devices, set before JAX initialises its backend."""
import os
import pathlib

os.environ["JAX_PLATFORMS"] = "cpu"
# A persistent compilation cache for this test session, shared by the xdist workers and the
# child processes the tests start (they inherit the environment): many tests compile the
# same smoke programs (a resume compiles its train step again), and a cache hit loads the
# executable instead (a paper-config smoke + resume: 27.5 s cold, 22.4 s with the cache
# filling, 12.9 s warm). The key covers the program, the XLA flags and the backend, so a hit
# is the same executable. A fresh directory per session: no test sees another run's state.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import atexit
  import shutil
  import tempfile
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="sslax-test-jax-cache-")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)
# Cache every program, not only those that compiled for over 1 s (JAX's default): at -O0
# most test programs compile faster than that, yet each resume or second encoder compiles
# them again. Measured alone: tests/test_paper_configs.py 142 -> 132 s of CPU,
# test_methods_vision.py + test_train.py 178 -> 173 s.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# JAX writes the Python traceback of every op (up to 100 frames) into the MLIR locations of
# each program it lowers; the suite lowers thousands of programs and reads none of them
# (the locations only name ops in profiles and XLA dumps). The innermost user frame alone:
# tests/test_methods_vision.py, alone and idle, 123 and 117 s -> 117 and 108 s (alternating).
# The children the tests start inherit it.
os.environ.setdefault("JAX_INCLUDE_FULL_TRACEBACKS_IN_LOCATIONS", "0")

import pytest  # noqa: E402

# JAX reads XLA_FLAGS when it starts its backend, not at import (cli imports JAX for
# jax.distributed), so setting it below still applies.
from sslax import cli  # noqa: E402

# The tests compile as `:smoke` runs do (config.fast_compile, cli.FAST_COMPILE_FLAGS): LLVM
# level 0 alone compiled the tiny test programs 3-6x faster (smoke train step 11.8 s ->
# 4.5 s, init 12 s -> 1.9 s), the other two flags cut the CPU of the compile-bound test
# files by another ~40%; runtime barely matters at test sizes. Production runs keep XLA's
# defaults; the learning tests' children too (tests/learning.py), as they run many steps.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8 "
    + cli.FAST_COMPILE_FLAGS).strip()

# The test processes compile hundreds of small programs: the commands' garbage-collector
# thresholds (sslax/cli.py) save them time too (~10% of tests/test_train.py, measured idle).
cli.tune_gc()

# Test files by CPU time, heaviest first (pytest --durations, 2026-12-07): the workers take
# files in collection order (pyproject: --dist loadfile --no-loadscope-reorder), so the long
# ones start first and the short ones fill in at the end, and both workers finish together.
# xdist's default order (most tests first) left the one-test learning files for last.
SLOWEST_FILES = (
    'test_paper_configs.py', 'test_qa_asr_runs.py', 'test_learning_text.py',
    'test_text_methods.py', 'test_vit_methods.py', 'test_learning_image.py',
    'test_methods_vision.py', 'test_learning_video.py', 'test_audio_methods.py',
    'test_learning_audio.py', 'test_multiprocess.py', 'test_train.py', 'test_faults.py',
    'test_cli.py', 'test_dense_runs.py', 'test_image_folders.py', 'test_mae.py')


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: files stay whole


REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(relative: str) -> pathlib.Path:
  """Path under ../shared/data; skips when absent, fails when absent under CI=true."""
  path = SHARED_DATA / relative
  if not path.exists():
    if os.environ.get("CI") == "true":
      pytest.fail(f"{path} is missing; CI must have ../shared/data beside the clone.")
    pytest.skip(f"{path} is absent (real data lives in ../shared/data).")
  return path


def assert_fraction_of(value: float, n: int, what: str = '') -> None:
  """Asserts `value` is k / n for a whole k in [0, n]: an accuracy over exactly `n` examples.

  A score that also counted the padded rows of the last eval batch, or read another split,
  has another denominator and fails (unless its count happens to divide evenly)."""
  count = value * n
  assert 0 <= round(count) <= n and abs(count - round(count)) < 1e-3, (
      f'{what}={value!r} is not a count over {n} examples ({count:.4f} / {n})')


def without_evaluation(config):
  """Switches off, in `config` itself, every evaluator and the raw-input baseline, and
  returns it: for a run whose test compares train states, not scores (the evaluations are
  other tests'). The trainer then compiles no evaluation and no random-init encoder, about
  half of a digits smoke run."""
  for ev in config.evals.values():
    ev.enabled = False
  config.eval.raw_input = False
  return config
