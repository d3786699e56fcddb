"""Few-label evaluation (sslax/evaluators/few_labels.py): the subsets, where hyperparameters
are chosen, the errors, and the report's table and plot."""
import json

import jax.numpy as jnp
import numpy as np
import pytest

from sslax import errors
from sslax import reports
from sslax import sharding
from sslax.configs import simclr_digits
from sslax.evaluators import few_labels
from sslax.evaluators import fine_tune
from sslax.evaluators import linear_probe
from sslax.evaluators import raw_input
from sslax.evaluators import suite


def test_subsets_are_class_balanced_nested_and_drawn_from_labels_and_seed_only():
  labels = np.repeat(np.arange(4), [30, 12, 50, 7])
  np.random.default_rng(0).shuffle(labels)
  five = few_labels.subset(labels, few_labels.Budget(per_class=5), seed=3)
  assert np.bincount(labels[five]).tolist() == [5, 5, 5, 5]
  assert np.array_equal(five, few_labels.subset(labels, few_labels.Budget(per_class=5), seed=3))
  assert not np.array_equal(five, few_labels.subset(labels, few_labels.Budget(per_class=5), 4))
  one = few_labels.subset(labels, few_labels.Budget(per_class=1), seed=3)
  assert set(one) <= set(five)   # one permutation per class: smaller budgets nest
  # A fraction of every class, at least one each (7 * 0.1 rounds to 1).
  tenth = few_labels.subset(labels, few_labels.Budget(fraction=0.1), seed=3)
  assert np.bincount(labels[tenth]).tolist() == [3, 1, 5, 1]
  targets = np.linspace(0, 1, 40)
  assert len(few_labels.subset(targets, few_labels.Budget(fraction=0.25), 0,
                               regression=True)) == 10
  sizes = few_labels.sizes([few_labels.Budget(per_class=5), few_labels.Budget(fraction=0.1)],
                           labels)
  assert sizes == {'labels_per_class': 24.75, 'labels_per_class@5': 5.0,
                   'labels_per_class@10%': 2.5}


@pytest.mark.parametrize('budgets, match', [
    ((0,), r'config.eval.label_budgets: 0 is neither'),
    ((1.5,), r'config.eval.label_budgets: 1.5 is neither'),
    (('5',), r"config.eval.label_budgets: '5' is not a number"),
    ((5, 5.0), r'repeats a budget'),
    (5, r'config.eval.label_budgets=5 must be a tuple'),
])
def test_bad_budgets_name_the_key(budgets, match):
  with pytest.raises(errors.ConfigError, match=match):
    few_labels.parse(budgets)


def test_a_budget_over_the_smallest_class_or_per_class_on_targets_is_one_line():
  labels = np.repeat(np.arange(3), [10, 4, 10])
  with pytest.raises(errors.ConfigError) as e:
    few_labels.check(few_labels.parse((1, 5)), labels, regression=False, what='X')
  assert '\n' not in str(e.value)
  assert str(e.value).startswith('config.eval.label_budgets: 5 labels per class exceeds the '
                                 'smallest class of X (class 1: 4 training examples)')
  with pytest.raises(errors.ConfigError, match='per-class budgets need class labels'):
    few_labels.check(few_labels.parse((5,)), np.linspace(0, 1, 50), regression=True, what='X')
  few_labels.check(few_labels.parse((4, 0.5)), labels, regression=False, what='X')


def test_probe_selection_holds_out_cross_validates_or_fixes_the_choice():
  y = np.repeat(np.arange(3), 10)
  assert len(linear_probe.selection_splits(np.repeat(np.arange(3), 15), 0.2, 0)) == 1
  assert len(linear_probe.selection_splits(y, 0.2, 0)) == 5   # 2 of 10 held out: 5 folds
  folds = linear_probe.selection_splits(np.repeat(np.arange(3), 3), 0.2, 0)
  assert len(folds) == 3 and all(np.bincount(np.repeat(np.arange(3), 3)[val]).tolist()
                                 == [1, 1, 1] for _, val in folds)  # 3-fold, stratified
  assert linear_probe.selection_splits(np.arange(3), 0.2, 0) == []
  # One example per class: the strongest L2 of the grid, with no held-out score.
  x = np.eye(3, dtype=np.float32)
  fit = linear_probe.fit_logistic(x, np.arange(3), num_classes=3, l2_grid=(1e-4, 1e-1))
  assert fit['l2'] == 1e-1 and np.isnan(fit['val_accuracy'])
  # A fine-tune holds out one of every class with two or more, at any val_fraction.
  fit_idx, val_idx = fine_tune.holdout(np.repeat(np.arange(3), 2), 0.01, 0, 'classification')
  assert len(fit_idx) == len(val_idx) == 3


