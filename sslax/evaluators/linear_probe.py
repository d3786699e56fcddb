"""Linear probes on frozen features: how linearly decodable the labels are from a representation.

`logistic_probe` is the standard protocol of the SSL literature in its full-batch form
(e.g. SimCLR, Chen et al. 2020, appendix B.5; CLIP, Radford et al. 2021, sec. 3.2, which
also fits L-BFGS logistic regression with an L2 strength chosen on a held-out split):
standardise the features, fit multinomial logistic regression for each L2 strength on part
of the training set, keep the strength with the best held-out accuracy, refit on all of the
training set and report test accuracy. `ridge_probe` is the closed-form least-squares
version onto one-hot targets: one DxD solve, a quick check.

Features arrive on the host (they are gathered from the encoder by the caller) and are small
(at most tens of thousands x a few thousand), so probes run on the default device in float32.

Shape suffixes: N = training examples, M = test examples, D = feature width, L = classes.
"""
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sslax import errors

ArrayLike = Any  # np.ndarray, jax.Array or a nested list

# Floor on the per-feature standard deviation, so constant features stay finite (they become
# all zeros) instead of dividing by zero.
_MIN_STD = 1e-6
# Full float32 matmuls: TPUs otherwise use bf16 passes, enough to shift a probe's accuracy.
_HIGHEST = jax.lax.Precision.HIGHEST


