"""Reading a split: random access to its records, and one padded pass in order (evaluation).

`Records` serves training (train_batches.make_train reads batches of its indices) and the
evaluators; `eval_batches` is every evaluator's pass over a split, each process reading only
its own rows; `gather` brings a global result back to every host.
"""
from collections.abc import Iterator
import logging
import os

import grain
import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh
import numpy as np

from sslax import errors
from sslax import sharding
from sslax.data import fetch
from sslax.data import host_views
from sslax.data import sources
from sslax.data import tokenizers
from sslax.data import waveforms


def spread(n: int, max_examples: int) -> np.ndarray:
  """Indices of at most `max_examples` of n records, evenly spaced (all when 0 or n fewer).

  Evenly spaced rather than the first N (which a split slice such as 'test[:128]' gives):
  audio folders and text files are stored class by class, so the first N would hold one
  class; a spread keeps every class in proportion.
  """
  if not max_examples or n <= max_examples:
    return np.arange(n)
  return np.linspace(0, n - 1, max_examples).round().astype(np.int64)


# Records read at once when only their labels are wanted (bounds the raw bytes in memory).
_LABEL_CHUNK = 1024


class Records:
  """Random access to a split, optionally decoded once into memory.

  In memory, a batch is one fancy-index per feature instead of B record reads
  (STACK.md: far faster for small data sets). `transform` (see `fetch.record_transform`)
  maps each stored record before stacking, e.g. text → tokens.
  """

  def __init__(self, source: str, split: str, *, data_dir: str | None, in_memory: bool,
               transform: tokenizers.RecordTransform | None = None, bad_files: str = 'error',
               short_clips: tuple[str, int] = ('pad', 0), sample_rate: int = 0,
               max_examples: int = 0, image_size: int = 0):
    """`short_clips` = (config.data.short_clips, fewest real samples at `sample_rate`),
    see `waveforms.short_clip_policy`: audio clips with fewer are zero-padded ('pad'), stop
    the run naming the first ('error'), or are left out and counted ('skip').
    `max_examples` > 0 keeps at most that many records, evenly spaced over the split.

    `image_size` > 0: images of a variable-size source become their evaluation view on read
    (shorter side resized to image_size, centre square; host_crops.eval_view)."""
    self._src = sources.open_split(source, split, data_dir=data_dir, bad_files=bad_files)
    self._source = source
    channels = host_views.host_channels(source, data_dir, bad_files)
    if image_size and channels:
      transform = _then(host_views.EvalView(image_size, channels, source), transform)
    self._transform = transform
    self._arrays = self._labels = None
    self._keep = None   # indices of the records kept, when short clips are skipped
    policy, min_samples = short_clips
    if policy != 'pad' and min_samples:
      self._keep = self._long_enough(split, policy, min_samples, sample_rate)
    if max_examples and len(self) > max_examples:
      picked = spread(len(self), max_examples)
      self._keep = picked if self._keep is None else self._keep[picked]
    if in_memory:
      self.load()

  @property
  def in_memory(self) -> bool:
    return self._arrays is not None

  def load(self) -> None:
    """Decodes every kept record into host memory (one array per feature)."""
    if self._arrays is None:
      self._arrays = self.take(np.arange(len(self)))
      self._src = self._keep = None

  def labels(self) -> np.ndarray:
    """Every kept record's label, read without decoding or transforming the rest of the
    record (a streamed split's fine-tune needs them all up front, its images per batch)."""
    if self._arrays is not None:
      return self._arrays['label']
    if self._labels is None:
      idx = np.arange(len(self._src)) if self._keep is None else self._keep
      getitems = getattr(self._src, '__getitems__', None)
      chunks = []
      for start in range(0, len(idx), _LABEL_CHUNK):
        part = list(map(int, idx[start:start + _LABEL_CHUNK]))
        records = getitems(part) if getitems else [self._src[i] for i in part]
        chunks.append(np.stack([fetch.numeric({'label': r['label']})['label'] for r in records]))
      self._labels = np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
    return self._labels

  def estimated_bytes(self) -> int:
    """Host bytes the split would take in memory: its first record's arrays times its
    length (records of one split share their shapes once transformed)."""
    if self._arrays is not None:
      return sum(v.nbytes for v in self._arrays.values())
    if not len(self):
      return 0
    return len(self) * sum(v.nbytes for v in self.take(np.zeros(1, np.int64)).values())

  def _long_enough(self, split: str, policy: str, min_samples: int,
                   rate: int) -> np.ndarray | None:
    """Indices of the audio records with at least `min_samples` at `rate`; raises on 'error'."""
    short = []
    for i in range(len(self._src)):
      record = self._src[i]
      if 'audio' not in record or 'sample_rate' not in record:
        return None   # not audio: nothing to check
      n = waveforms.real_samples(record, rate)
      if n < min_samples:
        short.append((i, n, record))
    if not short:
      return None
    i, n, record = short[0]
    name = f'{self._source} {split}[{i}]'   # catalog data: the record's index
    if 'file' in record:   # audio folders store each file's path under the folder
      rel = np.asarray(record['file']).item()
      rel = rel.decode() if isinstance(rel, bytes) else str(rel)
      name = os.path.join(sources.parse(self._source)[1], rel)
    if policy == 'error':
      raise errors.DataError(
          f'{name}: {n} samples at config.data.sample_rate={rate} is shorter than the '
          f'{min_samples} the training loss needs (config.data.short_clips=\'error\'); '
          f'{len(short)} of {len(self._src)} clips of split {split!r} are this short. Fix: '
          "remove them, set config.data.short_clips='skip' to leave them out (counted in "
          "the log), or 'pad' to zero-pad and mask them.")
    logging.warning('sslax: skipped %d of %d clips of %s %s shorter than %d samples at %d Hz '
                    "(config.data.short_clips='skip'); first: %s", len(short), len(self._src),
                    self._source, split, min_samples, rate, name)
    dropped = {s[0] for s in short}
    return np.array([i for i in range(len(self._src)) if i not in dropped], np.int64)

  def __len__(self) -> int:
    if self._arrays is not None:
      return len(next(iter(self._arrays.values())))
    return len(self._src) if self._keep is None else len(self._keep)

  def take(self, idx: np.ndarray) -> dict[str, np.ndarray]:
    if self._arrays is not None:
      return {k: v[idx] for k, v in self._arrays.items()}
    if self._keep is not None:
      idx = self._keep[np.asarray(idx)]
    getitems = getattr(self._src, '__getitems__', None)
    records = getitems(list(map(int, idx))) if getitems else [self._src[int(i)] for i in idx]
    records = [fetch.fetched(r, self._transform, self._source) for r in records]
    return {k: np.stack([r[k] for r in records]) for k in records[0]}


