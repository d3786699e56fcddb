"""The options of `config.evals`: each evaluator type's required and optional keys, their
defaults, and `check`, which refuses a malformed entry naming its key before anything
compiles (sslax/validate.py). The evaluators themselves run from suite.py."""
from typing import Any

import ml_collections

from sslax import errors
from sslax.data import sources
from sslax.evaluators import dense_tasks
from sslax.evaluators import few_labels
from sslax.evaluators import fine_tune
from sslax.evaluators import sequence_tasks

# Options of each evaluator type (besides type, source, every_steps), all required.
OPTIONS = {
    'knn': ('k', 'temperature'),
    'linear_probe': ('l2_grid', 'steps'),
    'ridge': ('l2',),
    'clustering': ('n_init',),
    'fine_tune': ('task', 'epochs', 'batch_size', 'learning_rate', 'weight_decay'),
    **sequence_tasks.OPTIONS,
    **dense_tasks.OPTIONS,
}
# Types that fine-tune a head per token or frame and read their own sources (squad:, asr:).
SEQUENCE_TYPES = tuple(sequence_tasks.OPTIONS)
# Types that train a head per pixel or position on an encoder's feature maps and read their
# own sources (segfolder:, coco:).
DENSE_TYPES = tuple(dense_tasks.OPTIONS)
# Types that read their own data (not the shared features or records of a labelled source).
OWN_DATA_TYPES = SEQUENCE_TYPES + DENSE_TYPES
TYPES = tuple(OPTIONS)
# Types that score float targets (regression sources): ridge -> mse/mae/r2, fine_tune with
# task='regression'.
REGRESSION_TYPES = ('ridge', 'fine_tune')
COMMON = ('type', 'source', 'every_steps')
# Optional keys and their defaults. `enabled` (every type) lets a config carry a costly
# evaluator that a command line can switch on (a locked config cannot gain new keys there);
# fine_tune's `warmup_steps` > 0 gives BERT's schedule (see fine_tune.py), 0 a constant rate;
# its `head_init='probe'` starts the head at the linear probe (LP-FT, see fine_tune.py);
# `val_fraction` of train is held out and scored every `eval_every` steps (0: each epoch) to
# pick the step whose test score is reported (0: no held-out part, the last step); its
# `layer_decay` < 1 scales a ViT's block i lr by decay^(L-i) (MAE fine-tuning, optim.py);
# `few_label_min_steps`: the fewest steps of a fine-tune on a few-label subset (few_labels.py:
# 8 epochs of 10 clips were 8 steps, and left the head barely trained).
OPTIONAL = {'enabled': True}
# linear_probe's `minibatch_*` options drive the mini-batch probe (streamed.py), used
# when a split's features exceed config.eval.max_host_bytes: Adam with a cosine rate for
# `minibatch_epochs` over the training features in batches of `minibatch_batch_size`. On
# MNIST features (60k, 64-d) these defaults came within 0.002 of L-BFGS's test accuracy
# (0.8039 vs 0.8057; lr 1e-3 gave 0.709, 1e-2 0.791, 30 epochs 0.8045; docs/performance.md).
OPTIONAL_BY_TYPE = {'linear_probe': {'minibatch_epochs': 20.0, 'minibatch_batch_size': 1024,
                                     'minibatch_learning_rate': 3e-2},
                    'fine_tune': {'warmup_steps': 0, 'head_init': 'zeros', 'val_fraction': 0.1,
                                  'eval_every': 0, 'layer_decay': 1.0,
                                  'few_label_min_steps': 100},
                    **sequence_tasks.OPTIONAL,
                    **dense_tasks.OPTIONAL}


def optional(ev_type: str) -> dict[str, Any]:
  """{optional key: default} of an evaluator type."""
  return {**OPTIONAL, **OPTIONAL_BY_TYPE.get(ev_type, {})}


