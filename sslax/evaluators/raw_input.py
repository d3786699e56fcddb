"""A raw-input baseline: scikit-learn logistic (or, for float targets, ridge) regression on
the inputs themselves.

Beating the encoder's own random initialisation is a low bar; a well-kept library's linear
classifier on the raw inputs of the same labelled splits is the next one (SimCLR and its
successors report raw-pixel baselines for this reason). Per modality of the eval source:

- images: flattened pixels of the evaluation view (`augment.image.eval_view`: the central
  square resized to `config.data.image_size`), the input the encoder sees;
- text: TF-IDF of the records' raw text (word unigrams and bigrams, sublinear term
  frequency), read from the source itself, not from token ids;
- audio: the time-mean of sslax's own log-mel frames (`augment.audio.log_mel` with
  `config.audio`'s front end), over each clip's real frames.

Dense features are standardised with training statistics; TF-IDF rows are already
L2-normalised, and scaling each sparse column to unit variance would blow rare words up, so
they are left as they are. C is chosen on a stratified held-out part of train (the split
`linear_probe` uses for its L2 grid), then the classifier is refit on all of train. Float
labels (regression sources) get scikit-learn's Ridge instead, its alpha chosen by held-out R²
on a random part of train, and report MSE, MAE and R² (`ridge`).
Training sets over `max_train` examples are subsampled (stratified, from the seed), so the
cost stays a few CPU-seconds.

Shape suffixes: N = training examples, M = test examples, D = feature width.
"""
from collections.abc import Callable, Mapping, Sequence
from typing import Any
import warnings

import jax
import ml_collections
import numpy as np
from sklearn import feature_extraction
from sklearn import linear_model
from sklearn import model_selection
from sklearn import pipeline as sk_pipeline
from sklearn import preprocessing
from sklearn.exceptions import ConvergenceWarning
import threadpoolctl

from sslax import reports
from sslax.augment import audio as audio_aug
from sslax.augment import image as image_aug
from sslax.data import readers
from sslax.data import sources
from sslax.evaluators import few_labels
from sslax.evaluators import linear_probe

# Inverse L2 strengths tried (scikit-learn's C); ties in held-out accuracy go to the smaller C
# (stronger regularisation), as linear_probe's ties go to the larger L2.
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
# L-BFGS iterations per fit: a cap on CPU time, not a convergence target (an unconverged fit
# is still a valid, if slightly pessimistic, baseline).
MAX_ITER = 200
VAL_FRACTION = 0.2
# The most frequent unigrams and bigrams kept: bounds the classifier's width on big corpora.
TFIDF_MAX_FEATURES = 50_000
# Features are computed in chunks of this many examples (bounded host and device memory).
_CHUNK = 512


def logistic(x_train: Any, y_train: np.ndarray, x_test: Any, y_test: np.ndarray, *,
             standardize: bool = True, c_grid: Sequence[float] = C_GRID,
             max_iter: int = MAX_ITER, max_train: int = 0, seed: int = 0) -> dict[str, float]:
  """Test accuracy of scikit-learn's LogisticRegression with C chosen on held-out train data.

  Args:
    x_train, x_test: [N, D] / [M, D] features (numpy, or scipy sparse with standardize=False).
    y_train, y_test: integer class labels.
    standardize: zero mean, unit variance per feature with the statistics of the part fitted.
    c_grid, max_iter: C values tried and L-BFGS iterations per fit.
    max_train: > 0 caps the training examples (a stratified subsample drawn with `seed`).
    seed: the subsample and the held-out split.

  Returns:
    {'accuracy': test accuracy of the refit on all (kept) training examples, 'c': the chosen C,
     'val_accuracy': its held-out accuracy, 'num_train': training examples used}.
  """
  y_train, y_test = np.asarray(y_train), np.asarray(y_test)
  if max_train and y_train.size > max_train:
    keep, _ = model_selection.train_test_split(np.arange(y_train.size), train_size=max_train,
                                               stratify=y_train, random_state=seed)
    keep = np.sort(keep)
    x_train, y_train = x_train[keep], y_train[keep]
  splits = linear_probe.selection_splits(y_train, VAL_FRACTION, seed)

  def fit(rows: np.ndarray, c: float):
    model = linear_model.LogisticRegression(C=c, max_iter=max_iter)
    if standardize:
      model = sk_pipeline.make_pipeline(preprocessing.StandardScaler(), model)
    return model.fit(x_train[rows], y_train[rows])

  # One BLAS thread: in a process where JAX's thread pool is alive, OpenBLAS's own threads
  # made these small fits 100-200x slower on 2 cores (2.4 s vs 0.018 s for one fit on digits).
  with warnings.catch_warnings(), threadpoolctl.threadpool_limits(1):
    warnings.simplefilter('ignore', ConvergenceWarning)   # MAX_ITER caps the cost on purpose
    # Held-out accuracy per C, averaged over the selection splits (one held-out part, or
    # k folds at few labels: linear_probe.selection_splits); with none (one example of a
    # class), the smallest C, as the probe takes its strongest L2.
    val = {c: 0.0 for c in c_grid}
    for fit_index, val_index in splits:
      for c in c_grid:
        val[c] += float(np.mean(fit(fit_index, c).predict(x_train[val_index])
                                == y_train[val_index])) / len(splits)
    best_c = max(c_grid, key=lambda c: (val[c], -c))   # ties: the smaller C
    best_val = val[best_c] if splits else float('nan')
    model = fit(np.arange(y_train.size), best_c)
  return {'accuracy': float(np.mean(model.predict(x_test) == y_test)), 'c': float(best_c),
          'val_accuracy': best_val, 'num_train': float(y_train.size)}


