"""Fine-tuning: the whole encoder plus a new linear head, trained on labelled data.

Any method's encoder can be fine-tuned through its `embed(params, model_state, batch)`: the
head sits on `embed`'s features and gradients flow into `params`. `model_state` (e.g.
BatchNorm statistics) stays fixed, because `embed` runs the encoder in inference mode; this
is BatchNorm in eval mode throughout, a known simplification (papers update the statistics
during fine-tuning) that makes fine-tuning slightly pessimistic for BatchNorm encoders.

The budget is a number of epochs over the training split less a held-out part
(`val_fraction`, stratified by class, from the seed), which is scored every `eval_every` steps
(or epoch); the test split is scored once, with the weights of the best held-out score. So a
fine-tune that has converged early, or started to overfit, reports its best point rather
than wherever a fixed step count stopped, for the pretrained and the random-init encoder
alike (the linear probe picks its L2 strength the same way).

Two tasks: `classification` (softmax cross-entropy on integer labels, reports accuracy) and
`regression` (mean squared error on float targets, reports MSE and R^2 on the test split).

The head starts at zero, or (`head_init='probe'`, classification) at the linear probe fitted
on the frozen encoder's features: LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort
Pretrained Features and Underperform Out-of-Distribution"). From a zero head, the encoder's
early updates serve a head that is still far from fitted and can distort the pretrained
features before the head has learned to use them.

Training runs on the default device with host minibatches, read by index from `Rows`: host
arrays, or a readers.Records split that is read batch by batch (splits over
config.eval.max_host_bytes), so host memory holds a few batches and the labels, not the split.

Shape suffixes: B = batch, D = feature width, L = outputs (classes, or 1 for regression).
"""
from collections.abc import Callable, Mapping, Sequence
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sslax import errors
from sslax import optim
from sslax.evaluators import linear_probe

EmbedFn = Callable[[Any, Any, dict[str, jax.Array]], jax.Array]
TASKS = ('classification', 'regression')
HEAD_INITS = ('zeros', 'probe')
# LP-FT's probe: L2 strengths tried (chosen on 20% of train, as linear_probe does).
PROBE_L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


class Rows:
  """Labelled examples by index: a dict of host arrays (with 'label'), or anything with
  `take(idx) -> dict` and `labels()` (readers.Records, read per batch); `index` selects a
  subset, `label_dtype` casts labels (float targets for regression)."""

  def __init__(self, data: Any, index: np.ndarray | None = None, label_dtype: Any = None):
    self.data, self.label_dtype = data, label_dtype
    labels = data['label'] if isinstance(data, Mapping) else data.labels()
    self.index = np.arange(len(labels)) if index is None else np.asarray(index)
    self.labels = np.asarray(labels)[self.index]
    if label_dtype is not None:
      self.labels = self.labels.astype(label_dtype)

  def __len__(self) -> int:
    return len(self.index)

  def subset(self, idx: np.ndarray) -> 'Rows':
    return Rows(self.data, self.index[np.asarray(idx)], self.label_dtype)

  def take(self, idx: np.ndarray) -> dict[str, np.ndarray]:
    rows = self.index[np.asarray(idx)]
    if isinstance(self.data, Mapping):
      batch = {k: np.asarray(v)[rows] for k, v in self.data.items()}
    else:
      batch = self.data.take(rows)
    if self.label_dtype is not None:
      batch['label'] = batch['label'].astype(self.label_dtype)
    return batch


def _batches(data: Rows, batch_size: int):
  """Fixed-size batches over `data` in order, the last one padded; yields (batch, num_valid)."""
  n = len(data)
  for start in range(0, n, batch_size):
    idx = np.minimum(np.arange(start, start + batch_size), n - 1)
    yield data.take(idx), min(batch_size, n - start)


def schedule(learning_rate: float, steps: int, warmup_steps: int) -> optax.Schedule | float:
  """A constant rate, or (warmup_steps > 0) BERT's fine-tuning schedule: linear warmup from 0
  over warmup_steps, then linear decay to 0 at `steps` (Devlin et al. 2019 warm up over 10%).
  Warmup keeps Adam's first, full-size steps from scrambling pretrained weights while the
  zero-initialised head still sends them arbitrary gradients."""
  if not warmup_steps:
    return learning_rate
  return optax.join_schedules(
      [optax.linear_schedule(0.0, learning_rate, warmup_steps),
       optax.linear_schedule(learning_rate, 0.0, steps - warmup_steps)], [warmup_steps])


