"""Clustering on frozen features: k-means, scored against the labels with NMI and ARI.

How well a representation groups examples without any labelled training: k-means with as many
clusters as classes (as in e.g. SwAV/SCAN-style evaluations), then normalised mutual
information and the adjusted Rand index between clusters and labels. Both are permutation
invariant (cluster ids need not match class ids), 1 for a perfect match and ~0 for random
assignments (ARI can go below 0). The metrics are scikit-learn's, so numbers are comparable
with published ones.

Shape suffixes: N = examples, D = feature width.
"""
import functools
from typing import Any

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
from sklearn import cluster as sk_cluster
from sklearn import metrics as sk_metrics

ArrayLike = Any


def scores(labels_N: ArrayLike, assignments_N: ArrayLike) -> dict[str, float]:
  """NMI and ARI between true labels [N] and cluster assignments [N] (any integer ids)."""
  labels_N, assignments_N = np.asarray(labels_N), np.asarray(assignments_N)
  if labels_N.shape != assignments_N.shape or labels_N.ndim != 1:
    raise ValueError(f'labels and assignments must be [N] vectors of one length; got '
                     f'{labels_N.shape} and {assignments_N.shape}.')
  return {'nmi': float(sk_metrics.normalized_mutual_info_score(labels_N, assignments_N)),
          'ari': float(sk_metrics.adjusted_rand_score(labels_N, assignments_N))}


def kmeans(feats_NxD: ArrayLike, labels_N: ArrayLike, *, num_clusters: int, seed: int = 0,
           n_init: int = 10, normalize: bool = True) -> dict[str, float]:
  """k-means on features [N, D], scored against labels [N].

  Args:
    feats_NxD: frozen features (the test split: no labels are used to fit).
    labels_N: integer class ids, only for scoring.
    num_clusters: k, usually the number of classes.
    seed: k-means++ initialisation seed.
    n_init: restarts; the lowest-inertia run is kept.
    normalize: L2-normalise rows first, so distances are cosine ones as in kNN.

  Returns:
    {'nmi', 'ari'} in the ranges above.
  """
  x_NxD = np.asarray(feats_NxD, np.float64)
  if x_NxD.ndim != 2 or x_NxD.shape[0] < num_clusters:
    raise ValueError(f'k-means needs [N, D] features with N >= num_clusters={num_clusters}; '
                     f'got shape {x_NxD.shape}.')
  if normalize:
    x_NxD = x_NxD / np.maximum(np.linalg.norm(x_NxD, axis=1, keepdims=True), 1e-12)
  fitted = sk_cluster.KMeans(n_clusters=num_clusters, n_init=n_init, random_state=seed).fit(x_NxD)
  return scores(labels_N, fitted.labels_)


@functools.partial(jax.jit, static_argnames=('num_clusters',))
def _kmeans_plus_plus(x_NxD: jax.Array, valid_N: jax.Array, key: jax.Array, *,
                      num_clusters: int) -> jax.Array:
  """k-means++ seeding (Arthur & Vassilvitskii 2007) over the valid rows: each next centre
  is drawn with probability proportional to its squared distance to the nearest one so far."""
  first = jax.random.categorical(jax.random.fold_in(key, 0), jnp.where(valid_N, 0.0, -jnp.inf))
  centres_KxD = jnp.zeros((num_clusters, x_NxD.shape[1]), x_NxD.dtype).at[0].set(x_NxD[first])
  nearest_N = jnp.sum(jnp.square(x_NxD - x_NxD[first]), axis=1)

  def add(i, carry):
    centres_KxD, nearest_N = carry
    logits_N = jnp.where(valid_N & (nearest_N > 0), jnp.log(nearest_N), -jnp.inf)
    pick = jax.random.categorical(jax.random.fold_in(key, i), logits_N)
    nearest_N = jnp.minimum(nearest_N, jnp.sum(jnp.square(x_NxD - x_NxD[pick]), axis=1))
    return centres_KxD.at[i].set(x_NxD[pick]), nearest_N

  return jax.lax.fori_loop(1, num_clusters, add, (centres_KxD, nearest_N))[0]


