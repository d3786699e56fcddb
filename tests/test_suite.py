"""The evaluation suite's pieces on tiny synthetic data: frozen-encoder check, clustering
metrics, fine-tuning, config and data errors."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from sklearn import metrics as sk_metrics
from sklearn.linear_model import LogisticRegression

from sslax import errors
from sslax import sharding
from sslax.configs import mlm_squad
from sslax.configs import simclr_digits
from sslax.evaluators import clustering
from sslax.evaluators import features
from sslax.evaluators import fine_tune
from sslax.evaluators import linear_probe
from sslax.evaluators import options
from sslax.evaluators import suite


def test_frozen_passes_when_untouched_and_fires_on_every_kind_of_change():
  w = jnp.arange(6, dtype=jnp.float32).reshape(2, 3)
  encoder = ({'w': w, 'n': np.ones(3, np.float32)}, {'batch_stats': {}})
  with features.frozen(encoder, 'a read-only pass'):
    _ = encoder[0]['w'] * 2 + encoder[0]['n']
  assert encoder[0]['n'].flags.writeable   # given back as it was
  # A new array in the tree, even an equal one; an in-place write to a NumPy leaf; a donated
  # (deleted) JAX array; a leaf added to the tree.
  with pytest.raises(AssertionError, match='encoder changed during an injected update'):
    with features.frozen(encoder, 'an injected update'):
      encoder[0]['w'] = w + 0.0
  encoder[0]['w'] = w
  with pytest.raises(ValueError, match='read-only'):
    with features.frozen(encoder, 'an in-place write'):
      encoder[0]['n'][0] += 1e-7
  with pytest.raises(AssertionError, match='encoder changed during a donation'):
    with features.frozen(encoder, 'a donation'):
      jax.jit(lambda x: x + 1, donate_argnums=0)(encoder[0]['w'])
  encoder[0]['w'] = w = jnp.arange(6, dtype=jnp.float32).reshape(2, 3)
  with pytest.raises(AssertionError, match='encoder changed during an addition'):
    with features.frozen(encoder, 'an addition'):
      encoder[1]['batch_stats']['mean'] = jnp.zeros(3)


def test_clustering_scores_equal_sklearn_and_kmeans_finds_blobs():
  rng = np.random.default_rng(0)
  labels, assigned = rng.integers(0, 5, 200), rng.integers(0, 7, 200)
  got = clustering.scores(labels, assigned)
  assert got['nmi'] == sk_metrics.normalized_mutual_info_score(labels, assigned)
  assert got['ari'] == sk_metrics.adjusted_rand_score(labels, assigned)
  # Relabelled perfect clusters score 1; well separated blobs are found.
  assert clustering.scores(labels, (labels + 3) % 5) == {'nmi': 1.0, 'ari': 1.0}
  centres = rng.normal(size=(4, 16)) * 10
  y = rng.integers(0, 4, 400)
  x = centres[y] + rng.normal(size=(400, 16))
  assert clustering.kmeans(x, y, num_clusters=4, n_init=2)['ari'] > 0.99


def _linear_embed(params, model_state, batch):
  del model_state
  return batch['x'] @ params['w_IxD']


def test_fine_tune_regression_recovers_a_linear_target():
  rng = np.random.default_rng(0)
  a_I, x = rng.normal(size=8), rng.normal(size=(600, 8)).astype(np.float32)
  y = (x @ a_I + 0.5).astype(np.float32)
  train, test = ({'x': x[:400], 'label': y[:400]}, {'x': x[400:], 'label': y[400:]})
  # A random, not-yet-useful linear encoder: fine-tuning must move it, not just the head.
  params = {'w_IxD': jnp.asarray(rng.normal(size=(8, 4)) * 0.1, jnp.float32)}
  scores = fine_tune.fine_tune(_linear_embed, params, {}, train, test, task='regression',
                               num_outputs=1, steps=400, batch_size=64, learning_rate=0.05)
  assert scores['r2'] > 0.999, scores
  assert scores['mse'] < 1e-2 * np.var(y), scores
  # 10% of train held out (a random part: no classes); the step kept is the lowest val MSE.
  assert scores['val_mse'] < 1e-2 * np.var(y) and 1 <= scores['best_step'] <= 400, scores


def test_fine_tune_classification_on_separable_data():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(300, 8)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32)
  params = {'w_IxD': jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)}
  scores = fine_tune.fine_tune(_linear_embed, params, {}, {'x': x[:200], 'label': y[:200]},
                               {'x': x[200:], 'label': y[200:]}, task='classification',
                               num_outputs=2, steps=200, batch_size=64, learning_rate=0.05)
  assert scores['accuracy'] > 0.95


def test_lp_ft_head_starts_at_sklearns_logistic_regression(monkeypatch):
  """head_init='probe' (LP-FT) starts the head at the multinomial logistic regression that
  scikit-learn fits to the same standardised features with the same L2 strength."""
  rng = np.random.default_rng(2)
  num_classes, width = 5, 12
  centres = rng.normal(size=(num_classes, width)) * 0.8     # overlapping classes
  offset, scale = rng.normal(size=width) * 3.0, rng.uniform(0.5, 4.0, size=width)
  def sample(n):
    y = rng.integers(0, num_classes, n).astype(np.int32)
    return ((centres[y] + rng.normal(size=(n, width))) * scale + offset).astype(np.float32), y
  (x, y), (x_test, y_test) = sample(800), sample(2000)
  fits, heads = [], []
  real_fit, real_head = linear_probe.fit_logistic, fine_tune._probe_head
  monkeypatch.setattr(linear_probe, 'fit_logistic',
                      lambda *a, **k: fits.append(real_fit(*a, **k)) or fits[-1])
  monkeypatch.setattr(fine_tune, '_probe_head', lambda *a: heads.append(real_head(*a)) or heads[-1])
  identity = {'w_IxD': jnp.eye(width, dtype=jnp.float32)}   # features = inputs
  scores = fine_tune.fine_tune(_linear_embed, identity, {}, {'x': x, 'label': y},
                               {'x': x_test, 'label': y_test}, task='classification',
                               num_outputs=num_classes, steps=1, batch_size=64,
                               learning_rate=0.0, head_init='probe', score_at=(0,),
                               val_fraction=0.0)   # the probe then fits all of x, as sklearn
  (fit,), (head,) = fits, heads
  w, b = np.asarray(head['w_DxL'], np.float64), np.asarray(head['b_L'], np.float64)

  # Ours: mean cross-entropy + l2/2 ||W||^2; sklearn's: C * sum + 1/2 ||W||^2.
  mean, std = x.mean(0), x.std(0)
  sk = LogisticRegression(C=1.0 / (fit['l2'] * len(x)), tol=1e-10, max_iter=10_000)
  sk.fit((x - mean) / std, y)
  sk_w = sk.coef_.T / std[:, None]                          # on raw features, as ours
  sk_b = sk.intercept_ - (mean / std) @ sk.coef_.T
  # Tolerance: our fit is float32 L-BFGS stopped at gradient norm 1e-6 or 300 steps; 1% of
  # the weights' scale is well above that and far below any wrong objective or L2 scaling.
  np.testing.assert_allclose(w, sk_w, rtol=0, atol=1e-2 * np.abs(sk_w).max())
  # Biases are unpenalised, so only their differences between classes are determined.
  np.testing.assert_allclose(b - b.mean(), sk_b - sk_b.mean(), rtol=0,
                             atol=1e-2 * np.abs(sk_b).max())
  ours = (x_test @ w + b).argmax(1)
  assert (ours == sk.predict((x_test - mean) / std)).mean() >= 0.99
  # The fine-tune's step-0 score is that head's accuracy, and sklearn's within 1%.
  assert scores['accuracy@0'] == pytest.approx((ours == y_test).mean(), abs=1e-6)
  assert abs(scores['accuracy@0'] - sk.score((x_test - mean) / std, y_test)) <= 0.01
  assert 0.4 < scores['accuracy@0'] < 0.95, scores            # genuinely overlapping


def test_fine_tune_schedule_warms_up_then_decays_to_zero():
  assert fine_tune.schedule(1e-3, 100, 0) == 1e-3   # constant, as before warmup existed
  lr = fine_tune.schedule(1e-3, 100, 10)
  values = np.array([lr(t) for t in range(101)])
  np.testing.assert_allclose(values[[0, 5, 10, 55, 100]], [0.0, 5e-4, 1e-3, 5e-4, 0.0],
                             atol=1e-9)
  assert np.all(np.diff(values[:11]) > 0) and np.all(np.diff(values[10:]) < 0)
  # With warmup the regression target is still recovered.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(400, 8)).astype(np.float32)
  y = (x @ rng.normal(size=8)).astype(np.float32)
  params = {'w_IxD': jnp.asarray(rng.normal(size=(8, 4)) * 0.1, jnp.float32)}
  scores = fine_tune.fine_tune(_linear_embed, params, {}, {'x': x, 'label': y},
                               {'x': x, 'label': y}, task='regression', num_outputs=1,
                               steps=400, batch_size=64, learning_rate=0.05, warmup_steps=40)
  assert scores['r2'] > 0.99, scores
  with pytest.raises(errors.ConfigError,
                     match=r'fine_tune.warmup_steps=400 must be in \[0, 400\) \(the steps'):
    fine_tune.fine_tune(_linear_embed, params, {}, {'x': x, 'label': y}, {'x': x, 'label': y},
                        task='regression', num_outputs=1, steps=400, batch_size=64,
                        learning_rate=0.05, warmup_steps=400)


_FINE_TUNE = dict(task='classification', num_outputs=2, epochs=1.0, batch_size=8,
                  learning_rate=0.1)


@pytest.mark.parametrize('options, match', [
    (dict(task='segment'), r"config.evals.ft.task='segment' is unknown"),
    (dict(epochs=0.0), r'config.evals.ft.epochs=0.0 must be > 0'),
    (dict(batch_size=0), r'config.evals.ft.batch_size=0 must be >= 1'),
    (dict(val_fraction=1.0), r'config.evals.ft.val_fraction=1.0 must be in \[0, 1\)'),
    (dict(eval_every=-1), r'config.evals.ft.eval_every=-1 must be >= 0'),
    (dict(head_init='linear'), r"config.evals.ft.head_init='linear' is unknown"),
    (dict(task='regression', num_outputs=1, head_init='probe'),
     r"config.evals.ft.head_init='probe' \(LP-FT\) needs task='classification'"),
    # 2 epochs of 18 fitted examples at batch 8 are 5 steps.
    (dict(epochs=2.0, warmup_steps=5),
     r'config.evals.ft.warmup_steps=5 must be in \[0, 5\) \(the steps of 2.0 epochs of 18 '
     r'examples at batch 8\); lower it or raise config.evals.ft.epochs'),
])
def test_fine_tune_options_a_config_sets_are_config_errors_naming_the_key(options, match):
  # Were plain ValueErrors: a traceback after pretraining instead of the CLI's one line.
  x = np.zeros((20, 2), np.float32)
  data = {'x': x, 'label': np.arange(20) % 2}
  with pytest.raises(errors.ConfigError, match=match):
    fine_tune.fine_tune(_linear_embed, {'w_IxD': jnp.ones((2, 2))}, {}, data, data,
                        **{**_FINE_TUNE, **options}, key='config.evals.ft')


def test_a_warmup_longer_than_the_fine_tune_names_the_evaluators_key(tmp_path):
  # Only the data size tells the steps, so options.check cannot see this: the Suite names
  # the evaluator in fine_tune's ConfigError, before anything compiles.
  c = _config()
  c.data.data_dir = str(tmp_path / 'tfds')
  c.evals.fine_tune.update(enabled=True, warmup_steps=10 ** 6)
  evaluators = suite.Suite(c, _linear_embed, sharding.make_mesh(c.mesh))
  with pytest.raises(errors.ConfigError,
                     match=r'config\.evals\.fine_tune\.warmup_steps=1000000 must be in \[0, '):
    evaluators.run({'': [({}, {})]}, names=['fine_tune'])


def _config(**evals) -> ml_collections.ConfigDict:
  c = simclr_digits.get_config('smoke')
  for name, ev in evals.items():
    c.evals[name] = ev
  return c


@pytest.mark.parametrize('ev, match', [
    (dict(type='knnn', source='', every_steps=0), r"config.evals.bad.type='knnn' is unknown"),
    (dict(type='ridge', source='', every_steps=0), r"config.evals.bad .*lacks \['l2'\]"),
    (dict(type='ridge', source='', every_steps=0, l2=1.0, k=3),
     r"config.evals.bad has unknown options \['k'\]"),
    (dict(type='ridge', source='', every_steps=-1, l2=1.0), r'config.evals.bad.every_steps=-1'),
    (dict(type='fine_tune', source='', every_steps=0, task='segment', epochs=1, batch_size=8,
          learning_rate=0.1, weight_decay=0.0), r"config.evals.bad.task='segment'"),
    (dict(type='fine_tune', source='', every_steps=0, task='classification', epochs=1,
          batch_size=8, learning_rate=0.1, weight_decay=0.0, warmup_steps=-1),
     r'config.evals.bad.warmup_steps=-1 must be >= 0'),
    (dict(type='fine_tune', source='', every_steps=0, task='classification', steps=10,
          batch_size=8, learning_rate=0.1, weight_decay=0.0),
     r'config.evals.bad.steps is no longer an option.*epochs'),
    (dict(type='fine_tune', source='', every_steps=0, task='classification', epochs=0,
          batch_size=8, learning_rate=0.1, weight_decay=0.0),
     r'config.evals.bad.epochs=0 must be > 0'),
    (dict(type='fine_tune', source='', every_steps=0, task='classification', epochs=1,
          batch_size=8, learning_rate=0.1, weight_decay=0.0, val_fraction=1.0),
     r'config.evals.bad.val_fraction=1.0 must be in \[0, 1\)'),
    (dict(type='knn', source='', every_steps=0, k=3, temperature=0.1, warmup_steps=1),
     r"config.evals.bad has unknown options \['warmup_steps'\]"),
    (dict(type='fine_tune', source='', every_steps=0, task='classification', epochs=1,
          batch_size=8, learning_rate=0.1, weight_decay=0.0, head_init='linear'),
     r"config.evals.bad.head_init='linear' is unknown"),
    (dict(type='fine_tune', source='', every_steps=0, task='regression', epochs=1,
          batch_size=8, learning_rate=0.1, weight_decay=0.0, head_init='probe'),
     r"config.evals.bad.head_init='probe' \(LP-FT\) needs task='classification'"),
    (dict(type='asr', source='', every_steps=0, epochs=1, batch_size=8,
          learning_rate=0.1, weight_decay=0.0, length_buckets=-1),
     r'config.evals.bad.length_buckets=-1 must be >= 0'),
    # The frozen evaluators' numbers: each was a ValueError inside its probe, after pretraining.
    (dict(type='knn', source='', every_steps=0, k=0, temperature=0.1),
     r'config.evals.bad.k=0 must be >= 1'),
    (dict(type='knn', source='', every_steps=0, k=3, temperature=0.0),
     r'config.evals.bad.temperature=0.0 must be > 0'),
    (dict(type='linear_probe', source='', every_steps=0, l2_grid=(), steps=10),
     r'config.evals.bad.l2_grid=\(\) must be a non-empty sequence'),
    (dict(type='linear_probe', source='', every_steps=0, l2_grid=(1e-3, -1.0), steps=10),
     r'config.evals.bad.l2_grid=\(0.001, -1.0\) must be .* >= 0'),
    (dict(type='linear_probe', source='', every_steps=0, l2_grid=(1e-3,), steps=0),
     r'config.evals.bad.steps=0 must be >= 1'),
    (dict(type='ridge', source='', every_steps=0, l2=0.0), r'config.evals.bad.l2=0.0 must be > 0'),
    (dict(type='clustering', source='', every_steps=0, n_init=0),
     r'config.evals.bad.n_init=0 must be >= 1'),
    (dict(type='fine_tune', source='', every_steps=0, task='classification', epochs=1,
          batch_size=0, learning_rate=0.1, weight_decay=0.0),
     r'config.evals.bad.batch_size=0 must be >= 1'),
])
def test_bad_evaluator_config_names_the_key(ev, match):
  with pytest.raises(errors.ConfigError, match=match):
    options.check(_config(bad=ev))


def _write_npz(path, labels):
  n = 6 if labels is None else len(labels)
  images = np.random.default_rng(0).integers(0, 255, (n, 4, 4), dtype=np.uint8)
  arrays = {'images': images} if labels is None else {'images': images,
                                                      'labels': np.asarray(labels)}
  np.savez(path, **arrays)


@pytest.mark.parametrize('train_labels, test_labels, match', [
    (None, None, r"config.eval.source='npz:.*' has no labels"),
    ([0, 1, 2, 0, 1, 2], [0, 1, 0],
     r'classes of split .*train.* \[0, 1, 2\] differ from .*\[0, 1\]'),
    # kNN's k=20 neighbours among 6 training examples: was knn.py's ValueError, after the
    # features of every encoder were extracted.
    ([0, 1, 2, 0, 1, 2], [0, 1, 2],
     r"config.evals.knn.k=20 exceeds the 6 examples of config.eval.source='npz:.*lower it"),
])
def test_bad_eval_data_names_the_key(tmp_path, train_labels, test_labels, match):
  _write_npz(tmp_path / 'toy_train.npz', train_labels)
  _write_npz(tmp_path / 'toy_test.npz', test_labels)
  c = _config()
  c.eval.source = f'npz:{tmp_path}/toy_{{split}}.npz'
  c.data.data_dir = str(tmp_path / 'tfds')
  evaluators = suite.Suite(c, _linear_embed, sharding.make_mesh(c.mesh))
  with pytest.raises(errors.ConfigError, match=match):
    evaluators.run({'': [({}, {})]})


def test_a_probe_with_two_examples_per_class_cross_validates_its_l2():
  # 20% of two examples per class rounds to none: was a DataError, now 2-fold
  # cross-validation (linear_probe.selection_splits; the few-label budgets need it).
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(4, 3)).astype(np.float32), np.array([0, 0, 1, 1])
  got = linear_probe.fit_logistic(x, y, num_classes=2, l2_grid=(1e-4, 1.0), seed=0)
  folds = linear_probe.selection_splits(y, 0.2, 0)
  assert len(folds) == 2
  # Each fold's held-out accuracy of the fit on the rest alone, averaged over folds.
  expected = {l2: np.mean([linear_probe.logistic_probe(x[fit], y[fit], x[val], y[val],
                                                       num_classes=2, l2_grid=(l2,),
                                                       seed=0)['accuracy']
                           for fit, val in folds]) for l2 in (1e-4, 1.0)}
  assert got['val_accuracy'] == max(expected.values())


def test_online_probe_needs_labels_in_the_training_data(tmp_path):
  from sslax.evaluators import online_probe
  _write_npz(tmp_path / 'unlabelled.npz', None)
  c = _config()
  c.data.source = f'npz:{tmp_path}/unlabelled.npz'
  c.data.data_dir = str(tmp_path / 'tfds')
  c.online_probe.enabled = True
  with pytest.raises(ValueError, match=r'config.online_probe.enabled=True needs labels.*'
                                       r'config.data.source='):
    online_probe.make(c, None)


def test_validate_rejects_an_unknown_evaluator_before_compiling():
  from sslax import validate
  c = _config(typo=dict(type='linear-probe', source='', every_steps=0))
  with pytest.raises(ValueError, match=r"config.evals.typo.type='linear-probe' is unknown"):
    validate.check(c, num_devices=8, num_processes=1)


def test_fine_tune_probe_head_starts_at_the_linear_probe():
  """LP-FT: with a zero learning rate nothing trains, so a 'probe' head scores exactly what
  the logistic probe on the same frozen features scores, and a zero head scores class 0."""
  rng = np.random.default_rng(2)
  x = rng.normal(size=(500, 8)).astype(np.float32)
  y = (x[:, 0] + 0.5 * x[:, 1] + 0.7 * rng.normal(size=500) > 0).astype(np.int32)
  params = {'w_IxD': jnp.asarray(rng.normal(size=(8, 6)), jnp.float32)}
  train, test = {'x': x[:300], 'label': y[:300]}, {'x': x[300:], 'label': y[300:]}
  kwargs = dict(task='classification', num_outputs=2, steps=1, batch_size=64,
                learning_rate=0.0, val_fraction=0.0)
  probed = fine_tune.fine_tune(_linear_embed, params, {}, train, test, head_init='probe',
                               **kwargs)
  feats = {k: np.asarray(_linear_embed(params, {}, d)) for k, d in (('train', train),
                                                                      ('test', test))}
  probe = linear_probe.logistic_probe(feats['train'], train['label'], feats['test'],
                                      test['label'], num_classes=2,
                                      l2_grid=fine_tune.PROBE_L2_GRID)
  assert probed['accuracy'] == probe['accuracy'] > 0.75
  zero = fine_tune.fine_tune(_linear_embed, params, {}, train, test, **kwargs)
  assert zero['accuracy'] == np.mean(test['label'] == 0)
  with pytest.raises(errors.ConfigError, match=r"fine_tune.head_init='probe' \(LP-FT\)"):
    fine_tune.fine_tune(_linear_embed, params, {}, train, test, head_init='probe',
                        **dict(kwargs, task='regression', num_outputs=1))


def test_fine_tune_score_at_records_the_learning_curve():
  """Scores after step t of a run equal a run of t steps (constant rate, same minibatches)."""
  rng = np.random.default_rng(3)
  x = rng.normal(size=(300, 8)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32)
  params = {'w_IxD': jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)}
  data = ({'x': x[:200], 'label': y[:200]}, {'x': x[200:], 'label': y[200:]})
  kwargs = dict(task='classification', num_outputs=2, batch_size=16, learning_rate=0.02,
                val_fraction=0.0)
  long = fine_tune.fine_tune(_linear_embed, params, {}, *data, steps=30, score_at=(0, 5),
                             **kwargs)
  short = fine_tune.fine_tune(_linear_embed, params, {}, *data, steps=5, **kwargs)
  assert set(long) == {'accuracy', 'accuracy@0', 'accuracy@5'}
  assert long['accuracy@0'] == np.mean(y[200:] == 0)   # zero head: class 0 everywhere
  assert long['accuracy@5'] == short['accuracy'] < long['accuracy']


def _noisy_problem(seed: int = 4):
  """Few examples, many inputs, 30% flipped labels: a fine-tune that fits train overfits."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(260, 40)).astype(np.float32)
  clean = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
  y = np.where(rng.random(260) < 0.3, 1 - clean, clean).astype(np.int32)
  params = {'w_IxD': jnp.asarray(rng.normal(size=(40, 40)) * 0.3, jnp.float32)}
  return params, {'x': x[:160], 'label': y[:160]}, {'x': x[160:], 'label': clean[160:]}