def _write(path, images, labels):
  np.savez(path, images=images, labels=labels)


def _data(tmp_path, noisy_rest: np.ndarray | None = None):
  """Three classes of 4x4 images (a class pattern plus noise), 12 train and 6 test each;
  `noisy_rest`: train indices whose images become pure noise."""
  tmp_path.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  patterns = rng.uniform(0, 255, (3, 4, 4, 1))
  def split(n):
    y = np.repeat(np.arange(3), n)
    x = np.clip(patterns[y] + rng.normal(0, 90, (len(y), 4, 4, 1)), 0, 255)
    return x.astype(np.uint8), y
  (x, y), (x_test, y_test) = split(12), split(6)
  if noisy_rest is not None:
    x[noisy_rest] = rng.integers(0, 255, x[noisy_rest].shape, dtype=np.uint8)
  _write(tmp_path / 'toy_train.npz', x, y)
  _write(tmp_path / 'toy_test.npz', x_test, y_test)
  c = simclr_digits.get_config('smoke')
  c.data.data_dir = str(tmp_path / 'tfds')
  c.data.image_size = 4
  c.eval.source = f'npz:{tmp_path}/toy_{{split}}.npz'
  c.eval.num_seeds = 2
  c.eval.label_budgets = (1, 3)
  c.evals.knn.k = 5
  c.evals.fine_tune.update(enabled=True, epochs=4.0, batch_size=8, learning_rate=0.05)
  return c, y


def _pixels(params, model_state, batch):
  del model_state
  flat = batch['image'].reshape(batch['image'].shape[0], -1).astype(jnp.float32)
  return flat * params['scale']


def _run(c):
  evaluators = suite.Suite(c, _pixels, sharding.make_mesh(c.mesh))
  encoder = ({'scale': jnp.ones(())}, {})
  results = evaluators.run({'': [encoder] * 2, 'random_init/': [encoder] * 2})
  return {**results, **evaluators.raw_input(), **evaluators.budget_sizes()}


def test_few_label_scores_see_only_their_subset_the_same_for_every_encoder(tmp_path):
  c, y = _data(tmp_path / 'a')
  got = _run(c)
  # The same encoder under both prefixes: every few-label score is equal, so both saw the
  # same subsets; seeds draw different ones.
  budget_keys = [k for k in got if '@' in k and not k.startswith(('random_init/', 'raw_input/',
                                                                  'labels_per_class'))]
  assert {'knn@1/accuracy', 'linear_probe@3/accuracy', 'ridge@3/accuracy',
          'fine_tune@1/accuracy', 'fine_tune@3/best_step'} <= set(budget_keys)
  assert 'fine_tune@1/best_step' not in got   # one per class: nothing held out, the last step
  assert all(got[k] == got['random_init/' + k] for k in budget_keys)
  assert got['linear_probe@1/accuracy_seed0'] != got['linear_probe@1/accuracy_seed1']
  # The probe at 3 per class equals logistic_probe on that subset's features alone.
  subset = few_labels.subset(y, few_labels.Budget(per_class=3), c.seed)
  evaluators = suite.Suite(c, _pixels, sharding.make_mesh(c.mesh))
  feats = evaluators._features(c.eval.source, 'config.eval.source', ({'scale': 1.0}, {}))
  (x, labels), (x_test, y_test) = feats['train'], feats['test']
  direct = linear_probe.logistic_probe(x[subset], labels[subset], x_test, y_test,
                                       num_classes=3, l2_grid=tuple(c.evals.linear_probe.l2_grid),
                                       steps=c.evals.linear_probe.steps, seed=c.seed)
  assert got['linear_probe@3/accuracy_seed0'] == direct['accuracy']
  pixels = {s: raw_input.pixels(np.load(tmp_path / f'a/toy_{s}.npz')['images'], 4)
            for s in ('train', 'test')}
  base = raw_input.logistic(pixels['train'][subset], labels[subset], pixels['test'], y_test,
                            seed=c.seed)
  assert got['raw_input/logistic@3/accuracy_seed0'] == base['accuracy']
  assert got['labels_per_class'] == 12.0 and got['labels_per_class@3'] == 3.0

  # Every training image outside seed 0's and seed 1's subsets turned to noise: the
  # all-labels scores move (those examples count there), the few-label ones do not.
  kept = np.union1d(subset, few_labels.subset(y, few_labels.Budget(per_class=3), c.seed + 1))
  c2, _ = _data(tmp_path / 'b', noisy_rest=np.setdiff1d(np.arange(len(y)), kept))
  noisy = _run(c2)
  assert noisy['linear_probe/accuracy'] != got['linear_probe/accuracy']
  assert noisy['raw_input/logistic/accuracy'] != got['raw_input/logistic/accuracy']
  for k in budget_keys + [k for k in got if k.startswith('raw_input/logistic@')]:
    np.testing.assert_equal(noisy[k], got[k], err_msg=k)   # NaN: nothing held out


