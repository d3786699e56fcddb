"""Weighted k-nearest-neighbour classification on frozen features.

The protocol of Wu et al. 2018 ("Unsupervised Feature Learning via Non-Parametric Instance
Discrimination", sec. 3.4), as used by DINO (Caron et al. 2021): cosine similarity between
L2-normalised features, the k most similar bank entries vote for their labels with weight
exp(similarity / temperature), and the class with the largest total wins.

Queries are processed in fixed-size chunks under one jitted function, so peak memory is
O(chunk_size * N) for the [chunk, N] similarity block and there is one compilation per
(bank shape, chunk size). The bank may be a global `jax.Array` sharded over its first axis
(e.g. `NamedSharding(mesh, P('data'))`): jit computes over the global bank, each device scoring
its own slice, and the result equals the unsharded one.

Shape suffixes: N = bank size, M = number of queries, D = feature width, C = chunk size,
K = neighbours.
"""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from sslax.losses import l2_normalize

ArrayLike = Any  # np.ndarray, jax.Array (possibly sharded) or a nested list


def _as_array(x: ArrayLike) -> np.ndarray | jax.Array:
  """Leaves device arrays where they are (a sharded bank must not be pulled to host)."""
  return x if isinstance(x, (jax.Array, np.ndarray)) else np.asarray(x)


def _check_labels(name: str, labels: ArrayLike, length: int, num_classes: int) -> None:
  """Raises ValueError unless `labels` is an integer vector of `length` in [0, num_classes)."""
  if labels.ndim != 1 or labels.shape[0] != length:
    raise ValueError(f"{name} must have shape [{length}] to match the features; got "
                     f"{labels.shape}.")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"{name} must hold integer class ids; got dtype {labels.dtype}.")
  # jnp reductions also work on sharded global arrays, where np.asarray would not.
  low, high = int(jnp.min(labels)), int(jnp.max(labels))
  if low < 0 or high >= num_classes:
    raise ValueError(f"{name} must lie in [0, num_classes={num_classes}); found values in "
                     f"[{low}, {high}].")


def _validate(bank_feats_NxD: ArrayLike, bank_labels_N: ArrayLike, query_feats_MxD: ArrayLike,
              *, num_classes: int, k: int, temperature: float, chunk_size: int) -> None:
  if bank_feats_NxD.ndim != 2 or bank_feats_NxD.shape[0] == 0:
    raise ValueError(f"bank_feats_NxD must be a non-empty [N, D] array; got shape "
                     f"{bank_feats_NxD.shape}.")
  if query_feats_MxD.ndim != 2 or query_feats_MxD.shape[0] == 0:
    raise ValueError(f"query_feats_MxD must be a non-empty [M, D] array; got shape "
                     f"{query_feats_MxD.shape}.")
  if query_feats_MxD.shape[1] != bank_feats_NxD.shape[1]:
    raise ValueError(f"query_feats_MxD has width {query_feats_MxD.shape[1]} but "
                     f"bank_feats_NxD has width {bank_feats_NxD.shape[1]}; they must match.")
  if num_classes < 1:
    raise ValueError(f"num_classes must be >= 1; got {num_classes}.")
  bank_size = bank_feats_NxD.shape[0]
  if not 1 <= k <= bank_size:
    raise ValueError(f"k must be in [1, bank size = {bank_size}]; got k={k}.")
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0; got {temperature}.")
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1; got {chunk_size}.")
  _check_labels("bank_labels_N", bank_labels_N, bank_size, num_classes)


@jax.jit
def _normalize_bank(bank_feats_NxD: jax.Array) -> jax.Array:
  """Unit-norm float32 rows; jit keeps the input's sharding."""
  return l2_normalize(bank_feats_NxD.astype(jnp.float32))


def _top_k_impl(bank_unit_NxD: jax.Array, bank_valid_N: jax.Array, query_CxD: jax.Array, *,
                k: int) -> tuple[jax.Array, jax.Array]:
  """Similarities and bank indices [C, K] of one chunk's k nearest valid bank entries."""
  query_unit_CxD = l2_normalize(query_CxD.astype(jnp.float32))
  sim_CxN = jnp.matmul(query_unit_CxD, bank_unit_NxD.T, precision=jax.lax.Precision.HIGHEST)
  # Padding rows of a streamed bank (features.Bank) never vote.
  sim_CxN = jnp.where(bank_valid_N[None, :], sim_CxN, -jnp.inf)
  return jax.lax.top_k(sim_CxN, k)


def _vote_impl(top_sim_CxK: jax.Array, top_labels_CxK: jax.Array, temperature: jax.Array, *,
               num_classes: int) -> jax.Array:
  """Predicted class ids [C] from the neighbours' similarities and labels."""
  # Subtracting each row's best similarity rescales a row's weights by one constant, which
  # leaves the vote unchanged but keeps exp() finite for any temperature.
  weight_CxK = jnp.exp((top_sim_CxK - top_sim_CxK[:, :1]) / temperature)
  votes_CxL = jnp.einsum("ck,ckl->cl", weight_CxK,
                         jax.nn.one_hot(top_labels_CxK, num_classes, dtype=jnp.float32))
  return jnp.argmax(votes_CxL, axis=-1).astype(jnp.int32)


_top_k = jax.jit(_top_k_impl, static_argnames=("k",))
_vote = jax.jit(_vote_impl, static_argnames=("num_classes",))


