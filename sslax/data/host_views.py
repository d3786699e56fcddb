"""Views cut on the host from images of varying size, read ahead by grain workers.

Images of varying size (folders stored encoded, tfds:imagenet2012) cannot be stacked, so
their batches carry views cut on the host instead (host_crops.py): grain worker processes
read and decode batch s, each crop a function of (seed, s, position in the global batch), so
resuming stays exact. Which views a method wants (`host_crops.CropSpec`s) is the caller's to
say (`methods.host_crops`): the data layer only cuts them.
"""
from collections.abc import Iterator, Mapping, Sequence
import os
from typing import Any

from absl import flags
import grain
import jax
import ml_collections
import numpy as np

from sslax import errors
from sslax.data import fetch
from sslax.data import host_crops
from sslax.data import sources


def host_channels(source: str, data_dir: str | None, bad_files: str = 'error') -> int:
  """Channels of a source whose images vary in size (so are cropped on the host); 0 for a
  source of fixed-size images or without images, which take the on-device path."""
  shape = sources.info(source, data_dir=data_dir, bad_files=bad_files).image_shape
  return int(shape[-1] or 3) if shape and None in shape[:2] else 0


def train_channels(config: ml_collections.ConfigDict,
                   crops: Sequence[host_crops.CropSpec] | None) -> int:
  """host_channels of the training source; for one cropped on the host, `crops` (the
  method's views, methods.host_crops) must be given."""
  d = config.data
  channels = host_channels(d.source, d.data_dir or None, d.get('bad_files', 'error'))
  if channels and not crops:
    # A caller's bug, not a user's: the trainer always passes the method's views.
    raise ValueError(f'{d.source!r} holds images of varying size, which are cut on the host: '
                     'pass crops=methods.host_crops(config).')
  return channels


def without_geometry(record: Mapping[str, Any]) -> dict[str, Any]:
  """The record less its encoded image and what only decoding needs (size, file name)."""
  return {k: v for k, v in record.items() if k not in ('image', 'height', 'width', 'file')}


def file_name(record: Mapping[str, Any], source: str) -> str:
  """The file a record came from, for error messages (image folders store it)."""
  name = record.get('file', b'')
  name = np.asarray(name).item() if isinstance(name, np.ndarray) else name   # TFDS Text
  name = name.decode() if isinstance(name, bytes) else str(name)
  root = sources.parse(source)[1].partition('{split}')[0].rstrip('/')
  return f'{root}/{name}' if name else f'a record of {source}'


class EvalView:
  """Record transform: a variable-size image → its uint8 evaluation view (picklable)."""

  def __init__(self, size: int, channels: int, source: str):
    self.size, self.channels, self.source = size, channels, source

  def __call__(self, record: Mapping[str, Any]) -> dict[str, Any]:
    try:
      view = host_crops.eval_view(record, self.size, self.channels)
    except ValueError as e:
      raise errors.DataError(f'{file_name(record, self.source)}: {e}') from None
    return {**without_geometry(record), 'image': view}


class HostViews:
  """grain map_with_index function: batch i of indices → a local batch of host-cut views.

  Batch i of the stream that starts at `start_step` is step start_step + i; row r of this
  process is global position row_offset + r, so every crop is a function of (seed, step,
  position): the same on any process or worker count, and after a resume.
  """

  def __init__(self, src: sources.RandomAccess, specs: Sequence[host_crops.CropSpec],
               channels: int, seed: int, start_step: int, row_offset: int, source: str,
               reduced: bool = True):
    self.src, self.specs, self.channels, self.seed = src, list(specs), channels, seed
    self.start_step, self.row_offset, self.source = start_step, row_offset, source
    self.reduced = reduced

  def __call__(self, i: int, idx: np.ndarray) -> dict[str, np.ndarray]:
    step = self.start_step + int(i)
    rows = []
    getitems = getattr(self.src, '__getitems__', None)   # None: TFDS mocks, one at a time
    records = getitems(list(map(int, idx))) if getitems else [self.src[int(j)] for j in idx]
    # Views go straight into the batch's arrays (stacking them would copy each twice more).
    views = {s.key: np.empty((len(records), s.count, s.size, s.size, self.channels), np.uint8)
             for s in self.specs}
    for r, record in enumerate(records):
      rng = host_crops.rng_for(self.seed, step, self.row_offset + r)
      try:
        host_crops.train_views(record, self.specs, self.channels, rng, self.reduced,
                               out={k: v[r] for k, v in views.items()})
      except ValueError as e:
        raise errors.DataError(f'{file_name(record, self.source)}: {e}') from None
      rows.append(fetch.numeric(without_geometry(record)))
    return {**{k: np.stack([row[k] for row in rows]) for k in rows[0]}, **views}


def read_threads(data_config: ml_collections.ConfigDict) -> int:
  """config.data.read_threads (threads per decoding process; >= 1, validate.py)."""
  return int(data_config.get('read_threads', 1))


def num_workers(data_config: ml_collections.ConfigDict) -> int:
  """config.data.num_workers, -1 meaning every core (0: decode in the training process)."""
  n = int(data_config.get('num_workers', -1))
  return (os.cpu_count() or 1) if n < 0 else n


def read_ahead(batches: grain.MapDataset, *, workers: int, prefetch: int,
               threads: int) -> grain.IterDataset:
  """`batches` read in order, ahead of use: by `workers` grain worker processes (0: this
  process), each with `threads` threads working on successive batches."""
  ds = batches.to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                                 prefetch_buffer_size=max(prefetch, threads)))
  if not workers:
    return ds
  # grain's worker pool reads its absl flags; a library caller (a notebook, a test) has
  # parsed none, so they are parsed here with their defaults.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS(['sslax'], known_only=True)
  return ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                     per_worker_buffer_size=prefetch))


def host_view_batches(src: sources.RandomAccess, views: HostViews, *, batch: int,
                      seed: int, start_step: int, workers: int, prefetch: int,
                      threads: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """This process's local batches of host-cut views, batch i being step start_step + i: the
  shuffled index stream of `train_batches.make_train`, read, decoded and cut by `workers`
  grain worker processes (0: in this process), each with `threads` threads working on
  successive batches (yielded in order: a batch is a pure function of its index). The
  benchmark (experiments/benchmarks/input_pipeline.py) times this iterator."""
  p, num_p = jax.process_index(), jax.process_count()
  # Only this process's batches are read: each host reads its own shard.
  ds = (grain.MapDataset.range(len(src))
        .shuffle(seed=seed)
        .repeat(None)
        .batch(batch)
        .slice(slice(start_step * num_p + p, None, num_p))
        .map_with_index(views))
  return iter(read_ahead(ds, workers=workers, prefetch=prefetch, threads=threads))
