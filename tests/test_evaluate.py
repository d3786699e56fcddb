"""A smoke run with every evaluator type, periodic evals and the online probe; then
`sslax.evaluate` on its checkpoint must reproduce the numbers the run wrote."""
import json

import numpy as np
import pytest

from sslax import evaluate
from sslax import train
from tests.conftest import assert_fraction_of
from tests.test_train import smoke_config

EVALS = {
    'ridge': dict(type='ridge', source='', every_steps=0, l2=1e-3),
    'clustering': dict(type='clustering', source='', every_steps=0, n_init=2),
    'fine_tune': dict(type='fine_tune', source='', every_steps=0, task='classification',
                      epochs=0.1, batch_size=64, learning_rate=1e-3, weight_decay=0.0),
}


def test_run_then_evaluate_reproduces_results(tmp_path):
  config = smoke_config(tmp_path / 'tfds', **{'online_probe.enabled': True,
                                              'evals.knn.every_steps': 2})
  for name, ev in EVALS.items():
    config.evals[name] = ev
  workdir = tmp_path / 'run'
  results = train.run(config, str(workdir))

  rows = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  probe_rows = [r for r in rows if 'online_probe/accuracy' in r]
  assert [r['step'] for r in probe_rows] == [2, 4]
  for r in probe_rows:   # the step's own batch: a count over its examples
    assert np.isfinite(r['online_probe/loss'])
    assert_fraction_of(r['online_probe/accuracy'], config.batch_size, 'online_probe/accuracy')
  periodic = [r['step'] for r in rows if 'eval/knn/accuracy' in r]
  assert periodic == [2, 4]   # step 2 during training, step 4 is the final report's
  for key in ('knn/accuracy', 'linear_probe/accuracy', 'ridge/accuracy', 'clustering/nmi',
              'clustering/ari', 'fine_tune/accuracy'):
    assert key in results and 'random_init/' + key in results, key
  for name in ('results.json', 'results.md', 'curves.png', 'embedding.png'):
    assert (workdir / name).stat().st_size > 0, name
  assert '| knn/accuracy |' in (workdir / 'results.md').read_text()

  # The config survives its JSON round trip (tuples come back as tuples).
  loaded = evaluate.load_config(str(workdir))
  assert loaded.evals.linear_probe.l2_grid == config.evals.linear_probe.l2_grid
  # Optional keys the run left out come back with their defaults (so flags can set them).
  assert loaded.evals.knn.enabled and loaded.evals.fine_tune.warmup_steps == 0
  assert 'warmup_steps' not in loaded.evals.knn
  # --evals: fine_tune's compile is the slowest part, and the run scored it already.
  again = evaluate.run(loaded, str(workdir), output_dir=str(tmp_path / 'again'),
                       evals=['knn', 'linear_probe', 'clustering', 'ridge'])
  assert not any('fine_tune' in k for k in again)
  for key in ('knn/accuracy', 'random_init/knn/accuracy', 'clustering/nmi', 'ridge/accuracy'):
    assert again[key] == results[key], key
  for key in ('linear_probe/accuracy', 'random_init/linear_probe/accuracy'):
    assert again[key] == pytest.approx(results[key], abs=1e-6), key
  assert again['step'] == 4
  for name in ('results.json', 'results.md', 'curves.png', 'embedding.png'):
    assert (tmp_path / 'again' / name).exists(), name

  # An earlier checkpoint with several seeds: mean and std per metric.
  loaded.eval.num_seeds = 2
  loaded.evals.knn.enabled = False   # named in --evals, a switched-off evaluator runs
  early = evaluate.run(loaded, str(workdir), step=2, output_dir=str(tmp_path / 'early'),
                       evals=['knn', 'linear_probe'])
  assert early['step'] == 2
  assert early['knn/accuracy_std'] == 0.0   # kNN has no randomness
  assert early['knn/accuracy_seed0'] == early['knn/accuracy_seed1'] == early['knn/accuracy']
  assert 'knn/accuracy_seed2' not in early
  probe = [early[f'random_init/linear_probe/accuracy_seed{i}'] for i in range(2)]
  assert early['random_init/linear_probe/accuracy'] == pytest.approx(np.mean(probe))
  assert early['random_init/linear_probe/accuracy_std'] == pytest.approx(np.std(probe))
  table = (tmp_path / 'early' / 'results.md').read_text()
  knn_row = next(r for r in table.splitlines() if r.startswith('| knn/accuracy |'))
  acc = early['knn/accuracy']
  assert f'{acc:.4f} ± 0.0000 [{acc:.4f}, {acc:.4f}]' in knn_row
  assert '_seed' not in table   # per-seed values sit in their metric's row, not rows of their own


def test_evals_flag_names_an_unknown_evaluator(tmp_path):
  config = smoke_config(tmp_path / 'tfds')
  with pytest.raises(ValueError, match=r"names \['knnn'\], which config.evals lacks; choose from \[.*'knn'"):
    evaluate.select(config, ['knn', 'knnn'])
  picked = evaluate.select(config, ['knn'])
  assert list(picked.evals.keys()) == ['knn'] and picked.evals.knn.enabled
  assert 'linear_probe' in config.evals   # the caller's config is left as it was