def _predict_chunk(bank_unit_NxD: jax.Array, bank_labels_N: jax.Array,
                   bank_valid_N: jax.Array, query_CxD: jax.Array,
                   temperature: jax.Array, *, k: int, num_classes: int) -> jax.Array:
  """Predicted class ids [C] for one chunk of queries against the whole (global) bank.

  Two compiled programs, not one: fused into one, XLA's CPU backend recomputed top_k (and the
  [C, N] product before it) for every element of the label gather and vote, and one
  1024-query chunk against a 60k bank took 147 s instead of 1.1 s (same loaded CPU, same
  inputs). An optimization_barrier between them did the same in one program but aborted
  XLA on a sharded bank.
  """
  top_sim_CxK, top_index_CxK = _top_k(bank_unit_NxD, bank_valid_N, query_CxD, k=k)
  return _vote(top_sim_CxK, bank_labels_N[top_index_CxK], temperature,
               num_classes=num_classes)


def _replicate_like(x: ArrayLike, reference: ArrayLike) -> ArrayLike:
  """Puts `x` on every device of `reference`'s mesh when `reference` is a NamedSharding'd
  array, so jit never sees a query committed to one device and a bank committed to eight."""
  if isinstance(reference, jax.Array) and isinstance(reference.sharding, NamedSharding):
    return jax.device_put(x, NamedSharding(reference.sharding.mesh, P()))
  return x


def knn_predict(bank_feats_NxD: ArrayLike, bank_labels_N: ArrayLike,
                query_feats_MxD: ArrayLike, *, num_classes: int, k: int = 20,
                temperature: float = 0.07, chunk_size: int = 1024,
                bank_valid_N: ArrayLike | None = None) -> jax.Array:
  """Predicts a class for each query by a similarity-weighted vote of its k nearest bank
  entries (Wu et al. 2018; DINO, Caron et al. 2021).

  Args:
    bank_feats_NxD: labelled reference features [N, D]; numpy or a (sharded) jax.Array.
    bank_labels_N: integer labels [N] in [0, num_classes).
    query_feats_MxD: features to classify [M, D].
    num_classes: number of classes L.
    k: neighbours that vote, 1 <= k <= N.
    temperature: vote weight is exp(cosine / temperature); smaller trusts the nearest more.
    chunk_size: queries scored at once; memory is O(chunk_size * N).
    bank_valid_N: bool [N], False for bank rows that must not vote (the padding of a
      streamed bank); None: every row is valid.

  Returns:
    int32 predicted labels [M]. Ties in the vote go to the lowest class id.
  """
  bank_feats_NxD, bank_labels_N, query_feats_MxD = map(
      _as_array, (bank_feats_NxD, bank_labels_N, query_feats_MxD))
  _validate(bank_feats_NxD, bank_labels_N, query_feats_MxD, num_classes=num_classes, k=k,
            temperature=temperature, chunk_size=chunk_size)
  if bank_valid_N is None:
    bank_valid_N = np.ones(bank_feats_NxD.shape[0], bool)
  bank_valid_N = np.asarray(bank_valid_N, bool)
  if bank_valid_N.shape != (bank_feats_NxD.shape[0],) or not k <= bank_valid_N.sum():
    raise ValueError(f"bank_valid_N must be a bool [N={bank_feats_NxD.shape[0]}] mask with at "
                     f"least k={k} valid rows; got shape {bank_valid_N.shape} with "
                     f"{int(bank_valid_N.sum())} valid.")
  bank_unit_NxD = _normalize_bank(bank_feats_NxD)
  bank_labels_N = _replicate_like(jnp.asarray(bank_labels_N).astype(jnp.int32), bank_unit_NxD)
  bank_valid_N = _replicate_like(jnp.asarray(bank_valid_N), bank_unit_NxD)
  temperature_ = jnp.float32(temperature)

  num_queries = query_feats_MxD.shape[0]
  # No point padding a small query set up to a large chunk.
  chunk_size = min(chunk_size, num_queries)
  predictions = []
  for start in range(0, num_queries, chunk_size):
    query_CxD = query_feats_MxD[start:start + chunk_size]
    num_valid = query_CxD.shape[0]
    if num_valid < chunk_size:
      # Padding the last chunk to full size reuses the compiled function; the padded rows'
      # predictions are dropped below.
      pad = ((0, chunk_size - num_valid), (0, 0))
      query_CxD = (np.pad(query_CxD, pad) if isinstance(query_CxD, np.ndarray)
                   else jnp.pad(query_CxD, pad))
    query_CxD = _replicate_like(query_CxD, bank_unit_NxD)
    predictions.append(_predict_chunk(bank_unit_NxD, bank_labels_N, bank_valid_N, query_CxD,
                                      temperature_, k=k, num_classes=num_classes)[:num_valid])
  return jnp.concatenate(predictions)


def knn_accuracy(bank_feats_NxD: ArrayLike, bank_labels_N: ArrayLike,
                 query_feats_MxD: ArrayLike, query_labels_M: ArrayLike, *, num_classes: int,
                 k: int = 20, temperature: float = 0.07, chunk_size: int = 1024) -> float:
  """Top-1 accuracy of `knn_predict` against `query_labels_M` ([M] ints in
  [0, num_classes)); the other arguments are those of `knn_predict`."""
  query_feats_MxD, query_labels_M = _as_array(query_feats_MxD), _as_array(query_labels_M)
  if query_feats_MxD.ndim != 2:
    raise ValueError(f"query_feats_MxD must be [M, D]; got shape {query_feats_MxD.shape}.")
  _check_labels("query_labels_M", query_labels_M, query_feats_MxD.shape[0], num_classes)
  predicted_M = knn_predict(bank_feats_NxD, bank_labels_N, query_feats_MxD,
                            num_classes=num_classes, k=k, temperature=temperature,
                            chunk_size=chunk_size)
  return float(np.mean(np.asarray(predicted_M) == np.asarray(query_labels_M)))