@functools.lru_cache(maxsize=16)
def _compiled(embed: EmbedFn, task: str, learning_rate: float, weight_decay: float,
              steps: int, warmup_steps: int, layer_decay: float = 1.0):
  """(optimiser, jitted step, jitted predict), built once per embed and options: every seed
  and encoder (pretrained, random init) of a run reuses one compilation."""
  tx = optax.adamw(schedule(learning_rate, steps, warmup_steps), weight_decay=weight_decay)
  if layer_decay < 1.0:
    tx = optax.chain(tx, optim.scale_by_layer_decay(layer_decay))   # the head: full rate

  def predict(variables, model_state, batch):
    feats_BxD = embed(variables['encoder'], model_state, batch).astype(jnp.float32)
    return feats_BxD @ variables['head']['w_DxL'] + variables['head']['b_L']

  def loss_fn(variables, model_state, batch):
    out_BxL = predict(variables, model_state, batch)
    if task == 'classification':
      return optax.softmax_cross_entropy_with_integer_labels(out_BxL, batch['label']).mean()
    return jnp.mean(jnp.square(out_BxL[:, 0] - batch['label'].astype(jnp.float32)))

  @jax.jit
  def step(variables, opt_state, model_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(variables, model_state, batch)
    updates, opt_state = tx.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state, loss

  return tx, step, jax.jit(predict), jax.jit(embed)


def _probe_head(embed_fn, params: Any, model_state: Any, train: Rows,
                batch_size: int, num_classes: int, seed: int) -> dict[str, jax.Array]:
  """LP-FT's starting head: the logistic probe on the encoder's frozen training features."""
  feats = [np.asarray(embed_fn(params, model_state, batch), np.float32)[:valid]
           for batch, valid in _batches(train, batch_size)]
  fit = linear_probe.fit_logistic(np.concatenate(feats), train.labels,
                                  num_classes=num_classes, l2_grid=PROBE_L2_GRID, seed=seed)
  return {'w_DxL': jnp.asarray(fit['w_DxL']), 'b_L': jnp.asarray(fit['b_L'])}


def holdout(labels: np.ndarray, val_fraction: float, seed: int,
            task: str) -> tuple[np.ndarray, np.ndarray]:
  """Indices (fit, val) of a deterministic held-out part of train: stratified by class for
  classification (linear_probe's split, with at least one example of every class that has
  two, so a few-label subset still chooses its step), a plain random part for regression
  targets (at least one when there are two)."""
  if task == 'classification':
    return linear_probe.stratified_split(np.asarray(labels), val_fraction, seed,
                                         min_per_class=1)
  order = np.random.default_rng(seed).permutation(len(labels))
  num_val = min(max(1, int(round(val_fraction * len(labels)))), len(labels) - 1)
  return np.sort(order[num_val:]), np.sort(order[:num_val])


def num_steps(epochs: float, num_fit: int, batch_size: int) -> int:
  """Optimiser steps for `epochs` passes over `num_fit` examples (at least one)."""
  return max(1, math.ceil(epochs * num_fit / batch_size))


def batch_order(n: int, batch_size: int, rng: np.random.Generator):
  """Index batches of one stream of per-epoch permutations: every example once per epoch,
  fixed-size batches (one compilation) that may straddle two epochs."""
  stream = np.zeros(0, np.int64)
  while True:
    while stream.size < batch_size:
      stream = np.concatenate([stream, rng.permutation(n)])
    yield stream[:batch_size]
    stream = stream[batch_size:]


def fine_tune(embed: EmbedFn, params: Any, model_state: Any, train: Mapping[str, np.ndarray] | Rows,
              test: Mapping[str, np.ndarray] | Rows, *, task: str, num_outputs: int,
              batch_size: int, learning_rate: float, epochs: float | None = None,
              steps: int | None = None, val_fraction: float = 0.1, eval_every: int = 0,
              weight_decay: float = 0.0, warmup_steps: int = 0, head_init: str = 'zeros',
              seed: int = 0, score_at: Sequence[int] = (), layer_decay: float = 1.0,
              min_steps: int = 0, key: str = 'fine_tune') -> dict[str, float]:
  """Trains encoder `params` and a linear head; scores on `test` at the best validation step.

  `val_fraction` of train is held out (`holdout`, from `seed`) and never trained on; the
  model is scored on it every `eval_every` steps (0: once per epoch) and after the last
  step, and the test split is scored with the weights of the best of those (accuracy, or
  lowest MSE for regression; ties go to the earlier step), as the linear probe picks its L2
  strength. val_fraction=0 trains on all of train and scores the last step.

  Args:
    embed: the method's embed(params, model_state, batch) -> [B, D].
    params, model_state: the encoder to start from (not modified: JAX arrays are immutable).
    train, test: host arrays, each with 'label' ([N] int class ids, or float targets for
      regression) and the inputs `embed` reads (e.g. 'image'); or `Rows` (read per batch).
    task: 'classification' or 'regression'.
    num_outputs: classes L for classification; 1 for regression.
    batch_size, learning_rate, weight_decay: AdamW on minibatches of per-epoch shuffles.
    epochs, steps: the budget, exactly one of them: passes over the fitted part of train
      (may be fractional), or optimiser steps.
    val_fraction: the held-out part of train, in [0, 1).
    eval_every: steps between validation scores; 0: every epoch.
    warmup_steps: 0 keeps learning_rate constant; > 0 warms up, then decays (`schedule`).
    head_init: 'zeros', or 'probe' (classification only): start from the linear probe (LP-FT),
      fitted on the fitted part of train.
    seed: the held-out split, the minibatch order and LP-FT's probe split.
    score_at: steps in [0, total) after which the test split (and the held-out part) is also
      scored: a learning curve.
    layer_decay: < 1 scales a ViT encoder's block i lr by layer_decay^(L-i) (MAE, BEiT).
    min_steps: at least this many steps whatever the budget gives (few-label subsets, where
      a few epochs of a handful of examples are a few steps).
    key: the config key of these options, which errors.ConfigError names as `key.option`
      (the Suite passes config.evals.NAME).

  Returns:
    classification: {'accuracy'}; regression: {'mse', 'mae', 'r2'} on the test split at the chosen
    step; with a held-out part also 'val_accuracy' (or 'val_mse') there and 'best_step'; and
    for each t in `score_at`, the test metrics (and 'val_...') suffixed '@t' (e.g.
    'accuracy@100').
  """
  _check_options(key, task=task, epochs=epochs, steps=steps, batch_size=batch_size,
                 val_fraction=val_fraction, eval_every=eval_every, head_init=head_init)
  train, test = (d if isinstance(d, Rows) else Rows(d) for d in (train, test))
  fit_idx, val_idx = (holdout(train.labels, val_fraction, seed, task) if val_fraction
                      else (np.arange(len(train)), np.zeros(0, np.int64)))
  # One example of a class (few labels) leaves none to hold out: the last step is scored.
  val, train = train.subset(val_idx), train.subset(fit_idx)
  steps = max(min_steps, num_steps(epochs, len(fit_idx), batch_size) if steps is None else steps)
  if not 0 <= warmup_steps < steps:
    budget = (f'{epochs} epochs of {len(fit_idx)} examples at batch {batch_size}'
              if epochs is not None else 'this fine-tune')
    raise errors.ConfigError(f'{key}.warmup_steps={warmup_steps} must be in [0, {steps}) '
                             f'(the steps of {budget}); lower it or raise {key}.epochs.')
  feat_dim = jax.eval_shape(embed, params, model_state,
                            train.take(np.arange(min(batch_size, len(train))))).shape[-1]
  tx, step, predict, embed_fn = _compiled(embed, task, learning_rate, weight_decay, steps,
                                          warmup_steps, layer_decay)
  head = {'w_DxL': jnp.zeros((feat_dim, num_outputs), jnp.float32),
          'b_L': jnp.zeros((num_outputs,), jnp.float32)}
  if head_init == 'probe':
    head = _probe_head(embed_fn, params, model_state, train, batch_size, num_outputs, seed)
  score = lambda weights, data: _score(predict, weights, model_state, data, task, batch_size)
  return _train(step, score, {'encoder': params, 'head': head}, tx, model_state, train, val,
                test, task=task, steps=steps, batch_size=batch_size, seed=seed,
                every=eval_every or num_steps(1, len(fit_idx), batch_size), score_at=score_at)


def _check_options(key: str, *, task: str, epochs: float | None, steps: int | None,
                   batch_size: int, val_fraction: float, eval_every: int,
                   head_init: str) -> None:
  """errors.ConfigError naming `key.option` for options a config sets; ValueError for a
  budget no config gives (steps is an argument of experiments, never a config key)."""
  if (epochs is None) == (steps is None):
    raise ValueError(f'fine-tune takes exactly one budget, epochs or steps; got epochs={epochs}, '
                     f'steps={steps}.')
  if steps is not None and steps < 1:
    raise ValueError(f'fine-tune steps must be >= 1; got {steps}.')
  if task not in TASKS:
    raise errors.ConfigError(f'{key}.task={task!r} is unknown; choose one of {TASKS}.')
  if epochs is not None and not epochs > 0:
    raise errors.ConfigError(f'{key}.epochs={epochs} must be > 0 (fractions of an epoch are '
                             'fine).')
  if batch_size < 1:
    raise errors.ConfigError(f'{key}.batch_size={batch_size} must be >= 1.')
  if not 0 <= val_fraction < 1:
    raise errors.ConfigError(f'{key}.val_fraction={val_fraction} must be in [0, 1) (0: no '
                             'held-out part, the last step is reported).')
  if eval_every < 0:
    raise errors.ConfigError(f'{key}.eval_every={eval_every} must be >= 0 (0: once per '
                             'epoch).')
  if head_init not in HEAD_INITS:
    raise errors.ConfigError(f'{key}.head_init={head_init!r} is unknown; choose one of '
                             f'{HEAD_INITS}.')
  if head_init == 'probe' and task != 'classification':
    raise errors.ConfigError(f"{key}.head_init='probe' (LP-FT) needs task='classification'; "
                             f"got {task!r}. Use head_init='zeros' for regression.")


def _train(step, score, variables: Any, tx: optax.GradientTransformation, model_state: Any,
           train: Rows, val: Rows, test: Rows, *, task: str, steps: int, batch_size: int,
           seed: int, every: int, score_at: Sequence[int]) -> dict[str, float]:
  """fine_tune's loop: `steps` optimiser steps on `train`, `val` scored every `every` steps
  and after the last, `test` at the best of those (or the last step when `val` is empty)
  and at each step of `score_at`."""
  batches = batch_order(len(train), batch_size, np.random.default_rng(seed))
  opt_state = tx.init(variables)
  # The validation metric, higher is better.
  goodness = (lambda s: s['accuracy']) if task == 'classification' else (lambda s: -s['mse'])
  best, curve = None, {}
  for t in range(steps + 1):
    if t:
      variables, opt_state, _ = step(variables, opt_state, model_state,
                                     train.take(next(batches)))
    val_scores = None
    if len(val) and t and (t % every == 0 or t == steps):
      val_scores = score(variables, val)
      if best is None or goodness(val_scores) > goodness(best[1]):
        best = (t, val_scores, variables)
    if t in score_at and t < steps:
      curve.update({f'{k}@{t}': v for k, v in score(variables, test).items()})
      if len(val):
        val_now = val_scores or score(variables, val)
        curve.update({f'val_{k}@{t}': v for k, v in val_now.items()})
  if best is None:   # nothing held out: the last step
    return {**score(variables, test), **curve}
  best_step, val_scores, best_variables = best
  return {**score(best_variables, test), **{f'val_{k}': v for k, v in val_scores.items()},
          'best_step': float(best_step), **curve}


def _score(predict, variables: Any, model_state: Any, test: Rows,
           task: str, batch_size: int) -> dict[str, float]:
  outputs = [np.asarray(predict(variables, model_state, batch))[:valid]
             for batch, valid in _batches(test, batch_size)]
  out_MxL = np.concatenate(outputs)
  if task == 'classification':
    return {'accuracy': float(np.mean(out_MxL.argmax(-1) == test.labels))}
  return linear_probe.regression_metrics(out_MxL[:, 0], test.labels)