def _check_split(feats_name: str, feats: ArrayLike, labels_name: str, labels: ArrayLike,
                 num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """Returns (float32 [N, D], int32 [N]) host arrays or raises ValueError naming the bad one."""
  feats, labels = np.asarray(feats), np.asarray(labels)
  if feats.ndim != 2 or feats.shape[0] == 0:
    raise ValueError(f"{feats_name} must be a non-empty [N, D] array; got shape {feats.shape}.")
  if labels.shape != (feats.shape[0],):
    raise ValueError(f"{labels_name} must have shape [{feats.shape[0]}] to match {feats_name}; "
                     f"got {labels.shape}.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{labels_name} must hold integer class ids; got dtype {labels.dtype}.")
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(f"{labels_name} must lie in [0, num_classes={num_classes}); found values "
                     f"in [{labels.min()}, {labels.max()}].")
  if not np.all(np.isfinite(feats)):
    raise ValueError(f"{feats_name} contains NaN or infinite values.")
  return feats.astype(np.float32), labels.astype(np.int32)


def _check_inputs(train_feats: ArrayLike, train_labels: ArrayLike, test_feats: ArrayLike,
                  test_labels: ArrayLike, num_classes: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2 for a classifier; got {num_classes}.")
  x_NxD, y_N = _check_split("train_feats", train_feats, "train_labels", train_labels,
                            num_classes)
  x_MxD, y_M = _check_split("test_feats", test_feats, "test_labels", test_labels, num_classes)
  if x_MxD.shape[1] != x_NxD.shape[1]:
    raise ValueError(f"test_feats has width {x_MxD.shape[1]} but train_feats has width "
                     f"{x_NxD.shape[1]}; they must match.")
  return x_NxD, y_N, x_MxD, y_M


def _standardize(train_NxD: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
  """Zero mean, unit variance per feature, using training statistics for every split."""
  mean_D = train_NxD.mean(axis=0)
  std_D = np.maximum(train_NxD.std(axis=0), _MIN_STD)
  return [(x - mean_D) / std_D for x in (train_NxD, *others)]


def stratified_split(labels_N: np.ndarray, val_fraction: float, seed: int,
                     min_per_class: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Indices (fit, val) holding out `val_fraction` of every class, and at least
  `min_per_class` (at least one example of each class stays in fit), so rare classes are
  represented in both halves."""
  rng = np.random.default_rng(seed)
  val_parts = []
  for label in np.unique(labels_N):
    index = rng.permutation(np.flatnonzero(labels_N == label))
    num_val = min(max(min_per_class, int(round(val_fraction * index.size))), index.size - 1)
    val_parts.append(index[:num_val])
  val_index = np.sort(np.concatenate(val_parts))
  fit_index = np.setdiff1d(np.arange(labels_N.size), val_index)
  return fit_index, val_index


# Fewer held-out examples of a class than this, and hyperparameters are chosen by k-fold
# cross-validation instead (selection_splits).
MIN_HELD_OUT = 3


def selection_splits(labels_N: np.ndarray, val_fraction: float,
                     seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
  """The (fit, val) index pairs on which a hyperparameter is chosen, all inside `labels_N`.

  One stratified held-out part (`stratified_split`) when it holds out at least
  MIN_HELD_OUT examples of every class (every all-labels evaluation of a real split); else,
  with at least two examples per class, stratified k-fold cross-validation with
  k = min(5, the smallest class) (few labels: 2-12 per class at val_fraction 0.2), whose
  held-out accuracy averages every example instead of one or two per class; else []
  (one example of some class: nothing can be held out, and the caller uses a fixed choice).
  """
  labels_N = np.asarray(labels_N)
  counts = np.unique(labels_N, return_counts=True)[1]
  if all(min(int(round(val_fraction * c)), c - 1) >= MIN_HELD_OUT for c in counts):
    return [stratified_split(labels_N, val_fraction, seed)]
  if counts.min() < 2:
    return []
  # Imported here, not at the top, for start-up time: config validation (sslax/validate.py)
  # reaches this module through evaluators.options, and scikit-learn's import (~2 s) would
  # delay every config error of `python -m sslax.main`.
  from sklearn import model_selection   # pylint: disable=import-outside-toplevel
  folds = model_selection.StratifiedKFold(n_splits=min(5, int(counts.min())), shuffle=True,
                                          random_state=seed)
  return list(folds.split(np.zeros(labels_N.size), labels_N))


def no_held_out_message(val_fraction: float, num_train: int) -> str:
  """Why a probe cannot choose its L2 strength: the data (too few examples per class), not
  a setting, so errors.DataError; the fix is more examples."""
  return (f'the linear probe holds out val_fraction={val_fraction} of each class of its '
          f'{num_train} training examples to choose its L2 strength, which leaves none: every '
          'class has too few; use more training examples (config.eval.train_split, '
          'config.eval.max_train_examples).')


def _fit_softmax_regression_impl(x_NxD: jax.Array, y_N: jax.Array, weight_N: jax.Array,
                                 l2: jax.Array, tol: jax.Array, steps: jax.Array, *,
                                 num_classes: int) -> tuple[jax.Array, jax.Array]:
  """Minimises the weight_N-weighted mean cross-entropy + l2/2 * ||W||^2 (bias unpenalised)
  with L-BFGS.

  A 0/1 `weight_N` lets the held-out fits and the final refit share one compiled shape;
  l2, tol and steps are traced, so changing them does not recompile either.
  Returns (w_DxL, b_L). Stops after `steps` iterations or once the gradient norm < tol.
  """
  params = {"w_DxL": jnp.zeros((x_NxD.shape[1], num_classes), jnp.float32),
            "b_L": jnp.zeros((num_classes,), jnp.float32)}

  def objective(params: dict[str, jax.Array]) -> jax.Array:
    logits_NxL = jnp.matmul(x_NxD, params["w_DxL"], precision=_HIGHEST) + params["b_L"]
    xent_N = optax.softmax_cross_entropy_with_integer_labels(logits_NxL, y_N)
    xent = jnp.sum(weight_N * xent_N) / jnp.sum(weight_N)
    return xent + 0.5 * l2 * jnp.sum(jnp.square(params["w_DxL"]))

  solver = optax.lbfgs()
  # Reuses the value and gradient the line search already computed at the accepted point.
  value_and_grad = optax.value_and_grad_from_state(objective)

  def step(carry):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = solver.update(grad, state, params, value=value, grad=grad,
                                   value_fn=objective)
    return optax.apply_updates(params, updates), state

  def keep_going(carry) -> jax.Array:
    _, state = carry
    count = optax.tree.get(state, "count")
    grad_norm = optax.tree.norm(optax.tree.get(state, "grad"))
    # The state's gradient is only meaningful after the first step.
    return (count == 0) | ((count < steps) & (grad_norm >= tol))

  params, _ = jax.lax.while_loop(keep_going, step, (params, solver.init(params)))
  return params["w_DxL"], params["b_L"]


_fit_softmax_regression = jax.jit(_fit_softmax_regression_impl, static_argnames="num_classes")


def _accuracy(x_MxD: np.ndarray, y_M: np.ndarray, w_DxL: jax.Array, b_L: jax.Array) -> float:
  logits_MxL = jnp.matmul(jnp.asarray(x_MxD), w_DxL, precision=_HIGHEST) + b_L
  predicted_M = np.asarray(jnp.argmax(logits_MxL, axis=-1))
  return float(np.mean(predicted_M == y_M))


def fit_logistic(train_feats: ArrayLike, train_labels: ArrayLike, *, num_classes: int,
                 l2_grid: Sequence[float] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2), steps: int = 300,
                 val_fraction: float = 0.2, seed: int = 0,
                 tol: float = 1e-6) -> dict[str, Any]:
  """The probe's classifier, fitted on all of train with the L2 strength chosen on held-out data.

  Returns {'w_DxL', 'b_L': weights on the raw (unstandardised) features, 'l2': the chosen
  strength, 'val_accuracy': held-out accuracy of that strength}; see `logistic_probe`.
  """
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2 for a classifier; got {num_classes}.")
  x_NxD, y_N = _check_split("train_feats", train_feats, "train_labels", train_labels,
                            num_classes)
  if len(l2_grid) == 0 or any(not l2 >= 0 for l2 in l2_grid):
    raise ValueError(f"l2_grid must be a non-empty sequence of values >= 0; got {l2_grid}.")
  if steps < 1:
    raise ValueError(f"steps must be >= 1; got {steps}.")
  if not 0 < val_fraction < 1:
    raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}.")
  splits = selection_splits(y_N, val_fraction, seed)
  fit = dict(num_classes=num_classes, steps=jnp.int32(steps), tol=jnp.float32(tol))
  # The L2 strength is picked with statistics of each fit part only, as it would be in use;
  # held-out rows stay in the array with weight 0 so every fit has the same shape. With
  # nothing to hold out (one example of a class), the strongest L2 of the grid: nearest to
  # a class-mean classifier, the safe choice when every class is one point.
  val_accuracy = {l2: 0.0 for l2 in l2_grid}
  for fit_index, val_index in splits:
    x_all = _standardize(x_NxD[fit_index], x_NxD)[1]
    weight_N = np.zeros(y_N.size, np.float32)
    weight_N[fit_index] = 1.0
    for l2 in l2_grid:
      w_DxL, b_L = _fit_softmax_regression(x_all, y_N, weight_N, jnp.float32(l2), **fit)
      val_accuracy[l2] += _accuracy(x_all[val_index], y_N[val_index], w_DxL,
                                    b_L) / len(splits)
  # Ties go to the larger L2.
  best_l2 = max(l2_grid, key=lambda l2: (val_accuracy[l2], l2))
  best_val_accuracy = val_accuracy[best_l2] if splits else float('nan')

  mean_D = x_NxD.mean(axis=0)
  std_D = np.maximum(x_NxD.std(axis=0), _MIN_STD)
  w_DxL, b_L = _fit_softmax_regression((x_NxD - mean_D) / std_D, y_N,
                                       np.ones(y_N.size, np.float32), jnp.float32(best_l2),
                                       **fit)
  # (x - mean) / std @ W + b  ==  x @ (W / std) + (b - (mean / std) @ W)
  w_DxL, b_L = np.asarray(w_DxL, np.float64), np.asarray(b_L, np.float64)
  return {"w_DxL": (w_DxL / std_D[:, None]).astype(np.float32),
          "b_L": (b_L - (mean_D / std_D) @ w_DxL).astype(np.float32),
          "l2": float(best_l2), "val_accuracy": best_val_accuracy}


def logistic_probe(train_feats: ArrayLike, train_labels: ArrayLike, test_feats: ArrayLike,
                   test_labels: ArrayLike, *, num_classes: int,
                   l2_grid: Sequence[float] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2), steps: int = 300,
                   val_fraction: float = 0.2, seed: int = 0,
                   tol: float = 1e-6) -> dict[str, float]:
  """Multinomial logistic-regression probe with the L2 strength chosen on held-out data.

  The objective is mean cross-entropy + l2/2 * ||W||^2 on standardised features, so `l2`
  corresponds to scikit-learn's `C = 1 / (l2 * num_train)`.

  Args:
    train_feats: [N, D] frozen training features.
    train_labels: [N] integer labels in [0, num_classes).
    test_feats: [M, D] frozen test features.
    test_labels: [M] integer labels in [0, num_classes).
    num_classes: number of classes L >= 2.
    l2_grid: L2 strengths (>= 0) to try; ties in validation accuracy go to the larger one.
    steps: maximum L-BFGS iterations per fit.
    val_fraction: fraction of each class held out of train to choose the L2 strength.
    seed: seeds the held-out split.
    tol: L-BFGS stops early once the gradient norm falls below this.

  Returns:
    {'accuracy': test accuracy of the refit on all of train, 'l2': the chosen strength,
     'val_accuracy': held-out accuracy of that strength}.
  """
  _, _, x_MxD, y_M = _check_inputs(train_feats, train_labels, test_feats, test_labels,
                                   num_classes)
  fit = fit_logistic(train_feats, train_labels, num_classes=num_classes, l2_grid=l2_grid,
                     steps=steps, val_fraction=val_fraction, seed=seed, tol=tol)
  return {"accuracy": _accuracy(x_MxD, y_M, fit["w_DxL"], fit["b_L"]), "l2": fit["l2"],
          "val_accuracy": fit["val_accuracy"]}


@jax.jit
def _solve_ridge(x_NxD: jax.Array, targets_NxL: jax.Array,
                 l2: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Minimises mean ||x W + b - t||^2 + l2 * ||W||^2; returns (w_DxL, b_L)."""
  n = x_NxD.shape[0]
  x_mean_D, t_mean_L = x_NxD.mean(axis=0), targets_NxL.mean(axis=0)
  # Centering both sides solves for the unpenalised bias exactly.
  xc_NxD, tc_NxL = x_NxD - x_mean_D, targets_NxL - t_mean_L
  gram_DxD = (jnp.matmul(xc_NxD.T, xc_NxD, precision=_HIGHEST) / n
              + l2 * jnp.eye(x_NxD.shape[1], dtype=x_NxD.dtype))
  w_DxL = jnp.linalg.solve(gram_DxD, jnp.matmul(xc_NxD.T, tc_NxL, precision=_HIGHEST) / n)
  return w_DxL, t_mean_L - jnp.matmul(x_mean_D, w_DxL, precision=_HIGHEST)


def ridge_probe(train_feats: ArrayLike, train_labels: ArrayLike, test_feats: ArrayLike,
                test_labels: ArrayLike, *, num_classes: int,
                l2: float = 1e-3) -> dict[str, float]:
  """Closed-form ridge regression onto one-hot labels; predicts the largest output.

  Features are standardised with training statistics, so `l2` is relative to unit-variance
  features: the system solved is (X^T X / N + l2 I) W = X^T T / N on centred X and T.

  Args:
    train_feats, train_labels, test_feats, test_labels, num_classes: as `logistic_probe`.
    l2: ridge strength, > 0 keeps the DxD system well posed when D > N.

  Returns:
    {'accuracy': test accuracy}.
  """
  x_NxD, y_N, x_MxD, y_M = _check_inputs(train_feats, train_labels, test_feats, test_labels,
                                         num_classes)
  if not l2 > 0:
    raise ValueError(f"l2 must be > 0; got {l2}.")
  x_train, x_test = _standardize(x_NxD, x_MxD)
  targets_NxL = jax.nn.one_hot(y_N, num_classes, dtype=jnp.float32)
  w_DxL, b_L = _solve_ridge(jnp.asarray(x_train), targets_NxL, jnp.float32(l2))
  return {"accuracy": _accuracy(x_test, y_M, w_DxL, b_L)}


def regression_metrics(pred_M: np.ndarray, target_M: np.ndarray) -> dict[str, float]:
  """{'mse', 'mae', 'r2'} of predictions against float targets (R² = 1 - SSE / SST, as
  scikit-learn's r2_score; 0 for predicting the test mean, negative when worse)."""
  pred_M, target_M = np.asarray(pred_M, np.float64), np.asarray(target_M, np.float64)
  sse = float(np.sum((pred_M - target_M) ** 2))
  sst = float(np.sum((target_M - target_M.mean()) ** 2))
  return {'mse': sse / len(target_M), 'mae': float(np.mean(np.abs(pred_M - target_M))),
          'r2': 1.0 - sse / sst if sst > 0 else 0.0}


def ridge_regression_probe(train_feats: ArrayLike, train_targets: ArrayLike,
                           test_feats: ArrayLike, test_targets: ArrayLike, *,
                           l2: float = 1e-3) -> dict[str, float]:
  """Closed-form ridge regression of float targets on standardised frozen features.

  The same solve as `ridge_probe` with the targets themselves instead of one-hot classes.
  Returns {'mse', 'mae', 'r2'} on the test split.
  """
  x_NxD, x_MxD = (np.asarray(x, np.float32) for x in (train_feats, test_feats))
  y_N, y_M = (np.asarray(y, np.float32).reshape(-1) for y in (train_targets, test_targets))
  if x_NxD.ndim != 2 or x_MxD.ndim != 2 or x_NxD.shape[1] != x_MxD.shape[1]:
    raise ValueError(f"features must be [N, D] and [M, D] with one D; got {x_NxD.shape} and "
                     f"{x_MxD.shape}.")
  if len(y_N) != len(x_NxD) or len(y_M) != len(x_MxD):
    raise ValueError(f"{len(y_N)} / {len(y_M)} targets for {len(x_NxD)} / {len(x_MxD)} "
                     "train / test features.")
  if not l2 > 0:
    raise ValueError(f"l2 must be > 0; got {l2}.")
  x_train, x_test = _standardize(x_NxD, x_MxD)
  w_Dx1, b_1 = _solve_ridge(jnp.asarray(x_train), jnp.asarray(y_N)[:, None], jnp.float32(l2))
  pred_M = jnp.matmul(jnp.asarray(x_test), w_Dx1, precision=_HIGHEST)[:, 0] + b_1[0]
  return regression_metrics(np.asarray(pred_M), y_M)