def test_a_budget_over_the_smallest_class_stops_before_pretraining(tmp_path):
  c, _ = _data(tmp_path)
  c.eval.label_budgets = (13,)
  with pytest.raises(errors.ConfigError, match=r'13 labels per class exceeds the smallest '
                                               r'class of config.eval.source='):
    suite.Suite(c, _pixels, sharding.make_mesh(c.mesh)).check_budgets()


def test_report_has_the_budget_table_and_the_label_efficiency_plot(tmp_path):
  results = {'step': 10, 'labels_per_class': 100.0, 'labels_per_class@1': 1.0,
             'labels_per_class@10%': 10.0}
  for prefix, base in (('', 0.6), ('random_init/', 0.3)):
    for b, bump in (('@1', 0.0), ('@10%', 0.1), ('', 0.2)):
      results[f'{prefix}knn{b}/accuracy'] = base + bump
      results[f'{prefix}knn{b}/accuracy_std'] = 0.01
  results.update({'raw_input/logistic/accuracy': 0.7, 'raw_input/logistic@1/accuracy': 0.2,
                  'raw_input/logistic@10%/accuracy': 0.5, 'linear_probe@1/l2': 0.1})
  table = reports.budget_table(results).splitlines()
  assert table[2] == '| knn/accuracy | 1 per class | 0.6000 ± 0.0100 | 0.3000 ± 0.0100 | 0.2000 |'
  assert table[3].startswith('| knn/accuracy | 10% (10 per class) | 0.7000')
  assert table[4].startswith('| knn/accuracy | all (100 per class) | 0.8000') and len(table) == 7
  assert 'knn@1' not in reports.table(results)   # the main table keeps all-labels rows only
  reports.write(str(tmp_path), results, {})
  assert '## Few labels' in (tmp_path / 'results.md').read_text()
  assert (tmp_path / 'label_efficiency.png').stat().st_size > 10_000
  assert json.loads((tmp_path / 'results.json').read_text())['knn@10%/accuracy'] == 0.7


def test_regression_targets_take_fractions_of_train(tmp_path):
  rng = np.random.default_rng(0)
  for split, n in (('train', 40), ('test', 12)):
    images = rng.integers(0, 255, (n, 4, 4, 1), dtype=np.uint8)
    _write(tmp_path / f'toy_{split}.npz', images, images.mean((1, 2, 3)) / 255.0)
  c, _ = _data(tmp_path / 'unused')
  c.eval.source = f'npz:{tmp_path}/toy_{{split}}.npz'
  c.eval.label_budgets = (0.25,)
  for name in ('knn', 'linear_probe', 'clustering', 'fine_tune'):
    c.evals[name].enabled = False
  got = _run(c)
  subset = few_labels.subset(np.load(tmp_path / 'toy_train.npz')['labels'],
                             few_labels.Budget(fraction=0.25), c.seed, regression=True)
  assert len(subset) == 10
  evaluators = suite.Suite(c, _pixels, sharding.make_mesh(c.mesh))
  feats = evaluators._features(c.eval.source, 'config.eval.source', ({'scale': 1.0}, {}))
  (x, y), (x_test, y_test) = feats['train'], feats['test']
  direct = linear_probe.ridge_regression_probe(x[subset], y[subset], x_test, y_test,
                                               l2=c.evals.ridge.l2)
  assert got['ridge@25%/r2_seed0'] == direct['r2'] and 'raw_input/ridge@25%/r2' in got
  c.eval.label_budgets = (2,)
  with pytest.raises(errors.ConfigError, match='per-class budgets need class labels'):
    suite.Suite(c, _pixels, sharding.make_mesh(c.mesh)).check_budgets()


def test_a_few_label_fine_tune_takes_at_least_its_minimum_steps():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(16, 4)).astype(np.float32), np.arange(16) % 2
  data = {'image': x, 'label': y}
  embed = lambda params, model_state, batch: batch['image'] @ params['w']
  params = {'w': jnp.eye(4)}
  options = dict(task='classification', num_outputs=2, epochs=1.0, batch_size=8,
                 learning_rate=1e-2, val_fraction=0.0, score_at=(25,))
  # One epoch of 16 at batch 8 is 2 steps: step 25 is never reached, unless the minimum says.
  assert 'accuracy@25' not in fine_tune.fine_tune(embed, params, {}, data, data, **options)
  assert 'accuracy@25' in fine_tune.fine_tune(embed, params, {}, data, data, min_steps=30,
                                              **options)