ALPHA_GRID = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def ridge(x_train: Any, y_train: np.ndarray, x_test: Any, y_test: np.ndarray, *,
          standardize: bool = True, alpha_grid: Sequence[float] = ALPHA_GRID,
          max_train: int = 0, seed: int = 0) -> dict[str, float]:
  """Test {'mse', 'mae', 'r2'} of scikit-learn's Ridge on float targets, alpha chosen by R²
  on a random VAL_FRACTION of train, then refit on all of it; plus 'alpha', 'num_train'."""
  y_train, y_test = (np.asarray(y, np.float64) for y in (y_train, y_test))
  rng = np.random.default_rng(seed)
  if max_train and y_train.size > max_train:
    keep = np.sort(rng.choice(y_train.size, max_train, replace=False))
    x_train, y_train = x_train[keep], y_train[keep]
  order = rng.permutation(y_train.size)
  n_val = max(1, int(round(VAL_FRACTION * y_train.size)))
  val_index, fit_index = np.sort(order[:n_val]), np.sort(order[n_val:])

  def fit(rows: np.ndarray, alpha: float):
    model = linear_model.Ridge(alpha=alpha)
    if standardize:
      model = sk_pipeline.make_pipeline(preprocessing.StandardScaler(), model)
    return model.fit(x_train[rows], y_train[rows])

  with threadpoolctl.threadpool_limits(1):   # see `logistic`
    scores = {a: linear_probe.regression_metrics(fit(fit_index, a).predict(x_train[val_index]),
                                                 y_train[val_index])['r2']
              for a in sorted(alpha_grid)}
    best = max(scores, key=lambda a: (scores[a], a))   # ties: the stronger regularisation
    model = fit(np.arange(y_train.size), best)
  return {**linear_probe.regression_metrics(model.predict(x_test), y_test),
          'alpha': float(best), 'num_train': float(y_train.size)}


def pixels(images_NxHxWxC: np.ndarray, image_size: int) -> np.ndarray:
  """Flattened evaluation views [N, image_size² * C], float32 in [0, 1]."""
  view = jax.jit(lambda x: image_aug.eval_view(x, image_size).reshape(x.shape[0], -1))
  return np.concatenate([np.asarray(view(images_NxHxWxC[i:i + _CHUNK]))
                         for i in range(0, len(images_NxHxWxC), _CHUNK)]).astype(np.float32)


def mean_log_mel(audio_NxT: np.ndarray, audio_len_N: np.ndarray,
                 config: ml_collections.ConfigDict) -> np.ndarray:
  """Each clip's log-mel frames [N, n_mels], averaged over its real frames."""
  a = config.audio
  mel = dict(sample_rate=int(config.data.sample_rate), n_fft=a.n_fft, hop=a.hop,
             n_mels=a.n_mels, fmin=a.fmin, fmax=a.fmax)

  @jax.jit
  def features(audio_BxT, len_B):
    x_BxFxM = audio_aug.log_mel(audio_BxT, **mel)
    w_BxF = audio_aug.frame_mask(len_B, x_BxFxM.shape[1], a.n_fft, a.hop).astype(x_BxFxM.dtype)
    return (x_BxFxM * w_BxF[..., None]).sum(1) / w_BxF.sum(1, keepdims=True)

  return np.concatenate([np.asarray(features(audio_NxT[i:i + _CHUNK], audio_len_N[i:i + _CHUNK]))
                         for i in range(0, len(audio_NxT), _CHUNK)]).astype(np.float32)


def raw_text(source: str, split: str, config: ml_collections.ConfigDict,
             max_examples: int = 0) -> list[str]:
  """The stored text of a split's records, in record order, sampled as `readers.Records`
  samples them (`max_examples`, config.eval.max_*_examples)."""
  records = sources.open_split(source, split, data_dir=config.data.data_dir or None,
                               bad_files=config.data.get('bad_files', 'error'))
  texts = []
  for i in readers.spread(len(records), max_examples):
    text = np.asarray(records[i]['text']).item()
    texts.append(text.decode('utf-8', 'replace') if isinstance(text, bytes) else str(text))
  return texts