def test_fine_tune_reports_the_test_score_of_the_best_validation_step():
  params, train, test = _noisy_problem()
  kwargs = dict(task='classification', num_outputs=2, batch_size=16, learning_rate=0.02,
                val_fraction=0.25, eval_every=4, seed=1)
  points = list(range(4, 60, 4))
  out = fine_tune.fine_tune(_linear_embed, params, {}, train, test, steps=60,
                            score_at=points, **kwargs)
  val = {t: out[f'val_accuracy@{t}'] for t in points}
  val[60] = None
  final = fine_tune.fine_tune(_linear_embed, params, {}, train, test, steps=60,
                              **dict(kwargs, eval_every=60))   # only the last step
  val[60] = final['val_accuracy']
  best = max(val, key=lambda t: (val[t], -t))   # ties: the earlier step
  assert out['best_step'] == best < 60, val   # validation peaked before the end
  assert out['val_accuracy'] == val[best]
  assert out['accuracy'] == out[f'accuracy@{best}'] != final['accuracy']


def test_fine_tune_holds_out_a_disjoint_stratified_part_never_trained_on():
  labels = np.repeat(np.arange(3), [50, 30, 20])
  fit, val = fine_tune.holdout(labels, 0.1, seed=0, task='classification')
  assert np.intersect1d(fit, val).size == 0 and np.union1d(fit, val).size == labels.size
  assert np.bincount(labels[val]).tolist() == [5, 3, 2]
  assert np.array_equal(val, fine_tune.holdout(labels, 0.1, seed=0, task='classification')[1])
  fit_r, val_r = fine_tune.holdout(np.linspace(0, 1, 100), 0.2, seed=0, task='regression')
  assert val_r.size == 20 and np.intersect1d(fit_r, val_r).size == 0

  # Training reads only the fitted part: an encoder that records what it trained on.
  seen = []
  def recording_embed(params, model_state, batch):
    jax.debug.callback(lambda ids: seen.append(np.asarray(ids)), batch['id'])
    return _linear_embed(params, model_state, batch)
  rng = np.random.default_rng(0)
  train = {'x': rng.normal(size=(100, 8)).astype(np.float32), 'label': labels,
           'id': np.arange(100)}
  params = {'w_IxD': jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)}
  out = fine_tune.fine_tune(recording_embed, params, {}, train, train, task='classification',
                            num_outputs=3, epochs=2, batch_size=16, learning_rate=0.01,
                            eval_every=1000)
  fit, val = fine_tune.holdout(labels, 0.1, seed=0, task='classification')
  steps = fine_tune.num_steps(2, fit.size, 16)
  # The first `steps` calls are training batches (scoring comes after, in batches of 16).
  trained = np.concatenate(seen[:steps])
  assert out['best_step'] == steps and np.intersect1d(trained, val).size == 0
  assert set(trained.tolist()) == set(fit.tolist())   # two epochs: every fitted example


