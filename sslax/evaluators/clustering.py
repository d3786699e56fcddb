"""Clustering on frozen features: k-means, scored against the labels with NMI and ARI.

How well a representation groups examples without any labelled training: k-means with as many
clusters as classes (as in e.g. SwAV/SCAN-style evaluations), then normalised mutual
information and the adjusted Rand index between clusters and labels. Both are permutation
invariant (cluster ids need not match class ids), 1 for a perfect match and ~0 for random
assignments (ARI can go below 0). The metrics are scikit-learn's, so numbers are comparable
with published ones.

Shape suffixes: N = examples, D = feature width.
"""
from typing import Any

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
