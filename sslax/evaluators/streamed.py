"""Evaluators on features that stay on the mesh (features.Bank), for splits over
`config.eval.max_host_bytes`: `score` runs one by type; the logistic probe by mini-batches and
ridge in closed form live here, kNN (knn.py) and k-means (clustering.py) take a bank as is.

For splits whose features exceed `config.eval.max_host_bytes` (ImageNet: 1.28M x 2048
float32 = 10 GB), where the full-batch L-BFGS probe of linear_probe.py would need them all in
one place. The protocol is the same, so the two are comparable: features standardised with
training statistics (here a masked reduction over the sharded bank), the same objective
(mean cross-entropy + l2/2 * ||W||^2, bias unpenalised), the L2 strength picked on the same
stratified held-out part of train (linear_probe.stratified_split in record order), then a
refit on all of train and the test accuracy. Only the optimiser differs: Adam on random
mini-batches with a cosine learning rate (the schedule of the SSL papers' linear evaluations,
e.g. MoCo v3 and DINO use SGD with cosine decay), all steps of one fit in one compiled loop.

Each step gathers its batch's rows from wherever they live (an all-reduce of a [b, D] block),
so nothing the size of the split ever leaves the devices. `ridge_probe` needs no iterations:
its [D, D] normal equations are one reduction over the sharded rows.

Shape suffixes: N = bank rows, D = feature width, L = classes, b = mini-batch.
"""
from collections.abc import Sequence
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from sslax import errors
from sslax.data import readers
from sslax.evaluators import clustering
from sslax.evaluators import features as features_lib
from sslax.evaluators import knn
from sslax.evaluators import linear_probe

_HIGHEST = jax.lax.Precision.HIGHEST


_ADAM = optax.scale_by_adam()


def _init(width: int, num_classes: int) -> tuple[Any, Any]:
  params = {'w_DxL': jnp.zeros((width, num_classes), jnp.float32),
            'b_L': jnp.zeros((num_classes,), jnp.float32)}
  return params, _ADAM.init(params)


@functools.partial(jax.jit, static_argnames=('batch_size',), donate_argnums=0)
def _fit_steps(carry: tuple[Any, Any], x_NxD: jax.Array, y_N: jax.Array, pool_N: jax.Array,
               pool_size: jax.Array, mean_D: jax.Array, std_D: jax.Array, l2: jax.Array,
               start: jax.Array, stop: jax.Array, steps: jax.Array, learning_rate: jax.Array,
               key: jax.Array, *, batch_size: int) -> tuple[Any, Any]:
  """Steps [start, stop) of `steps` of Adam with a cosine-decayed rate on batches drawn
  (with replacement) from the first `pool_size` rows listed in `pool_N`, on standardised
  features; `carry` = (params {'w_DxL', 'b_L'}, Adam state). Step t draws from
  fold_in(key, t), so splitting a fit into spans (for a progress bar) changes nothing."""
  adam = _ADAM

  def loss(params, x_bxD, y_b):
    logits_bxL = jnp.matmul((x_bxD - mean_D) / std_D, params['w_DxL'],
                            precision=_HIGHEST) + params['b_L']
    xent = optax.softmax_cross_entropy_with_integer_labels(logits_bxL, y_b).mean()
    return xent + 0.5 * l2 * jnp.sum(jnp.square(params['w_DxL']))

  def step(t, carry):
    params, state = carry
    pick_b = jax.random.randint(jax.random.fold_in(key, t), (batch_size,), 0, pool_size)
    rows_b = pool_N[pick_b]
    grads = jax.grad(loss)(params, x_NxD[rows_b], y_N[rows_b])
    updates, state = adam.update(grads, state, params)
    rate = learning_rate * 0.5 * (1 + jnp.cos(jnp.pi * t / steps))
    return jax.tree.map(lambda p, u: p - rate * u, params, updates), state

  return jax.lax.fori_loop(start, stop, step, carry)


@jax.jit
def _correct(x_NxD, y_N, weight_N, mean_D, std_D, w_DxL, b_L):
  """Number of rows with weight 1 whose prediction is right (computed where rows live)."""
  logits_NxL = jnp.matmul((x_NxD - mean_D) / std_D, w_DxL, precision=_HIGHEST) + b_L
  return jnp.sum(weight_N * (jnp.argmax(logits_NxL, -1) == y_N))


def _weights(bank: features_lib.Bank, rows: np.ndarray) -> np.ndarray:
  weight_N = np.zeros(len(bank.valid_N), np.float32)
  weight_N[rows] = 1.0
  return weight_N


