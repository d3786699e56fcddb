"""Frozen features of a split, extracted batch by batch on the mesh into a sharded bank.

Each global eval batch (readers.eval_batches: every process feeds only its own rows) is
embedded under jit and written, in place (the buffer is donated), into a device-resident
buffer [B, num_batches, D] split over devices along its first axis, the way the embedding
already is. Read as [B * num_batches, D], row j * num_batches + i holds record i * B + j:
each device keeps the rows it embedded, so the bank is assembled with no transfer between
devices and nothing gathered to the host. Padding rows of the last batch stay in the bank,
marked invalid. Labels, an int per record, are kept on the host in bank order.

Splits whose features fit `config.eval.max_host_bytes` are then copied to host numpy in
record order (`Bank.to_host`) for the in-memory evaluators; larger ones stay on the devices
(kNN on the sharded bank, the mini-batch probe, k-means on device).

Shape suffixes: N = bank rows (records + padding), D = feature width, B = global batch.
"""
from collections.abc import Callable, Iterable, Iterator
import contextlib
import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from sslax import sharding
from sslax.data import readers


@dataclasses.dataclass
class Bank:
  """One split's features on the mesh. `feats_NxD` is a global array sharded over rows;
  `labels_N`, `valid_N` (False on padding rows) and `index_N` (the record each row holds)
  are host arrays in the same row order."""
  feats_NxD: jax.Array
  labels_N: np.ndarray
  valid_N: np.ndarray
  index_N: np.ndarray

  @property
  def num_examples(self) -> int:
    return int(self.valid_N.sum())

  @property
  def nbytes(self) -> int:
    """Host bytes of the features in record order (padding dropped)."""
    return self.num_examples * self.feats_NxD.shape[1] * self.feats_NxD.dtype.itemsize

  def rows_of(self, records: np.ndarray) -> np.ndarray:
    """Bank rows holding the given record indices."""
    row_of_record = np.empty(self.num_examples, np.int64)
    row_of_record[self.index_N[self.valid_N]] = np.flatnonzero(self.valid_N)
    return row_of_record[np.asarray(records)]

  def take(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features [k, D] float32, labels [k]) of the given record indices on the host: a
    few-label subset of a split too big for it (only the rows asked for are gathered)."""
    rows = self.rows_of(records)
    feats = readers.gather(_take_rows(self.feats_NxD, jnp.asarray(rows)))
    return np.asarray(feats, np.float32), self.labels_N[rows]

  def to_host(self) -> tuple[np.ndarray, np.ndarray]:
    """(features [n, D] float32, labels [n]) in record order, as one host copy on every
    process (an all-gather across processes: only for splits within the memory budget)."""
    rows = self.rows_of(np.arange(self.num_examples))
    feats = readers.gather(self.feats_NxD)
    return np.asarray(feats[rows], np.float32), self.labels_N[rows]


@jax.jit
def _take_rows(feats_NxD: jax.Array, rows_K: jax.Array) -> jax.Array:
  return jnp.take(feats_NxD, rows_K, axis=0)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _zeros(shape: tuple[int, ...], out_sharding: NamedSharding) -> jax.Array:
  """float32 zeros made where they will live (each device allocates only its rows)."""
  return jax.lax.with_sharding_constraint(jnp.zeros(shape, jnp.float32), out_sharding)


@functools.partial(jax.jit, donate_argnums=0)
def _write(buffer_BxTxD: jax.Array, feats_BxD: jax.Array, i: jax.Array) -> jax.Array:
  return jax.lax.dynamic_update_slice_in_dim(buffer_BxTxD, feats_BxD[:, None].astype(
      buffer_BxTxD.dtype), i, axis=1)


@functools.lru_cache(maxsize=8)   # one compilation per mesh, not per feature pass
def flatten(mesh: Mesh) -> Callable[[jax.Array], jax.Array]:
  """The jitted [B, T, D] -> [B * T, D] of a bank buffer (donated), rows split as batches."""
  rows = NamedSharding(mesh, P(*sharding.batch_sharding(mesh).spec, None))
  return jax.jit(lambda x: x.reshape(-1, x.shape[-1]), out_shardings=rows, donate_argnums=0)


def extract(embed_fn: Callable[..., jax.Array], params: Any, model_state: Any,
            batches: Iterable[dict[str, jax.Array]], *, num_examples: int, batch_size: int,
            mesh: Mesh) -> Bank:
  """Features of one pass over a split of `num_examples` records (readers.eval_batches of
  `batch_size`) as a Bank; `embed_fn` is the jitted embed (its output split like the batch)."""
  num_batches = -(-num_examples // batch_size)
  spec = sharding.batch_sharding(mesh).spec
  buffer_sharding = NamedSharding(mesh, P(*spec, None, None))
  buffer, labels = None, []
  for i, batch in enumerate(batches):
    feats_BxD = embed_fn(params, model_state, batch)
    if buffer is None:
      # The width is known after the first batch; zeros are made where they will live.
      buffer = _zeros((batch_size, num_batches, feats_BxD.shape[1]), buffer_sharding)
    buffer = _write(buffer, feats_BxD, jnp.int32(i))
    labels.append(readers.gather(batch['label']))   # B ints: small next to the features
  if buffer is None:
    raise ValueError('extract: the split has no batches.')
  # [B, T, D] -> [B * T, D] merges a split axis with a local one: each device's rows stay put.
  feats_NxD = flatten(mesh)(buffer)
  # Bank row j * T + i holds record i * B + j (batch i, row j of the global batch).
  index_N = (np.arange(num_batches)[None, :] * batch_size
             + np.arange(batch_size)[:, None]).reshape(-1)
  labels_TxB = np.stack(labels)
  return Bank(feats_NxD, labels_TxB.T.reshape(-1), index_N < num_examples, index_N)


def from_host(feats_NxD: np.ndarray, labels_N: np.ndarray, mesh: Mesh) -> Bank:
  """Host features as a Bank (when the other split of a source streams), padded with invalid
  rows to a multiple of the mesh's devices and split over them."""
  n = len(feats_NxD)
  size = -(-n // mesh.size) * mesh.size
  padded = np.zeros((size, feats_NxD.shape[1]), np.float32)
  padded[:n] = feats_NxD
  labels = np.concatenate([labels_N, np.full(size - n, labels_N[0], labels_N.dtype)])
  index = np.arange(size)
  return Bank(jax.device_put(padded, sharding.batch_sharding(mesh)), labels, index < n, index)


def masked_stats(x_NxD: jax.Array, weight_N: jax.Array, min_std: float
                 ) -> tuple[jax.Array, jax.Array]:
  """Per-feature mean and standard deviation (floored at `min_std`) of the rows with weight
  1, computed where the rows live (a reduction over the sharded bank, not a host copy)."""
  return _masked_stats(x_NxD, weight_N.astype(jnp.float32), jnp.float32(min_std))


@jax.jit
def _masked_stats(x_NxD, weight_N, min_std):
  count = jnp.sum(weight_N)
  mean_D = jnp.einsum('n,nd->d', weight_N, x_NxD, precision=jax.lax.Precision.HIGHEST) / count
  var_D = jnp.einsum('n,nd->d', weight_N, jnp.square(x_NxD - mean_D),
                     precision=jax.lax.Precision.HIGHEST) / count
  return mean_D, jnp.maximum(jnp.sqrt(var_D), min_std)


def replicated(x: Any, mesh: Mesh) -> jax.Array:
  """A host array on every device of `mesh` (labels, masks: a few bytes per row)."""
  return jax.device_put(np.asarray(x), NamedSharding(mesh, P()))


@contextlib.contextmanager
def frozen(encoder: Any, what: str) -> Iterator[None]:
  """Asserts that the block leaves `encoder` (params and model state) as it found it.

  JAX arrays cannot change in place, so the ways to change an encoder are to put a new array
  into one of its (mutable) containers, or to donate an array to a jitted call, which deletes
  it; both show in the leaves' identities, checked without copying anything (a checksum of
  every parameter cost two host copies per evaluation and could not fail for JAX arrays).
  NumPy leaves can change in place: they are read-only for the block, so a write raises there.
  """
  leaves, treedef = jax.tree.flatten(encoder)
  writable = [x for x in leaves if isinstance(x, np.ndarray) and x.flags.writeable]
  for x in writable:
    x.flags.writeable = False
  try:
    yield
  finally:
    for x in writable:
      x.flags.writeable = True
  after, after_treedef = jax.tree.flatten(encoder)
  if (after_treedef != treedef or any(a is not b for a, b in zip(after, leaves))
      or any(isinstance(x, jax.Array) and x.is_deleted() for x in leaves)):
    raise AssertionError(f'The encoder changed during {what}, a frozen evaluation: feature '
                         'extraction and probes must not train, replace or donate its arrays.')
