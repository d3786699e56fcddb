"""Input pipeline: source records -> per-process rows -> global jax.Array batches.

Training order is a pure function of (seed, step): grain shuffles record
indices per epoch, and global batch s is records [s*B, (s+1)*B) of that
stream, process p taking rows [p*B/P, (p+1)*B/P) (with data.pack_sequences=k,
records [s*B*k, (s+1)*B*k), k per row). Resuming at step s is
therefore exact with no iterator state beyond the step itself, on any
process count.

Images of varying size (folders stored encoded, tfds:imagenet2012) cannot be
stacked, so their batches carry views cut on the host instead (`HostViews`,
host_crops.py): grain worker processes read and decode batch s, each crop a
function of (seed, s, position in the global batch), so resuming stays exact.
"""
from collections.abc import Iterator, Mapping
import logging
import os
from typing import Any

from absl import flags
import grain
import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh
import ml_collections
import numpy as np

from sslax import errors
from sslax import sharding
from sslax.data import host_crops
from sslax.data import sources
from sslax.data import tokenizers
from sslax.data import waveforms


def _numeric(record: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Keeps array-valued features, narrowed to the dtypes JAX uses by default."""
  out = {}
  for k, v in record.items():
    v = np.asarray(v)
    if v.dtype.kind not in 'iufb':
      continue
    if v.dtype == np.int64:
      v = v.astype(np.int32)
    elif v.dtype == np.float64:
      v = v.astype(np.float32)
    out[k] = v
  return out


def record_transform(data_config: ml_collections.ConfigDict) -> tokenizers.RecordTransform | None:
  """What turns a stored record into model inputs, from config; None: as is.

  The one place the pipeline depends on the kind of data: text records are tokenised on
  fetch (`data.tokenizer`, see tokenizers.py for why not at build time), and audio records
  resampled and cut or padded to one length (`data.sample_rate`, `data.clip_seconds`, see
  waveforms.py).
  """
  steps = [tokenizers.record_transform(data_config)]
  if data_config.get('sample_rate', 0):
    audio = waveforms.record_transform(data_config)
    steps.append(lambda r: audio(r) if 'audio' in r else dict(r))
  steps = [s for s in steps if s is not None]
  if len(steps) <= 1:
    return steps[0] if steps else None

  def transform(record):
    for step in steps:
      record = step(record)
    return record
  return transform


def _fetched(record: Mapping[str, Any], transform, source: str) -> dict[str, np.ndarray]:
  if transform is not None:
    record = transform(record)
  if 'text' in record:
    raise errors.ConfigError(
        f'{source!r} holds text, but config.data.tokenizer is not set; set '
        f"--config.data.tokenizer={tokenizers.TOKENIZERS[0]} (and data.seq_len).")
  if 'sample_rate' in record:
    raise errors.ConfigError(
        f'{source!r} holds audio, but config.data.sample_rate is not set; set '
        '--config.data.sample_rate (e.g. 8000) and --config.data.clip_seconds.')
  return _numeric(record)


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
  (STACK.md: far faster for small data sets). `transform` (see `record_transform`)
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
    channels = host_channels(source, data_dir, bad_files)
    if image_size and channels:
      transform = _then(EvalView(image_size, channels, source), transform)
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
        chunks.append(np.stack([_numeric({'label': r['label']})['label'] for r in records]))
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
    records = [_fetched(r, self._transform, self._source) for r in records]
    return {k: np.stack([r[k] for r in records]) for k in records[0]}


def host_channels(source: str, data_dir: str | None, bad_files: str = 'error') -> int:
  """Channels of a source whose images vary in size (so are cropped on the host); 0 for a
  source of fixed-size images or without images, which take the on-device path."""
  shape = sources.info(source, data_dir=data_dir, bad_files=bad_files).image_shape
  return int(shape[-1] or 3) if shape and None in shape[:2] else 0


def _then(first, second):
  if second is None:
    return first
  return lambda record: second(first(record))


def _without_geometry(record: Mapping[str, Any]) -> dict[str, Any]:
  """The record less its encoded image and what only decoding needs (size, file name)."""
  return {k: v for k, v in record.items() if k not in ('image', 'height', 'width', 'file')}


def _name(record: Mapping[str, Any], source: str) -> str:
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
      raise errors.DataError(f'{_name(record, self.source)}: {e}') from None
    return {**_without_geometry(record), 'image': view}


class HostViews:
  """grain map_with_index function: batch i of indices → a local batch of host-cut views.

  Batch i of the stream that starts at `start_step` is step start_step + i; row r of this
  process is global position row_offset + r, so every crop is a function of (seed, step,
  position): the same on any process or worker count, and after a resume.
  """

  def __init__(self, src: sources.RandomAccess, specs: list, channels: int, seed: int,
               start_step: int, row_offset: int, source: str, reduced: bool = True):
    self.src, self.specs, self.channels, self.seed = src, specs, channels, seed
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
        raise errors.DataError(f'{_name(record, self.source)}: {e}') from None
      rows.append(_numeric(_without_geometry(record)))
    return {**{k: np.stack([row[k] for row in rows]) for k in rows[0]}, **views}


def read_threads(data_config: ml_collections.ConfigDict) -> int:
  """config.data.read_threads (threads per decoding process; >= 1, validate.py)."""
  return int(data_config.get('read_threads', 1))


def num_workers(data_config: ml_collections.ConfigDict) -> int:
  """config.data.num_workers, -1 meaning every core (0: decode in the training process)."""
  n = int(data_config.get('num_workers', -1))
  return (os.cpu_count() or 1) if n < 0 else n


def _host_crop_setup(config: ml_collections.ConfigDict):
  """(channels, crop specs) for a variable-size image source; (0, None) otherwise."""
  from sslax import methods   # pylint: disable=import-outside-toplevel
  d = config.data
  channels = host_channels(d.source, d.data_dir or None, d.get('bad_files', 'error'))
  return (channels, methods.host_crops(config)) if channels else (0, None)


def first_train_record(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """One training record as batches hold it: host-cut views for variable-size images."""
  d = config.data
  channels, specs = _host_crop_setup(config)
  if not channels:
    return first_record(d.source, d.train_split, data_dir=d.data_dir or None,
                        transform=record_transform(d), bad_files=d.get('bad_files', 'error'))
  src = sources.open_split(d.source, d.train_split, data_dir=d.data_dir or None,
                           bad_files=d.get('bad_files', 'error'))
  batch = HostViews(src, specs, channels, config.seed, 0, 0, d.source)(0, np.zeros(1, np.int64))
  return {k: v[0] for k, v in batch.items()}


def encoder_inputs(config: ml_collections.ConfigDict, sample: Mapping[str, Any]) -> dict:
  """The batch an encoder's `embed` reads, from the training batch `sample`: host-cut views
  ([B, V, S, S, C], DINO's `image_local`) become one eval view [B, S, S, C], as evaluation and
  sslax.load hand it over (what input_spec.json records)."""
  if not _host_crop_setup(config)[0]:
    return dict(sample)
  out = {k: v for k, v in sample.items() if k not in ('image', 'image_local')}
  image = sample['image']
  out['image'] = jax.ShapeDtypeStruct((image.shape[0], *image.shape[2:]), image.dtype)
  return out


def first_record(source: str, split: str, *, data_dir: str | None,
                 transform: tokenizers.RecordTransform | None = None,
                 bad_files: str = 'error') -> dict[str, np.ndarray]:
  """One record with the dtypes batches will have: what a method's init needs to see."""
  return _fetched(sources.open_split(source, split, data_dir=data_dir, bad_files=bad_files)[0],
                  transform, source)


def pack_tokens(batch: Mapping[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
  """Rows of k consecutive records' tokens, PAD dropped, joined by SEP and cut to the length.

  Short records (SST-2's phrases: 16 of 64 tokens on average) otherwise leave most of each
  row PAD, which the model still computes; RoBERTa's FULL-SENTENCES packing (Liu et al.
  2019) fills rows across sentence boundaries instead. Only `tokens` is kept: a label or other
  per-record feature does not describe a packed row.
  """
  tokens_NxL = np.asarray(batch['tokens'])
  n, length = tokens_NxL.shape
  out_BxL = np.full((n // k, length), tokenizers.ByteTokenizer.PAD, tokens_NxL.dtype)
  sep = np.array([tokenizers.ByteTokenizer.SEP], tokens_NxL.dtype)
  for r in range(n // k):
    rows = [row[row != tokenizers.ByteTokenizer.PAD] for row in tokens_NxL[r * k:(r + 1) * k]]
    joined = np.concatenate([piece for row in rows for piece in (row, sep)][:-1])[:length]
    out_BxL[r, :len(joined)] = joined
  return {'tokens': out_BxL}


def check_pack(data_config: ml_collections.ConfigDict) -> int:
  """`config.data.pack_sequences` (records per training row), checked."""
  k = data_config.get('pack_sequences', 1)
  if not isinstance(k, int) or k < 1:
    raise errors.ConfigError(
        f'config.data.pack_sequences={k!r} must be an integer >= 1 (1: one '
        'record per row; k: k records\' tokens packed into each training row).')
  if k > 1 and not data_config.get('tokenizer', ''):
    raise errors.ConfigError(f'config.data.pack_sequences={k} packs token rows, but '
                             'config.data.tokenizer is not set; set 1, or use a text:/tsv: source '
                             'with a tokenizer.')
  return k


def local_batch_size(global_batch: int) -> int:
  if global_batch % jax.process_count():
    raise errors.ConfigError(f'config.batch_size={global_batch} must be divisible by the '
                             f'{jax.process_count()} processes.')
  return global_batch // jax.process_count()


def make_train(config: ml_collections.ConfigDict, mesh: Mesh, *,
               start_step: int = 0) -> Iterator[dict[str, jax.Array]]:
  """Endless global training batches, starting at `start_step`."""
  d = config.data
  channels, specs = _host_crop_setup(config)
  if channels:
    yield from _host_cropped_train(config, mesh, start_step, channels, specs)
    return
  records = Records(d.source, d.train_split, data_dir=d.data_dir or None, in_memory=d.in_memory,
                    transform=record_transform(d), bad_files=d.get('bad_files', 'error'),
                    short_clips=waveforms.short_clip_policy(config),
                    sample_rate=int(d.get('sample_rate', 0)))
  b = local_batch_size(config.batch_size)
  k = check_pack(d)
  p, num_p = jax.process_index(), jax.process_count()
  index_batches = (grain.MapDataset.range(len(records))
                   .shuffle(seed=config.seed)
                   .repeat(None)
                   .batch(b * k)
                   .slice(slice(start_step * num_p + p, None, num_p)))
  take = records.take if k == 1 else lambda idx: pack_tokens(records.take(idx), k)
  it = (index_batches.map(take)
        .to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=d.prefetch)))
  for local in it:
    yield sharding.to_global(local, mesh)


def host_view_batches(src: sources.RandomAccess, views: HostViews, *, batch: int,
                      seed: int, start_step: int, workers: int, prefetch: int,
                      threads: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """This process's local batches of host-cut views, batch i being step start_step + i: the
  shuffled index stream of `make_train`, read, decoded and cut by `workers` grain worker
  processes (0: in this process), each with `threads` threads working on successive
  batches (yielded in order: a batch is a pure function of its index). The benchmark
  (experiments/benchmarks/input_pipeline.py) times this iterator."""
  p, num_p = jax.process_index(), jax.process_count()
  # Only this process's batches are read: each host reads its own shard.
  ds = (grain.MapDataset.range(len(src))
        .shuffle(seed=seed)
        .repeat(None)
        .batch(batch)
        .slice(slice(start_step * num_p + p, None, num_p))
        .map_with_index(views)
        .to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                           prefetch_buffer_size=max(prefetch, threads))))
  if workers:
    # grain's worker pool reads its absl flags; a library caller (a notebook, a test) has
    # parsed none, so they are parsed here with their defaults.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS(['sslax'], known_only=True)
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                     per_worker_buffer_size=prefetch))
  return iter(ds)


def _host_cropped_train(config: ml_collections.ConfigDict, mesh: Mesh, start_step: int,
                        channels: int, specs: list) -> Iterator[dict[str, jax.Array]]:
  """make_train for variable-size images: batches of indices are read, decoded and cut into
  fixed-size views by `num_workers(config.data)` grain worker processes (host_crops.py)."""
  d = config.data
  src = sources.open_split(d.source, d.train_split, data_dir=d.data_dir or None,
                           bad_files=d.get('bad_files', 'error'))
  b = local_batch_size(config.batch_size)
  views = HostViews(src, specs, channels, config.seed, start_step, jax.process_index() * b,
                    d.source)
  for local in host_view_batches(src, views, batch=b, seed=config.seed, start_step=start_step,
                                 workers=num_workers(d), prefetch=d.prefetch,
                                 threads=read_threads(d)):
    yield sharding.to_global(local, mesh)


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
  with `threads` threads each (as host_view_batches)."""
  read = EvalRead(records, batch_size)
  num_batches = -(-len(records) // batch_size)
  if not workers and threads == 1:
    for i in range(num_batches):
      yield sharding.to_global(read(i), mesh)
    return
  ds = (grain.MapDataset.range(num_batches).map(read)
        .to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                           prefetch_buffer_size=max(prefetch, threads))))
  if workers:
    if not flags.FLAGS.is_parsed():   # as in host_view_batches: grain's pool reads its flags
      flags.FLAGS(['sslax'], known_only=True)
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                     per_worker_buffer_size=prefetch))
  for local in ds:
    yield sharding.to_global(local, mesh)


def gather(x: jax.Array) -> np.ndarray:
  """A global array as one host numpy array on every process."""
  if jax.process_count() == 1:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))