def logistic_probe(train: features_lib.Bank, test: features_lib.Bank, *, num_classes: int,
                   l2_grid: Sequence[float], epochs: float, batch_size: int,
                   learning_rate: float, val_fraction: float = 0.2, seed: int = 0,
                   mesh: Any, progress: bool = False) -> dict[str, float]:
  """linear_probe.logistic_probe's protocol on banks: {'accuracy', 'l2', 'val_accuracy'}.
  `progress`: a bar over the optimiser steps of every fit, advanced once per epoch."""
  if num_classes < 2:
    raise ValueError(f'num_classes must be >= 2 for a classifier; got {num_classes}.')
  if len(l2_grid) == 0 or any(not l2 >= 0 for l2 in l2_grid):
    raise ValueError(f'l2_grid must be a non-empty sequence of values >= 0; got {l2_grid}.')
  if not epochs > 0 or batch_size < 1 or not learning_rate > 0:
    raise ValueError(f'epochs={epochs} and learning_rate={learning_rate} must be > 0 and '
                     f'batch_size={batch_size} >= 1.')
  n = train.num_examples
  labels = train.labels_N[train.rows_of(np.arange(n))]   # record order, as L-BFGS sees them
  fit_records, val_records = linear_probe.stratified_split(labels, val_fraction, seed)
  if val_records.size == 0:
    raise errors.DataError(linear_probe.no_held_out_message(val_fraction, n))
  put = lambda a: features_lib.replicated(a, mesh)
  x_NxD, y_N = train.feats_NxD, put(train.labels_N.astype(np.int32))
  key = jax.random.PRNGKey(seed)
  num_steps = lambda rows: max(1, int(np.ceil(epochs * rows / batch_size)))
  fit_rows, val_rows = train.rows_of(fit_records), train.rows_of(val_records)
  total = len(l2_grid) * num_steps(len(fit_rows)) + num_steps(n)
  bar = tqdm.tqdm(total=total, desc='linear probe (mini-batch)', leave=False,
                  dynamic_ncols=True, disable=not progress)

  def fit(rows: np.ndarray, l2: float) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    # Same shapes for every fit (rows padded to N, `pool_size` traced): one compilation.
    pool_N = np.zeros(len(train.valid_N), np.int32)
    pool_N[:len(rows)] = rows
    mean_D, std_D = features_lib.masked_stats(x_NxD, put(_weights(train, rows)),
                                              linear_probe._MIN_STD)
    steps, per_epoch = num_steps(len(rows)), num_steps(len(rows) / epochs)
    # On every device as global arrays (a process-local array cannot enter a multi-host jit).
    carry, pool_N = jax.tree.map(put, _init(x_NxD.shape[1], num_classes)), put(pool_N)
    for start in range(0, steps, per_epoch):   # one jitted call per epoch
      stop = min(start + per_epoch, steps)
      carry = _fit_steps(carry, x_NxD, y_N, pool_N, jnp.int32(len(rows)), mean_D, std_D,
                         jnp.float32(l2), jnp.int32(start), jnp.int32(stop), jnp.int32(steps),
                         jnp.float32(learning_rate), key, batch_size=batch_size)
      bar.update(stop - start)
    return mean_D, std_D, carry[0]['w_DxL'], carry[0]['b_L']

  val_weight = put(_weights(train, val_rows))
  best_l2, best_val_accuracy = None, -1.0
  for l2 in sorted(l2_grid, reverse=True):   # ties go to the larger strength, as L-BFGS's
    model = fit(fit_rows, l2)
    val_accuracy = float(_correct(x_NxD, y_N, val_weight, *model)) / len(val_rows)
    if val_accuracy > best_val_accuracy:
      best_l2, best_val_accuracy = l2, val_accuracy
  model = fit(np.flatnonzero(train.valid_N), best_l2)
  bar.close()
  test_y = put(test.labels_N.astype(np.int32))
  correct = _correct(test.feats_NxD, test_y, put(test.valid_N.astype(np.float32)), *model)
  return {'accuracy': float(correct) / test.num_examples, 'l2': float(best_l2),
          'val_accuracy': best_val_accuracy}


