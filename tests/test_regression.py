"""Regression downstream: float-labelled tsv:/npz: sources reach ridge (MSE / MAE / R²) and
fine_tune(task='regression') from a config, with a ridge raw-input baseline; the ridge probe
equals scikit-learn's Ridge; class-only evaluators on float targets fail naming the fix."""
import json

import numpy as np
import pytest
from sklearn import linear_model
from sklearn import metrics as sk_metrics

from sslax import train
from sslax.data import sources
from sslax.evaluators import fine_tune
from sslax.evaluators import linear_probe
from sslax.evaluators import raw_input
from tests import exact_metrics
from tests.test_text_methods import text_config


def _write_tsv(path, n, seed):
  """Sentences whose target is their fraction of the letter 'e' (learnable from bytes)."""
  rng = np.random.default_rng(seed)
  words = ['tree', 'sky', 'green', 'bold', 'eel', 'moon', 'deep', 'ant', 'fern', 'rock']
  lines = ['sentence\tlabel']
  for _ in range(n):
    sentence = ' '.join(rng.choice(words, size=rng.integers(3, 8)))
    lines.append(f'{sentence}\t{sentence.count("e") / len(sentence):.4f}')
  path.write_text('\n'.join(lines) + '\n')


def _labels(path):
  """A tsv's float targets, as the source stores them (float32)."""
  return np.array([float(l.split('\t')[1]) for l in path.read_text().splitlines()[1:]],
                  np.float32)


def test_ridge_regression_probe_equals_scikit_learn():
  rng = np.random.default_rng(0)
  x_train, x_test = rng.normal(size=(200, 12)) * 3 + 1, rng.normal(size=(50, 12)) * 3 + 1
  w = rng.normal(size=12)
  y_train = x_train @ w + rng.normal(size=200)
  y_test = x_test @ w + rng.normal(size=50)
  l2 = 0.05
  got = linear_probe.ridge_regression_probe(x_train, y_train, x_test, y_test, l2=l2)
  # Ours: mean squared error + l2 ||w||² on standardised features == sklearn's sum + alpha
  # ||w||² with alpha = l2 * N.
  mean, std = x_train.mean(0), x_train.std(0)
  model = linear_model.Ridge(alpha=l2 * len(y_train)).fit((x_train - mean) / std, y_train)
  pred = model.predict((x_test - mean) / std)
  assert got['mse'] == pytest.approx(sk_metrics.mean_squared_error(y_test, pred), rel=1e-4)
  assert got['mae'] == pytest.approx(sk_metrics.mean_absolute_error(y_test, pred), rel=1e-4)
  assert got['r2'] == pytest.approx(sk_metrics.r2_score(y_test, pred), abs=1e-5)
  assert got['r2'] > 0.8


def test_npz_float_labels_are_regression_targets(tmp_path):
  images = np.zeros((6, 4, 4), np.uint8)
  np.savez(tmp_path / 'train.npz', images=images, labels=np.linspace(-1, 1, 6))
  info = sources.info(f'npz:{tmp_path / "train.npz"}', data_dir=str(tmp_path / 'tfds'))
  assert info.regression and info.num_classes is None
  record = sources.open_split(f'npz:{tmp_path / "train.npz"}', 'train',
                              data_dir=str(tmp_path / 'tfds'))[5]
  assert np.asarray(record['label']).dtype.kind == 'f' and record['label'] == 1.0
  np.savez(tmp_path / 'bad.npz', images=images, labels=np.array([0, 1, np.nan, 0, 1, 0.5]))
  with pytest.raises(ValueError, match='NaN or inf'):
    sources.info(f'npz:{tmp_path / "bad.npz"}', data_dir=str(tmp_path / 'tfds'))


