"""Checks every modality's encoder passes (tests/test_encoder_*.py): a smoke run's workdir,
moved and with its built data deleted, loads with sslax.load; its features equal the
evaluators'; the export round-trips, and its StableHLO runs in a process without sslax."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np

import sslax
from sslax import artifacts
from sslax import evaluate
from sslax import export
from sslax import train
from sslax.data import fetch
from sslax.evaluators import suite

TOLERANCE = 1e-6


def pretrain(config, tmp_path: pathlib.Path) -> tuple[pathlib.Path, np.ndarray, dict]:
  """(moved workdir, the evaluators' test-split features, the test split's raw records).

  The run's built data sets (config.data.data_dir) are deleted before returning.
  """
  workdir = tmp_path / 'run'
  config.evals = {k: v for k, v in config.evals.items() if k == 'knn'}   # any one evaluator
  config.eval.raw_input = False   # its scores are not read here
  # Whole splits (smoke configs sample them), so the features line up with the raw records.
  config.eval.max_train_examples = config.eval.max_test_examples = 0
  train.run(config, str(workdir))
  restored, method, mesh, state, _ = evaluate.restore(evaluate.load_config(str(workdir)),
                                                      str(workdir), random_init=False)
  evaluators = suite.Suite(restored, method.embed, mesh)
  feats = evaluators._features(restored.eval.source, 'config.eval.source',   # pylint: disable=protected-access
                               (state.params, state.model_state))
  from sslax.data import sources
  split = sources.open_split(restored.eval.source, restored.eval.test_split,
                             data_dir=restored.data.data_dir)
  raw = [split[i] for i in range(len(split))]
  moved = tmp_path / 'moved'
  shutil.move(str(workdir), str(moved))
  shutil.rmtree(config.data.data_dir)
  return moved, feats[restored.eval.test_split][0], raw


def check_load_matches_evaluators(workdir, expected: np.ndarray, raw_inputs, **kwargs):
  encoder = sslax.load(str(workdir))
  assert encoder.step == json.loads((workdir / 'config.json').read_text())['total_steps']
  got = encoder.embed(raw_inputs, **kwargs)
  assert got.shape == expected.shape and got.dtype == np.float32
  np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)
  return encoder


def check_export(encoder, tmp_path: pathlib.Path, prepared: dict[str, np.ndarray],
                 expected: np.ndarray) -> pathlib.Path:
  """Export round trip: weights bitwise, sslax.load(export), and the StableHLO function
  called from a fresh interpreter that cannot import sslax."""
  out = export.export(encoder, str(tmp_path / 'export'))
  params, model_state = artifacts.read_export_weights(out)
  for mine, theirs in ((encoder.params, params), (encoder.model_state, model_state)):
    a, b = artifacts.flatten(mine, 'x'), artifacts.flatten(theirs, 'x')
    assert sorted(a) == sorted(b)
    for k in a:
      assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
  reloaded = sslax.load(str(out))
  np.testing.assert_allclose(reloaded.embed_prepared(prepared), expected, atol=TOLERANCE, rtol=0)

  np.savez(tmp_path / 'inputs.npz', **prepared)
  # The evaluators ran `rows` examples per device; XLA CPU's results depend on the batch shape
  # in the last float bits (audio features differ by up to 5e-6 between 40 rows at once and
  # 8 per device, measured), so the fresh process calls the function on the same shapes.
  rows = encoder.batch_size // jax.device_count()
  # sys.modules['sslax'] = None makes any import of sslax fail, installed or not: the call
  # below can only work if the artefact needs nothing from sslax.
  script = f"""
import sys
sys.modules['sslax'] = None
import jax, numpy as np
from safetensors.numpy import load_file
weights = load_file({str(out / artifacts.WEIGHTS)!r})
fn = jax.export.deserialize(open({str(out / artifacts.FUNCTION)!r}, 'rb').read())
batch = dict(np.load({str(tmp_path / 'inputs.npz')!r}))
n = len(next(iter(batch.values())))
chunks = [fn.call(weights, {{k: v[i:i + {rows}] for k, v in batch.items()}})
          for i in range(0, n, {rows})]
np.save({str(tmp_path / 'features.npy')!r}, np.concatenate([np.asarray(c) for c in chunks]))
"""
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  env['JAX_PLATFORMS'] = 'cpu'
  subprocess.run([sys.executable, '-c', script], cwd=tmp_path, env=env, check=True,
                 timeout=300)
  np.testing.assert_allclose(np.load(tmp_path / 'features.npy'), expected, atol=TOLERANCE,
                             rtol=0)
  return out


def prepared_test_split(encoder, raw) -> dict[str, np.ndarray]:
  """The model inputs the pipeline makes of raw records (what the exported function takes)."""
  transform = fetch.record_transform(encoder.config.data)
  rows = [fetch.fetched(r, transform, 'test') for r in raw]   # pylint: disable=protected-access
  return {k: np.stack([r[k] for r in rows]) for k in encoder.input_spec}