@functools.partial(jax.jit, static_argnames=('num_outputs',))
def _ridge(x_NxD, targets_N, weight_N, l2, *, num_outputs):
  """linear_probe._solve_ridge on the rows with weight 1, standardised with their statistics;
  one-hot targets when num_outputs > 1. Returns (mean_D, std_D, w_DxL, b_L)."""
  count = jnp.sum(weight_N)
  mean_D = jnp.einsum('n,nd->d', weight_N, x_NxD, precision=_HIGHEST) / count
  std_D = jnp.sqrt(jnp.einsum('n,nd->d', weight_N, jnp.square(x_NxD - mean_D),
                              precision=_HIGHEST) / count)
  std_D = jnp.maximum(std_D, linear_probe._MIN_STD)
  t_NxL = (jax.nn.one_hot(targets_N, num_outputs, dtype=jnp.float32) if num_outputs > 1
           else targets_N.astype(jnp.float32)[:, None])
  # Standardised rows have weighted mean 0; the targets are centred with the same weights.
  xc_NxD = (x_NxD - mean_D) / std_D * weight_N[:, None]
  t_mean_L = jnp.einsum('n,nl->l', weight_N, t_NxL) / count
  tc_NxL = (t_NxL - t_mean_L) * weight_N[:, None]
  gram_DxD = (jnp.matmul(xc_NxD.T, xc_NxD, precision=_HIGHEST) / count
              + l2 * jnp.eye(x_NxD.shape[1], dtype=jnp.float32))
  w_DxL = jnp.linalg.solve(gram_DxD, jnp.matmul(xc_NxD.T, tc_NxL, precision=_HIGHEST) / count)
  return mean_D, std_D, w_DxL, t_mean_L


@jax.jit
def _predict(x_NxD, mean_D, std_D, w_DxL, b_L):
  return jnp.matmul((x_NxD - mean_D) / std_D, w_DxL, precision=_HIGHEST) + b_L


def ridge_probe(train: features_lib.Bank, test: features_lib.Bank, *, num_classes: int | None,
                l2: float, mesh: Any) -> dict[str, float]:
  """linear_probe.ridge_probe (num_classes: class ids) or ridge_regression_probe (None: float
  targets) on banks: the [D, D] system is a reduction over the sharded rows."""
  if not l2 > 0:
    raise ValueError(f'l2 must be > 0; got {l2}.')
  put = lambda a: features_lib.replicated(a, mesh)
  regression = num_classes is None
  targets = train.labels_N.astype(np.float32 if regression else np.int32)
  model = _ridge(train.feats_NxD, put(targets), put(train.valid_N.astype(np.float32)),
                 jnp.float32(l2), num_outputs=1 if regression else num_classes)
  out_MxL = np.asarray(readers.gather(_predict(test.feats_NxD, *model)))[test.valid_N]
  if regression:
    return linear_probe.regression_metrics(out_MxL[:, 0], test.labels_N[test.valid_N])
  return {'accuracy': float(np.mean(out_MxL.argmax(1) == test.labels_N[test.valid_N]))}


def score(name: str, ev: Any, train: features_lib.Bank, test: features_lib.Bank, *,
          num_classes: int | None, regression: bool, seed: int, mesh: Any,
          progress: bool = False) -> dict[str, float]:
  """Evaluator `name` (its config `ev`, optional keys filled) on the banks: {metric: value};
  `progress` shows the mini-batch probe's bar."""
  if ev['type'] == 'knn':
    predicted = readers.gather(knn.knn_predict(
        train.feats_NxD, train.labels_N, test.feats_NxD, num_classes=num_classes, k=ev['k'],
        temperature=ev['temperature'], bank_valid_N=train.valid_N))
    return {'accuracy': float(np.mean((predicted == test.labels_N)[test.valid_N]))}
  if ev['type'] == 'linear_probe':
    probe = logistic_probe(train, test, num_classes=num_classes, l2_grid=tuple(ev['l2_grid']),
                           epochs=float(ev['minibatch_epochs']),
                           batch_size=int(ev['minibatch_batch_size']),
                           learning_rate=float(ev['minibatch_learning_rate']), seed=seed,
                           mesh=mesh, progress=progress)
    return {'accuracy': probe['accuracy'], 'l2': probe['l2']}
  if ev['type'] == 'ridge':
    return ridge_probe(train, test, num_classes=None if regression else num_classes,
                       l2=ev['l2'], mesh=mesh)
  if ev['type'] == 'clustering':
    return clustering.kmeans_on_device(test.feats_NxD, test.valid_N, test.labels_N,
                                       num_clusters=num_classes, seed=seed, n_init=ev['n_init'])
  raise ValueError(f'config.evals.{name}: type {ev["type"]!r} has no streamed form.')