def _check_fine_tune(key: str, ev: ml_collections.ConfigDict) -> None:
  """The numeric options of a fine-tune; warmup_steps < its steps is checked when the data,
  and so the number of steps, is known (fine_tune.fine_tune)."""
  if not float(ev.epochs) > 0:
    raise errors.ConfigError(
        f'{key}.epochs={ev.epochs} must be > 0 (fractions of an epoch are fine).')
  if not 0 <= float(ev.get('val_fraction', 0.1)) < 1:
    raise errors.ConfigError(f'{key}.val_fraction={ev.val_fraction} must be in [0, 1) (0: no '
                             'held-out part, the last step is reported).')
  for option in ('eval_every', 'warmup_steps', 'few_label_min_steps'):
    if int(ev.get(option, 0)) < 0:
      raise errors.ConfigError(f'{key}.{option}={ev[option]} must be >= 0.')
  if int(ev.batch_size) < 1:
    raise errors.ConfigError(f'{key}.batch_size={ev.batch_size} must be >= 1.')


def _check_frozen(key: str, ev: ml_collections.ConfigDict) -> None:
  """The numbers of the frozen-feature evaluators, which would otherwise fail only after
  pretraining, inside the probe (kNN's k against the split's size waits for the data:
  suite.py)."""
  if ev.type == 'knn' and int(ev.k) < 1:
    raise errors.ConfigError(f'{key}.k={ev.k} must be >= 1 (neighbours that vote).')
  if ev.type == 'knn' and not float(ev.temperature) > 0:
    raise errors.ConfigError(f'{key}.temperature={ev.temperature} must be > 0.')
  if ev.type == 'linear_probe':
    grid = tuple(ev.l2_grid) if isinstance(ev.l2_grid, (tuple, list)) else ()
    if not grid or any(not float(l2) >= 0 for l2 in grid):
      raise errors.ConfigError(f'{key}.l2_grid={ev.l2_grid!r} must be a non-empty sequence '
                               'of L2 strengths >= 0, e.g. (1e-6, 1e-4, 1e-2).')
    if int(ev.steps) < 1:
      raise errors.ConfigError(f'{key}.steps={ev.steps} must be >= 1 (L-BFGS iterations).')
  if ev.type == 'ridge' and not float(ev.l2) > 0:
    raise errors.ConfigError(f'{key}.l2={ev.l2} must be > 0 (it keeps the ridge solve well '
                             'posed).')
  if ev.type == 'clustering' and int(ev.n_init) < 1:
    raise errors.ConfigError(f'{key}.n_init={ev.n_init} must be >= 1 (k-means restarts).')


def _check_minibatch(key: str, ev: ml_collections.ConfigDict) -> None:
  """The mini-batch probe's options (used only above eval.max_host_bytes: checked anyway,
  so a bad value does not wait for an ImageNet-size split to surface)."""
  options = {**OPTIONAL_BY_TYPE['linear_probe'], **ev}
  for option in ('minibatch_epochs', 'minibatch_learning_rate'):
    if not float(options[option]) > 0:
      raise errors.ConfigError(f'{key}.{option}={options[option]} must be > 0.')
  if int(options['minibatch_batch_size']) < 1:
    raise errors.ConfigError(f'{key}.minibatch_batch_size={options["minibatch_batch_size"]} '
                             'must be >= 1.')