def test_float_tsv_regression_through_config(tmp_path, monkeypatch):
  for split, n, seed in (('train', 240, 0), ('test', 80, 1)):
    _write_tsv(tmp_path / f'{split}.tsv', n, seed)
  overrides = {'eval.source': f'tsv:{tmp_path}', 'evals.fine_tune.task': 'regression',
               'evals.fine_tune.epochs': 2.0}
  config = text_config('mlm', tmp_path / 'tfds', **overrides)
  with config.unlocked():
    for name in ('knn', 'linear_probe'):
      config.evals[name].enabled = False
    config.evals.ridge = dict(type='ridge', source='', every_steps=0, l2=1e-3)
  log = []
  for module, name in ((linear_probe, 'regression_metrics'),
                       (linear_probe, 'ridge_regression_probe'), (fine_tune, 'fine_tune'),
                       (raw_input, 'ridge')):
    exact_metrics.record(monkeypatch, log, module, name)
  results = train.run(config, str(tmp_path / 'run'))
  test_y, train_y = (_labels(tmp_path / f'{split}.tsv') for split in ('test', 'train'))
  # Every score the run took, recomputed by scikit-learn in float64 from its predictions.
  for call in log:
    if call.name.endswith('.regression_metrics'):
      pred, target = (np.asarray(a, np.float64) for a in call.args)
      assert call.result == pytest.approx({
          'mse': sk_metrics.mean_squared_error(target, pred),
          'mae': sk_metrics.mean_absolute_error(target, pred),
          'r2': sk_metrics.r2_score(target, pred)}, rel=1e-9, abs=1e-12)
  # Ridge, then the fine-tune, of the pretrained and the random-init encoder (train.evaluate's
  # order), then the raw-input baseline: each ends with its test score, after the held-out
  # ones the fine-tune (each epoch) and the baseline (each alpha) chose by.
  runs = exact_metrics.groups(log, 'sslax.evaluators.linear_probe.ridge_regression_probe',
                              'sslax.evaluators.fine_tune.fine_tune',
                              'sslax.evaluators.raw_input.ridge')
  assert [r[-1].name.rsplit('.', 1)[1] for r in runs] == [
      'ridge_regression_probe', 'fine_tune', 'ridge_regression_probe', 'fine_tune', 'ridge']
  for key, (*held_out, test, _) in zip(('ridge', 'fine_tune', 'random_init/ridge',
                                        'random_init/fine_tune', 'raw_input/ridge'), runs):
    np.testing.assert_allclose(np.sort(test.args[1]), np.sort(test_y), atol=1e-6)   # all 80
    for m in ('mse', 'mae', 'r2'):
      assert results[f'{key}/{m}'] == test.result[m], (key, m)
    assert bool(held_out) == (key not in ('ridge', 'random_init/ridge')), key
    for call in held_out:   # a part of train
      target = np.asarray(call.args[1], np.float32)
      assert len(target) < len(train_y) and np.isin(target, train_y).all(), key
    if key.endswith('fine_tune'):   # the best held-out MSE picked the test step
      assert results[f'{key}/val_mse'] == min(c.result['mse'] for c in held_out), key
  # The baseline on raw text is a real regressor: TF-IDF of the words predicts the 'e' share.
  assert results['raw_input/ridge/r2'] > 0.5
  table = (tmp_path / 'run' / 'results.md').read_text()
  assert '| raw input (ridge) |' in table and '| ridge/r2 |' in table
  assert json.loads((tmp_path / 'run' / 'results.json').read_text()) == pytest.approx(results)

  # Class-only evaluators on float targets, and a classification fine-tune, name the fix.
  config.evals.knn.enabled = True
  with pytest.raises(ValueError, match=r"config.evals.knn \(type 'knn'\) needs class labels"):
    train.run(config, str(tmp_path / 'run'))
  config.evals.knn.enabled = False
  config.evals.fine_tune.task = 'classification'
  with pytest.raises(ValueError, match='--config.evals.fine_tune.task=regression'):
    train.run(config, str(tmp_path / 'run'))