def _assign(x_NxD: jax.Array, centres_KxD: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Nearest centre [N] and squared distance to it [N]."""
  dist_NxK = (jnp.sum(jnp.square(x_NxD), 1, keepdims=True)
              - 2 * jnp.matmul(x_NxD, centres_KxD.T, precision=jax.lax.Precision.HIGHEST)
              + jnp.sum(jnp.square(centres_KxD), 1)[None])
  return jnp.argmin(dist_NxK, 1), jnp.min(dist_NxK, 1)


@functools.partial(jax.jit, static_argnames=('num_clusters',))
def _lloyd(x_NxD: jax.Array, valid_N: jax.Array, centres_KxD: jax.Array, max_iter: jax.Array, *,
           num_clusters: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Lloyd iterations until no centre moves or `max_iter`: (assignments [N], inertia, centres).
  Each iteration's sums are reductions over the sharded rows: [K, D] crosses devices, not
  the rows."""
  weight_N = valid_N.astype(x_NxD.dtype)

  def update(carry):
    centres_KxD, _, i = carry
    assigned_N, _ = _assign(x_NxD, centres_KxD)
    onehot_NxK = jax.nn.one_hot(assigned_N, num_clusters, dtype=x_NxD.dtype) * weight_N[:, None]
    counts_K = onehot_NxK.sum(0)
    sums_KxD = jnp.matmul(onehot_NxK.T, x_NxD, precision=jax.lax.Precision.HIGHEST)
    # An empty cluster keeps its centre.
    new_KxD = jnp.where(counts_K[:, None] > 0, sums_KxD / jnp.maximum(counts_K, 1)[:, None],
                        centres_KxD)
    return new_KxD, jnp.any(new_KxD != centres_KxD), i + 1

  centres_KxD, _, _ = jax.lax.while_loop(lambda c: c[1] & (c[2] < max_iter), update,
                                         (centres_KxD, jnp.bool_(True), jnp.int32(0)))
  assigned_N, dist_N = _assign(x_NxD, centres_KxD)
  return assigned_N, jnp.sum(weight_N * dist_N), centres_KxD


@jax.jit
def _unit_rows(x_NxD: jax.Array) -> jax.Array:
  return x_NxD / jnp.maximum(jnp.linalg.norm(x_NxD, axis=1, keepdims=True), 1e-12)


def kmeans_on_device(feats_NxD: jax.Array, valid_N: np.ndarray, labels_N: np.ndarray, *,
                     num_clusters: int, seed: int = 0, n_init: int = 10, max_iter: int = 300,
                     normalize: bool = True) -> dict[str, float]:
  """`kmeans` for features that stay on the mesh (a features.Bank: rows sharded over
  devices, `valid_N` False on padding rows): k-means++ seeding and Lloyd iterations as jitted
  reductions over the sharded rows, the lowest-inertia of `n_init` restarts kept; only the
  assignments ([N] ints) come to the host to be scored against `labels_N`."""
  valid_N = np.asarray(valid_N, bool)
  if feats_NxD.ndim != 2 or valid_N.sum() < num_clusters:
    raise ValueError(f'k-means needs [N, D] features with N >= num_clusters={num_clusters}; '
                     f'got shape {feats_NxD.shape} with {int(valid_N.sum())} valid rows.')
  x_NxD = _unit_rows(feats_NxD.astype(jnp.float32)) if normalize else feats_NxD
  valid = jax.device_put(valid_N, jax.sharding.NamedSharding(feats_NxD.sharding.mesh,
                                                             jax.sharding.PartitionSpec())
                         ) if hasattr(feats_NxD.sharding, 'mesh') else jnp.asarray(valid_N)
  best = None
  for restart in range(n_init):
    key = jax.random.fold_in(jax.random.PRNGKey(seed), restart)
    centres_KxD = _kmeans_plus_plus(x_NxD, valid, key, num_clusters=num_clusters)
    assigned_N, inertia, _ = _lloyd(x_NxD, valid, centres_KxD, jnp.int32(max_iter),
                                    num_clusters=num_clusters)
    if best is None or float(inertia) < best[0]:
      best = (float(inertia), assigned_N)
  assigned = np.asarray(best[1]) if jax.process_count() == 1 else np.asarray(
      multihost_utils.process_allgather(best[1], tiled=True))
  return scores(np.asarray(labels_N)[valid_N], assigned[valid_N])