def kind(example: Mapping[str, np.ndarray]) -> str | None:
  """Which baseline fits a split's arrays: 'audio', 'text', 'image' or None (e.g. video)."""
  if 'audio' in example and 'audio_len' in example:
    return 'audio'
  if 'tokens' in example:
    return 'text'
  if 'image' in example and example['image'].ndim == 4:
    return 'image'
  return None


class Baseline:
  """The raw-input baseline of one eval source's train and test splits (readers.Records):
  features of the test records `test_rows` once, then a fit per set of training rows (all of
  train, or the labelled subset of a few-label budget, few_labels.py); `score` is keyed 'logistic/<metric>' (class
  labels, see `logistic`) or 'ridge/<metric>' (float targets, see `ridge`).

  Text's TF-IDF is fitted once on all of the training split's text: it uses no labels, as the
  encoder's pretraining uses none, so a few-label baseline keeps the full vocabulary.
  """

  def __init__(self, config: ml_collections.ConfigDict, source: str, train: readers.Records,
               test: readers.Records, test_rows: np.ndarray):
    self.config, self.source, self.train, self.test = config, source, train, test
    self.test_rows = test_rows
    self.kind = kind(train.take(np.arange(1))) if len(train) else None
    self.regression = np.issubdtype(np.asarray(train.labels()).dtype, np.floating)
    self._x_test, self._tfidf_train = None, None

  def _features(self, records: readers.Records, rows: np.ndarray) -> Any:
    if self.kind == 'image':
      return pixels(records.take(rows)['image'], self.config.data.image_size)
    if self.kind == 'audio':
      arrays = records.take(rows)
      return mean_log_mel(arrays['audio'], arrays['audio_len'], self.config)
    e = self.config.eval
    if self._tfidf_train is None:
      self._tfidf = feature_extraction.text.TfidfVectorizer(
          ngram_range=(1, 2), sublinear_tf=True, max_features=TFIDF_MAX_FEATURES)
      self._tfidf_train = self._tfidf.fit_transform(raw_text(
          self.source, e.train_split, self.config, int(e.get('max_train_examples', 0)))).tocsr()
    if records is self.train:
      return self._tfidf_train[rows]
    texts = raw_text(self.source, e.test_split, self.config, int(e.get('max_test_examples', 0)))
    return self._tfidf.transform([texts[i] for i in rows])

  def score(self, rows: np.ndarray, *, seed: int, max_train: int = 0) -> dict[str, float]:
    """The baseline fitted on training records `rows`, scored on the whole test split; {}
    for inputs without one (video clips)."""
    if self.kind is None:
      return {}
    if self._x_test is None:
      self._x_test = self._features(self.test, self.test_rows)
    model, name = (ridge, 'ridge') if self.regression else (logistic, 'logistic')
    scores = model(self._features(self.train, rows), np.asarray(self.train.labels())[rows],
                   self._x_test, np.asarray(self.test.labels())[self.test_rows],
                   max_train=max_train,
                   seed=seed, **({'standardize': False} if self.kind == 'text' else {}))
    return {f'{name}/{k}': v for k, v in scores.items()}


def scores(config: ml_collections.ConfigDict, source: str,
           records: Mapping[str, readers.Records], budgets: Sequence[few_labels.Budget],
           subset: Callable[[few_labels.Budget, int], np.ndarray]) -> dict[str, float]:
  """The baseline on `records` ({split: Records} of config.eval's splits): once on all of
  train with config.seed, as 'raw_input/<model>/<metric>', and at each few-label budget on
  `subset(budget, seed)` for seeds config.seed + i, i < config.eval.num_seeds (the encoders'
  own subsets), as 'raw_input/<model>@<budget>/<metric>' with '_std' and '_seed<i>'."""
  e = config.eval
  train, test = records[e.train_split], records[e.test_split]
  # A streamed split (over config.eval.max_host_bytes) gives the baseline an evenly spaced
  # sample of raw_input_max_train records (it subsamples train to that many anyway).
  cap = int(e.get('raw_input_max_train', 0))
  rows = lambda r: np.arange(len(r)) if r.in_memory else readers.spread(len(r), cap)
  baseline = Baseline(config, source, train, test, rows(test))
  full = {f'{reports.RAW_INPUT}{k}': v for k, v in
          baseline.score(rows(train), seed=config.seed, max_train=cap).items()}
  if not full or not budgets:
    return full
  per_seed = [{} for _ in range(int(e.num_seeds))]
  for i, seed_scores in enumerate(per_seed):
    for budget in budgets:
      for k, v in baseline.score(subset(budget, config.seed + i), seed=config.seed + i).items():
        model, _, metric = k.partition('/')
        seed_scores[f'{model}{reports.BUDGET}{budget.label}/{metric}'] = v
  return {**full, **reports.over_seeds(reports.RAW_INPUT, per_seed)}
