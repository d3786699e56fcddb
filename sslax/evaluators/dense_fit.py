"""What the dense fine-tunes, segmentation.py and detection.py, share: the check of their fit
options, reading their two splits, the held-out part of train and the step budget, their
steps jitted on the mesh, and the loop that keeps the best held-out weights.

Both read `config.eval.train_split` / `test_split` of their own source, capped at
`max_train` / `max_test` images (a fixed shuffle's first N, in stored order); training
images are shrunk once to the largest scale a crop takes, test images become the whole-image
eval view. A `val_fraction` of the training images, drawn from the seed, is held out and
scored every `eval_every` steps (0: each epoch); the test split is scored at the best step.
"""
from collections.abc import Callable
import math
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np
import optax

from sslax import errors
from sslax import sharding
from sslax.data import dense_augment
from sslax.data import sources
from sslax.evaluators import best_step


def check_fit_options(key: str, ev: ml_collections.ConfigDict,
                      default_scale_range: tuple[float, float]) -> None:
  """The options every dense fine-tune shares: epochs, val_fraction, scale_range;
  ConfigError naming the key."""
  if not float(ev.epochs) > 0:
    raise errors.ConfigError(f'{key}.epochs={ev.epochs} must be > 0.')
  if not 0 < float(ev.get('val_fraction', 0.1)) < 1:
    raise errors.ConfigError(f'{key}.val_fraction={ev.val_fraction} must be in (0, 1): the best '
                             'step is chosen on it.')
  low, high = (float(v) for v in ev.get('scale_range', default_scale_range))
  if not 0 < low <= high:
    raise errors.ConfigError(f'{key}.scale_range={tuple(ev.scale_range)} must be (low, high) '
                             'with 0 < low <= high.')


def kept(n: int, limit: int) -> np.ndarray:
  """Indices of the first `limit` of a fixed (seed 0) shuffle of n items, in stored order."""
  if not limit or limit >= n:
    return np.arange(n)
  return np.sort(np.random.default_rng(0).permutation(n)[:limit])


# prepare(record, role 'train' | 'test', crop size, largest shorter side a crop uses) -> row.
Prepare = Callable[[dict[str, Any], str, int, int], Any]


def load(config: ml_collections.ConfigDict, ev: dict[str, Any], source: str,
         prepare: Prepare) -> dict[str, Any]:
  """{'classes', 'size': the crop side, 'train' / 'test': prepare(record, role, ...) of each
  kept record}; `ev` holds every option, defaults included."""
  data_dir = config.data.data_dir or None
  size = int(ev['image_size']) or int(config.data.image_size)
  shorter = dense_augment.max_shorter_side(size, tuple(ev['scale_range']))
  out = {'classes': sources.dense_classes(source, data_dir=data_dir), 'size': size}
  for role, split, limit in (('train', config.eval.train_split, int(ev['max_train'])),
                             ('test', config.eval.test_split, int(ev['max_test']))):
    raw = sources.open_split(source, split, data_dir=data_dir)
    out[role] = [prepare(raw[int(i)], role, size, shorter) for i in kept(len(raw), limit)]
  return out


class Plan(NamedTuple):
  val: list     # the held-out training rows, in stored order
  fit: list     # the rest, trained on
  per_epoch: int
  steps: int


def plan(train: list, ev: dict[str, Any], seed: int, key: str) -> Plan:
  """The held-out part of `train` (at least one row) and the steps of ev['epochs'] over the
  rest; ConfigError naming `key`.warmup_steps when the warmup is not shorter than them."""
  order = np.random.default_rng(seed).permutation(len(train))
  num_val = max(1, int(round(float(ev['val_fraction']) * len(order))))
  fit = [train[i] for i in np.sort(order[num_val:])]
  batch_size = int(ev['batch_size'])
  per_epoch = math.ceil(len(fit) / batch_size)
  steps = max(1, math.ceil(float(ev['epochs']) * per_epoch))
  if not 0 <= int(ev['warmup_steps']) < steps:
    raise errors.ConfigError(
        f'{key}.warmup_steps={ev["warmup_steps"]} must be in [0, {steps}) (the steps of '
        f'{ev["epochs"]} epochs of {len(fit)} images at batch {batch_size}); lower it or '
        f'raise {key}.epochs.')
  return Plan([train[i] for i in np.sort(order[:num_val])], fit, per_epoch, steps)


def train(step: Callable, variables: Any, tx: optax.GradientTransformation, fit_plan: Plan,
          ev: dict[str, Any], validate: Callable[[Any], float], seed: int,
          progress: str) -> tuple[Any, int, float]:
  """(best variables, best step, its held-out score): best_step.train over the fit rows by
  index, `step(variables, opt_state, {'index': [B]})` cutting each batch's crops."""
  best, best_t, score, _ = best_step.train(
      step, variables, tx.init(variables), {'index': np.arange(len(fit_plan.fit))},
      batch_size=int(ev['batch_size']), steps=fit_plan.steps,
      every=int(ev['eval_every']) or fit_plan.per_epoch, validate=validate, seed=seed,
      progress=progress)
  return best, best_t, score


def jit_on_mesh(loss_fn, forward, tx, mesh):
  """(step, forward, grads) of a dense head (segmentation, detection), jitted like the
  trainer's step: variables, optimiser state and BN statistics replicated, the batch sharded.
  `loss_fn(variables, batch_stats, data)` and `forward(variables, batch_stats, images)`."""
  rep, batch = sharding.replicated(mesh), sharding.batch_sharding(mesh)

  def step(variables, opt_state, batch_stats, data):
    loss, grads = jax.value_and_grad(loss_fn)(variables, batch_stats, data)
    updates, opt_state = tx.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state, loss

  return (jax.jit(step, in_shardings=(rep, rep, rep, batch), out_shardings=(rep, rep, rep)),
          jax.jit(forward, in_shardings=(rep, rep, batch), out_shardings=batch),
          jax.jit(jax.value_and_grad(loss_fn), in_shardings=(rep, rep, batch),
                  out_shardings=(rep, rep)))


def to_mesh(data: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
  """A global host batch (the same on every process) as arrays sharded over the data axes."""
  s = sharding.batch_sharding(mesh)
  return {k: jax.make_array_from_callback(v.shape, s, lambda idx, v=v: v[idx])
          for k, v in data.items()}


def picture(test: list, predicted: list, classes: list[str], shown: int,
            **extra: Any) -> dict[str, Any]:
  """The report's picture data: the first `shown` test views, their truth and predictions."""
  return {'images': [v for v, _ in test[:shown]], 'truth': [t for _, t in test[:shown]],
          'predicted': predicted[:shown], 'classes': classes, **extra}
