"""Downstream evaluation of encoders: the evaluators of `config.evals`, by name.

Each `config.evals.<name>` has a `type` (one of TYPES), a `source` ('' = `config.eval.source`),
`every_steps` (> 0: also during pretraining) and the options of its type. Features of a
source's train and test splits are extracted once per encoder with the method's `embed`
(jitted over sharded batches) and shared by all frozen evaluators of that source; fine-tuning
reads the raw examples instead, and the sequence tasks `qa` and `asr` (sequence_tasks.py)
fine-tune a head per token or frame through the method's `embed_sequence`. Encoders are
named by a prefix, so one call scores the pretrained encoder and its random initialisation
side by side; with `config.eval.num_seeds` > 1 each prefix is scored once per seed and
reported as mean (`<key>`), std (`<key>_std`) and each seed's value (`<key>_seed<i>`), and
at each of `config.eval.label_budgets` on seed i's labelled subset (few_labels.py).

Host memory per split is bounded by `config.eval.max_host_bytes`: records are decoded into
memory only when they fit (variable-size images never are), features (features.py) reach
host numpy only when they fit, and otherwise stay on the mesh, where streamed.py scores them.
"""
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np
import tqdm

from sslax import reports
from sslax import errors
from sslax import sharding
from sslax.data import fetch
from sslax.data import host_views
from sslax.data import readers
from sslax.data import sources
from sslax.evaluators import clustering
from sslax.evaluators import data_check
from sslax.evaluators import dense_tasks
from sslax.evaluators import features as features_lib
from sslax.evaluators import few_labels
from sslax.evaluators import fine_tune
from sslax.evaluators import knn
from sslax.evaluators import linear_probe
from sslax.evaluators import options
from sslax.evaluators import raw_input
from sslax.evaluators import sequence_tasks
from sslax.evaluators import streamed

# Feature passes of at least this many batches show a progress bar (config.progress_bar).
PROGRESS_MIN_BATCHES = 50

EmbedFn = Callable[[Any, Any, dict[str, jax.Array]], jax.Array]
Encoder = tuple[Any, Any]   # (params, model_state)