def check(config: ml_collections.ConfigDict) -> None:
  """Raises errors.ConfigError (a ValueError) naming the key for a malformed `config.evals`
  (before compiling)."""
  for name, ev in config.evals.items():
    key = f'config.evals.{name}'
    if not isinstance(ev, ml_collections.ConfigDict) or 'type' not in ev:
      raise errors.ConfigError(f'{key} must be a dict with a `type`, one of {TYPES}.')
    if ev.type not in OPTIONS:
      raise errors.ConfigError(f'{key}.type={ev.type!r} is unknown; choose one of {TYPES}.')
    if ev.type == 'fine_tune' and 'steps' in ev:
      raise errors.ConfigError(
          f'{key}.steps is no longer an option: a fine-tune\'s budget is `epochs` over the '
          'training split (less its held-out val_fraction); e.g. 200 steps at batch 128 on '
          '1,300 examples are 20 epochs. Replace steps with epochs (in a run\'s config.json too).')
    missing = [k for k in COMMON + OPTIONS[ev.type] if k not in ev]
    if missing:
      raise errors.ConfigError(
          f'{key} (type {ev.type!r}) lacks {missing}; see config_base.py for an '
          'example of each type.')
    unknown = sorted(set(ev.keys()) - set(COMMON + OPTIONS[ev.type]) - set(optional(ev.type)))
    if unknown:
      raise errors.ConfigError(
          f'{key} has unknown options {unknown}; a {ev.type!r} evaluator takes '
          f'{OPTIONS[ev.type]}.')
    if int(ev.every_steps) < 0:
      raise errors.ConfigError(
          f'{key}.every_steps={ev.every_steps} must be >= 0 (0: only at the end).')
    if ev.type == 'fine_tune' and ev.task not in fine_tune.TASKS:
      raise errors.ConfigError(
          f'{key}.task={ev.task!r} is unknown; choose one of {fine_tune.TASKS}.')
    if ev.type == 'fine_tune':
      _check_fine_tune(key, ev)
    if ev.type in ('knn', 'linear_probe', 'ridge', 'clustering'):
      _check_frozen(key, ev)
    if ev.type == 'linear_probe':
      _check_minibatch(key, ev)
    if ev.type == 'fine_tune' and ev.get('head_init', 'zeros') not in fine_tune.HEAD_INITS:
      raise errors.ConfigError(f'{key}.head_init={ev.head_init!r} is unknown; choose one of '
                               f'{fine_tune.HEAD_INITS}.')
    probe_head = ev.type == 'fine_tune' and ev.get('head_init', 'zeros') == 'probe'
    if probe_head and ev.task != 'classification':
      raise errors.ConfigError(f"{key}.head_init='probe' (LP-FT) needs task='classification'; "
                               f'got {ev.task!r}. Use head_init=\'zeros\' for regression.')
    if ev.source:
      sources.check(ev.source, key=f'evals.{name}.source')
    if ev.type in SEQUENCE_TYPES:
      sequence_tasks.check(key, ev, ev.source or config.eval.source,
                           f'{key}.source' if ev.source else 'config.eval.source')
    if ev.type in DENSE_TYPES:
      dense_tasks.check(key, ev, ev.source or config.eval.source,
                        f'{key}.source' if ev.source else 'config.eval.source')
  for limit in ('max_train_examples', 'max_test_examples'):
    if int(config.eval.get(limit, 0)) < 0:
      raise errors.ConfigError(f'config.eval.{limit}={config.eval[limit]} must be >= 0 '
                               '(0: the whole split).')
  if int(config.eval.get('max_host_bytes', 0)) < 0:
    raise errors.ConfigError(f'config.eval.max_host_bytes={config.eval.max_host_bytes} must be '
                             '>= 0 (bytes of one split\'s records or features held on the '
                             'host; 0: always stream).')
  few_labels.parse(config.eval.get('label_budgets', ()))
  if int(config.eval.num_seeds) < 1:
    raise errors.ConfigError(f'config.eval.num_seeds={config.eval.num_seeds} must be >= 1.')


def enabled(config: ml_collections.ConfigDict) -> list[str]:
  """Names of the evaluators of `config.evals` that are not switched off."""
  return [n for n, ev in config.evals.items() if ev.get('enabled', OPTIONAL['enabled'])]


def due(config: ml_collections.ConfigDict, step: int) -> list[str]:
  """Names of the evaluators that run during pretraining at `step`."""
  return [n for n in enabled(config)
          if config.evals[n].every_steps and step % config.evals[n].every_steps == 0]