def _then(first, second):
  if second is None:
    return first
  return lambda record: second(first(record))


def local_batch_size(global_batch: int) -> int:
  if global_batch % jax.process_count():
    raise errors.ConfigError(f'config.batch_size={global_batch} must be divisible by the '
                             f'{jax.process_count()} processes.')
  return global_batch // jax.process_count()


class EvalRead:
  """grain map function (picklable): eval batch i -> this process's rows of it, the padding
  rows past the split's end repeating record 0 and marked by `mask`."""

  def __init__(self, records: Records, batch_size: int):
    self.records, self.batch_size = records, batch_size
    self.local, self.process = local_batch_size(batch_size), jax.process_index()

  def __call__(self, i: int) -> dict[str, np.ndarray]:
    idx = int(i) * self.batch_size + self.process * self.local + np.arange(self.local)
    mask = idx < len(self.records)
    local = self.records.take(np.where(mask, idx, 0))
    local['mask'] = mask
    return local


def eval_batches(records: Records, *, batch_size: int, mesh: Mesh, workers: int = 0,
                 prefetch: int = 2, threads: int = 1) -> Iterator[dict[str, jax.Array]]:
  """One pass over a split in order; the last batch is padded, `mask` marks real rows. Each
  process reads only its own rows. `workers` > 0: grain worker processes read and decode
  the batches ahead (streamed variable-size images: their eval views are cut per batch),
  with `threads` threads each (host_views.read_ahead)."""
  read = EvalRead(records, batch_size)
  num_batches = -(-len(records) // batch_size)
  if not workers and threads == 1:
    for i in range(num_batches):
      yield sharding.to_global(read(i), mesh)
    return
  ds = host_views.read_ahead(grain.MapDataset.range(num_batches).map(read), workers=workers,
                             prefetch=prefetch, threads=threads)
  for local in ds:
    yield sharding.to_global(local, mesh)


def gather(x: jax.Array) -> np.ndarray:
  """A global array as one host numpy array on every process."""
  if jax.process_count() == 1:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))