def test_best_step_keeps_the_best_held_out_weights_and_shows_its_progress(capsys):
  """best_step.train (qa, asr, segmentation, detection): the weights of the best held-out
  score, ties to the earlier step, every `every` steps and after the last; the bar, when
  asked for, names the fine-tune and shows the best score so far."""
  from sslax.evaluators import best_step
  held_out = {1: 0.0, 2: 0.5, 3: 0.2, 4: 0.5, 5: 0.1}   # a peak at step 2, tied at 4

  def step(variables, opt_state, batch):
    assert batch['x'].shape == (2,)
    return variables + 1, opt_state, 0.0

  for progress in ('', 'asr seed 1/3'):
    best, t, value, losses = best_step.train(
        step, 0, None, {'x': np.arange(5)}, batch_size=2, steps=5, every=1,
        validate=lambda v: held_out[v], seed=0, progress=progress)
    assert (best, t, value, len(losses)) == (2, 2, 0.5, 5)
    err = capsys.readouterr().err
    assert ('asr seed 1/3' in err and 'best_held_out=0.5000' in err) == bool(progress), err


def test_qa_with_a_method_without_embed_sequence_is_a_config_error():
  # Was a ValueError: a traceback (after pretraining) instead of the one-line error.
  c = mlm_squad.get_config('smoke')
  evaluators = suite.Suite(c, lambda p, m, b: b, sharding.make_mesh(c.mesh))
  with pytest.raises(errors.ConfigError, match=r"config\.evals\.qa \(type 'qa'\).*"
                                               r'no embed_sequence.*evals\.qa\.enabled=False'):
    evaluators.run({'': [({}, {})]}, names=['qa'])