class Suite:
  """The evaluators of one config, with the data they read opened once and kept."""

  def __init__(self, config: ml_collections.ConfigDict, embed: EmbedFn, mesh: Mesh, *,
               embed_sequence: Callable | None = None):
    self.config, self.mesh = config, mesh
    self._embed_sequence = embed_sequence   # the method's, for qa and asr
    self._sequence_data: dict[tuple[str, str], dict] = {}
    self._dense_data: dict[tuple[str, str], dict] = {}
    # Test images, true and predicted masks of dense evaluators: {name: {prefix: picture}}.
    self.pictures: dict[str, dict[str, dict[str, Any]]] = {}
    # A few test predictions of qa/asr next to the truth, per '<prefix><name>' (reports).
    self.samples: dict[str, list[dict[str, Any]]] = {}
    replicated = sharding.replicated(mesh)
    self._embed = embed
    self._embed_fn = jax.jit(embed, in_shardings=(replicated, replicated,
                                                  sharding.batch_sharding(mesh)))
    self._records: dict[str, dict[str, readers.Records]] = {}
    self._host_cropped: dict[str, bool] = {}
    self._num_classes: dict[str, int | None] = {}
    self._regression: dict[str, bool] = {}
    self._budgets = few_labels.parse(config.eval.get('label_budgets', ()))
    # Test features and labels of the last encoder scored on config.eval.source, per prefix:
    # the reports plot them.
    self.test_features: dict[str, tuple[np.ndarray, np.ndarray]] = {}

  def _source(self, name: str) -> tuple[str, str]:
    """(source, the config key it came from) of evaluator `name`."""
    ev = self.config.evals[name]
    if ev.source:
      return ev.source, f'config.evals.{name}.source'
    return self.config.eval.source, 'config.eval.source'

  def _open(self, source: str, key: str) -> dict[str, readers.Records]:
    if source not in self._records:
      e, data_dir = self.config.eval, self.config.data.data_dir or None
      bad_files = self.config.data.get('bad_files', 'error')
      info = sources.info(source, data_dir=data_dir, bad_files=bad_files)
      data_check.require_labels(source, key, info)
      # config.json of runs older than the max_*_examples keys lacks them: whole splits.
      limits = {e.train_split: int(e.get('max_train_examples', 0)),
                e.test_split: int(e.get('max_test_examples', 0))}
      splits = {s: readers.Records(source, s, data_dir=data_dir, in_memory=False,
                                   transform=fetch.record_transform(self.config.data),
                                   bad_files=bad_files, max_examples=limits[s],
                                   image_size=self.config.data.image_size)
                for s in (e.train_split, e.test_split)}
      # Small splits of fixed-size records are decoded once (a batch is then one fancy
      # index, STACK.md); variable-size images and splits over the budget are read per batch.
      host_cropped = host_views.host_channels(source, data_dir, bad_files)
      self._host_cropped[source] = bool(host_cropped)
      for r in splits.values():
        if not host_cropped and r.estimated_bytes() <= int(e.max_host_bytes):
          r.load()
      self._records[source], self._num_classes[source] = splits, info.num_classes
      self._regression[source] = info.regression
      if not info.regression and all(r.in_memory for r in splits.values()):
        data_check.check_classes(e, source, key, {s: r.labels() for s, r in splits.items()})
      if any(b.per_class for b in self._budgets):   # fractions fit any split: no labels read
        few_labels.check(self._budgets, splits[e.train_split].labels(),
                         regression=info.regression,
                         what=f'{key}={source!r}, split config.eval.train_split='
                              f'{e.train_split!r}')
    return self._records[source]

  def _open_sequence(self, name: str) -> dict:
    """The data of qa/asr evaluator `name`, read once per (type, source)."""
    ev = self.config.evals[name]
    if self._embed_sequence is None:
      raise errors.ConfigError(
          f'config.evals.{name} (type {ev.type!r}) fine-tunes a head on per-token or per-frame '
          f'features, which config.method={self.config.method!r} does not give (no '
          'embed_sequence); use mlm/lm for qa, an audio method for asr, or switch it off '
          f'(--config.evals.{name}.enabled=False).')
    source = self._source(name)[0]
    if (ev.type, source) not in self._sequence_data:
      self._sequence_data[ev.type, source] = sequence_tasks.load(self.config, ev, source)
    return self._sequence_data[ev.type, source]

  def _open_dense(self, name: str) -> dict:
    """The data of segmentation / detection evaluator `name`, read once per (type, source,
    options that shape it)."""
    source = self._source(name)[0]
    key = dense_tasks.data_key(self.config.evals[name], source)
    if key not in self._dense_data:
      self._dense_data[key] = dense_tasks.load(self.config, name, source)
    return self._dense_data[key]

  def _check_task(self, name: str) -> None:
    """Each evaluator's type against its source's labels (classes or float targets)."""
    ev = self.config.evals[name]
    source, key = self._source(name)
    regression = self._regression[source]
    if ev.type == 'fine_tune':
      want = 'regression' if regression else 'classification'
      if ev.task != want:
        held = 'float targets' if regression else 'class labels'
        raise errors.ConfigError(f'config.evals.{name}.task={ev.task!r}, but {key}={source!r} '
                                 f'holds {held}; set --config.evals.{name}.task={want}.')
    elif regression and ev.type not in options.REGRESSION_TYPES:
      raise errors.ConfigError(f'config.evals.{name} (type {ev.type!r}) needs class labels, but '
                               f'{key}={source!r} holds float regression targets; switch it '
                               f'off (--config.evals.{name}.enabled=False) and use a type of '
                               f'{options.REGRESSION_TYPES}.')

  def _check_knn(self, name: str) -> None:
    """kNN's k against the training examples its neighbours come from, before any feature
    pass (options.check cannot know the split's size)."""
    ev, e = self.config.evals[name], self.config.eval
    if ev.type != 'knn':
      return
    source, key = self._source(name)
    n = len(self._records[source][e.train_split])
    if int(ev.k) > n:
      raise errors.ConfigError(
          f'config.evals.{name}.k={ev.k} exceeds the {n} examples of {key}={source!r}, split '
          f'config.eval.train_split={e.train_split!r}, among which the neighbours are found; '
          'lower it, or use more training examples (config.eval.max_train_examples).')

  def _features(self, source: str, key: str, encoder: Encoder) -> dict[str, Any]:
    """{split: features}: (feats [n, D], labels [n]) host arrays in record order when the
    split's features fit config.eval.max_host_bytes, else a features.Bank on the mesh."""
    e = self.config.eval
    out = {}
    for s, r in self._open(source, key).items():
      # Streamed variable-size images are decoded and cut by config.data.num_workers grain
      # processes of config.data.read_threads threads (their transform, an EvalView,
      # pickles); anything else is read here.
      streamed_images = self._host_cropped[source] and not r.in_memory
      batches = readers.eval_batches(
          r, batch_size=e.batch_size, mesh=self.mesh, prefetch=self.config.data.prefetch,
          workers=host_views.num_workers(self.config.data) if streamed_images else 0,
          threads=host_views.read_threads(self.config.data) if streamed_images else 1)
      total = -(-len(r) // e.batch_size)
      # Long feature passes (ImageNet-size splits) show where they are; short ones stay quiet.
      show = (self.config.get('progress_bar', True) and jax.process_index() == 0
              and total >= PROGRESS_MIN_BATCHES)
      batches = tqdm.tqdm(batches, total=total, desc=f'features {s}', leave=False,
                          dynamic_ncols=True, disable=not show)
      bank = features_lib.extract(self._embed_fn, *encoder, batches, num_examples=len(r),
                                  batch_size=e.batch_size, mesh=self.mesh)
      out[s] = bank.to_host() if bank.nbytes <= int(e.max_host_bytes) else bank
    if not self._regression[source] and not all(rec.in_memory for rec in
                                                self._records[source].values()):
      data_check.check_classes(e, source, key, {s: f.labels_N[f.valid_N] if isinstance(
          f, features_lib.Bank) else f[1] for s, f in out.items()})
    return out

  def _score(self, name: str, encoder: Encoder, feats: dict[str, tuple] | None,
             seed: int, train_index: np.ndarray | None = None) -> dict[str, float]:
    """One evaluator on one encoder: {metric: value}; a fine-tune on the training records
    `train_index` only, given (a few-label subset)."""
    ev, e = self.config.evals[name], self.config.eval
    source, key = self._source(name)
    num_classes = self._num_classes[source]
    if ev.type == 'fine_tune':
      records = self._records[source]
      regression = ev.task == 'regression'
      # Read by index, batch by batch: a streamed split never lands in host memory whole.
      dtype = np.float32 if regression else None
      train = fine_tune.Rows(records[e.train_split], train_index, label_dtype=dtype)
      test = fine_tune.Rows(records[e.test_split], label_dtype=dtype)
      return fine_tune.fine_tune(
          self._embed, *encoder, train, test, task=ev.task,
          num_outputs=1 if regression else num_classes, epochs=float(ev.epochs),
          # A few-label subset smaller than a batch takes batches of itself: epochs then
          # count whole passes, as they do over a full split.
          batch_size=min(int(ev.batch_size), len(train)), learning_rate=ev.learning_rate,
          weight_decay=ev.weight_decay, warmup_steps=int(ev.get('warmup_steps', 0)),
          head_init=ev.get('head_init', 'zeros'), val_fraction=float(ev.get('val_fraction', 0.1)),
          eval_every=int(ev.get('eval_every', 0)), seed=seed,
          layer_decay=float(ev.get('layer_decay', 1.0)), key=f'config.evals.{name}',
          min_steps=0 if train_index is None else int(ev.get('few_label_min_steps', 100)))
    # Clustering reads only the test split; the others need both on the host.
    needed = (e.test_split,) if ev.type == 'clustering' else (e.train_split, e.test_split)
    if any(isinstance(feats[s], features_lib.Bank) for s in needed):
      return self._score_streamed(name, feats, seed)
    x_test, y_test = feats[e.test_split]
    if ev.type == 'clustering':
      return clustering.kmeans(x_test, y_test, num_clusters=num_classes, seed=seed,
                               n_init=ev.n_init)
    x_train, y_train = feats[e.train_split]
    if ev.type == 'knn':
      return {'accuracy': knn.knn_accuracy(x_train, y_train, x_test, y_test,
                                           num_classes=num_classes,
                                           k=min(ev.k, len(y_train)),   # few labels: <= n
                                           temperature=ev.temperature)}
    if ev.type == 'linear_probe':
      probe = linear_probe.logistic_probe(x_train, y_train, x_test, y_test,
                                          num_classes=num_classes, l2_grid=tuple(ev.l2_grid),
                                          steps=ev.steps, seed=seed)
      return {'accuracy': probe['accuracy'], 'l2': probe['l2']}
    if ev.type == 'ridge' and self._regression[source]:
      return linear_probe.ridge_regression_probe(x_train, y_train, x_test, y_test, l2=ev.l2)
    if ev.type == 'ridge':
      return linear_probe.ridge_probe(x_train, y_train, x_test, y_test,
                                      num_classes=num_classes, l2=ev.l2)
    # options.check refuses unknown types before training: a type that reaches this is one
    # options knows and _score does not, a bug.
    raise ValueError(f'config.evals.{name}: unknown type {ev.type!r}.')

  def _score_streamed(self, name: str, feats: dict[str, Any], seed: int) -> dict[str, float]:
    """`_score` when a split's features stay on the mesh (over config.eval.max_host_bytes)."""
    ev, e = self.config.evals[name], self.config.eval
    source = self._source(name)[0]
    train, test = (f if isinstance(f, features_lib.Bank) else
                   features_lib.from_host(*f, self.mesh)
                   for f in (feats[e.train_split], feats[e.test_split]))
    return streamed.score(name, {**options.optional(ev.type), **ev}, train, test,
                          num_classes=self._num_classes[source],
                          regression=self._regression[source], seed=seed, mesh=self.mesh,
                          progress=(self.config.get('progress_bar', True)
                                    and jax.process_index() == 0))

  def raw_input(self) -> dict[str, float]:
    """The raw-input baseline (raw_input.py) on config.eval.source: once on all of train (no
    encoder, no seeds), and at each few-label budget on seed i's subset, the encoders' own:
    {'raw_input/logistic/<metric>': value} for class labels, 'raw_input/ridge/...' for
    regression targets; {} for inputs without one (video)."""
    e = self.config.eval
    if sources.task_of(e.source, key='config.eval.source'):
      return {}   # squad:/asr:/segfolder:/coco: have no image labels for a linear baseline
    records = self._open(e.source, 'config.eval.source')
    return raw_input.scores(self.config, e.source, records, self._budgets,
                            lambda budget, seed: self._subset(e.source, budget, seed))

  def check_budgets(self) -> None:
    """Opens the sources scored at few-label budgets, so that a budget over the smallest
    class (few_labels.check) stops a run before pretraining rather than after."""
    for name in options.enabled(self.config) if self._budgets else ():
      if self.config.evals[name].type in few_labels.TYPES:
        self._open(*self._source(name))

  def budget_sizes(self) -> dict[str, float]:
    """few_labels.sizes of config.eval.source ({} without budgets or class labels)."""
    source = self.config.eval.source
    if not self._budgets or source not in self._records or self._regression[source]:
      return {}
    return few_labels.sizes(self._budgets,
                            self._records[source][self.config.eval.train_split].labels())

  def _subset(self, source: str, budget: few_labels.Budget, seed: int) -> np.ndarray:
    """Training records of `source` in few-label `budget` at `seed` (labels and seed only:
    the same for every encoder and the raw-input baseline)."""
    train = self._records[source][self.config.eval.train_split]
    return few_labels.subset(train.labels(), budget, seed, regression=self._regression[source])

  def _few_labels(self, names: Sequence[str], encoder: Encoder, feats: dict[str, Any] | None,
                  seed: int) -> dict[str, float]:
    """Evaluators `names` of few_labels.TYPES at every budget of config.eval.label_budgets:
    the frozen ones on `feats` ({source: {split: features}}), fine_tune (feats=None) on the
    subset's records. Keys '<name>@<budget>/<metric>'."""
    e, scores = self.config.eval, {}
    show = self.config.get('progress_bar', True) and jax.process_index() == 0
    for budget in tqdm.tqdm(self._budgets, f'few labels seed {seed}', disable=not show):
      for name in names:
        ev_type = self.config.evals[name].type
        if ev_type not in few_labels.TYPES or (feats is None) != (ev_type == 'fine_tune'):
          continue
        source = self._source(name)[0]
        subset = self._subset(source, budget, seed)
        if feats is None:
          metrics = self._score(name, encoder, None, seed, train_index=subset)
        else:
          train = feats[source][e.train_split]
          train = (train.take(subset) if isinstance(train, features_lib.Bank)
                   else (train[0][subset], train[1][subset]))
          metrics = self._score(name, encoder, {**feats[source], e.train_split: train}, seed)
        scores.update({f'{name}@{budget.label}/{m}': v for m, v in metrics.items()})
    return scores

  def run(self, encoders: Mapping[str, Sequence[Encoder]],
          names: Sequence[str] | None = None, *, budgets: bool = True) -> dict[str, float]:
    """Scores `{prefix: [encoder per seed]}` with evaluators `names` (default: options.enabled ones).

    Encoder i is evaluated with seed config.seed + i (probe split, k-means, fine-tune data
    order). Keys are '<prefix><name>/<metric>' (e.g. 'random_init/knn/accuracy'), the mean
    over seeds, plus '<...>_std' and each seed's '<...>_seed<i>' when a prefix has several
    encoders. With `budgets` (the final evaluation, not the periodic ones), the evaluators of
    few_labels.TYPES are also scored at each of config.eval.label_budgets, on seed i's subset
    ('<prefix><name>@<budget>/<metric>').
    """
    names = options.enabled(self.config) if names is None else list(names)
    for name in names:
      if self.config.evals[name].type in options.SEQUENCE_TYPES:
        self._open_sequence(name)
        continue
      if self.config.evals[name].type in options.DENSE_TYPES:
        self._open_dense(name)
        continue
      self._open(*self._source(name))
      self._check_task(name)
      self._check_knn(name)
    results = {}
    show = self.config.get('progress_bar', True) and jax.process_index() == 0

    def bar(prefix: str, name: str, i: int, n: int) -> str:
      """A fine-tune's progress bar ('': none); qa, asr and the dense tasks take minutes."""
      return f'{prefix or "pretrained/"}{name} seed {i + 1}/{n}' if show else ''

    for prefix, seeds in encoders.items():
      per_seed, cache = [], {}
      for i, encoder in enumerate(seeds):
        scores = {}
        if i and encoder is not seeds[i - 1]:
          cache = {}   # the same encoder again (seeds of one checkpoint) keeps its features
        with features_lib.frozen(encoder, f'the frozen evaluators {names} of '
                                          f'{prefix or "pretrained"!r}'):
          for name in names:
            if self.config.evals[name].type in ('fine_tune',) + options.OWN_DATA_TYPES:
              continue
            source, key = self._source(name)
            if source not in cache:
              cache[source] = self._features(source, key, encoder)
            scores.update({f'{name}/{m}': v for m, v in
                           self._score(name, encoder, cache[source], self.config.seed + i).items()})
          if budgets:
            scores.update(self._few_labels(names, encoder, cache, self.config.seed + i))
        for name in names:
          if self.config.evals[name].type == 'fine_tune':
            scores.update({f'{name}/{m}': v for m, v in
                           self._score(name, encoder, None, self.config.seed + i).items()})
            if budgets:
              scores.update(self._few_labels([name], encoder, None, self.config.seed + i))
          elif self.config.evals[name].type in options.SEQUENCE_TYPES:
            metrics, samples = sequence_tasks.score(
                self.config, self.config.evals[name], self._open_sequence(name),
                self._embed_sequence, encoder, self.config.seed + i,
                bar(prefix, name, i, len(seeds)), key=f'config.evals.{name}')
            scores.update({f'{name}/{m}': v for m, v in metrics.items()})
            if i == 0:
              self.samples[prefix + name] = samples
          elif self.config.evals[name].type in options.DENSE_TYPES:
            metrics, picture = dense_tasks.score(
                self.config, self.config.evals[name], self._open_dense(name), encoder,
                self.config.seed + i, self.mesh, bar(prefix, name, i, len(seeds)),
                key=f'config.evals.{name}')
            scores.update({f'{name}/{m}': v for m, v in metrics.items()})
            if i == 0:
              self.pictures.setdefault(name, {})[prefix] = picture
        test_split = cache.get(self.config.eval.source, {}).get(self.config.eval.test_split)
        if isinstance(test_split, tuple):   # host features only: a streamed split is not plotted
          self.test_features[prefix] = cache[self.config.eval.source][self.config.eval.test_split]
        per_seed.append(scores)
      results.update(reports.over_seeds(prefix, per_seed))
    return results

