"""Training batches: source records -> per-process rows -> global jax.Array batches.

Training order is a pure function of (seed, step): grain shuffles record
indices per epoch, and global batch s is records [s*B, (s+1)*B) of that
stream, process p taking rows [p*B/P, (p+1)*B/P) (with data.pack_sequences=k,
records [s*B*k, (s+1)*B*k), k per row). Resuming at step s is
therefore exact with no iterator state beyond the step itself, on any
process count. Variable-size images take the host path (host_views.py).
"""
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grain
import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np

from sslax import sharding
from sslax.data import fetch
from sslax.data import host_crops
from sslax.data import host_views
from sslax.data import packing
from sslax.data import readers
from sslax.data import sources
from sslax.data import waveforms


def first_train_record(config: ml_collections.ConfigDict,
                       crops: Sequence[host_crops.CropSpec] | None = None
                       ) -> dict[str, np.ndarray]:
  """One training record as batches hold it: for variable-size images, the host-cut views
  `crops` asks for (the method's, methods.host_crops; needed only for such sources)."""
  d = config.data
  channels = host_views.train_channels(config, crops)
  if not channels:
    return fetch.first_record(d.source, d.train_split, data_dir=d.data_dir or None,
                              transform=fetch.record_transform(d),
                              bad_files=d.get('bad_files', 'error'))
  src = sources.open_split(d.source, d.train_split, data_dir=d.data_dir or None,
                           bad_files=d.get('bad_files', 'error'))
  views = host_views.HostViews(src, crops, channels, config.seed, 0, 0, d.source)
  batch = views(0, np.zeros(1, np.int64))
  return {k: v[0] for k, v in batch.items()}


def encoder_inputs(sample: Mapping[str, Any],
                   crops: Sequence[host_crops.CropSpec] | None) -> dict:
  """The batch an encoder's `embed` reads, from the training batch `sample`: with `crops`
  (views cut on the host), the views ([B, V, S, S, C], DINO's `image_local`) become one eval
  view [B, S, S, C], as evaluation and sslax.load hand it over (what input_spec.json
  records); without, `sample` as it is."""
  if not crops:
    return dict(sample)
  out = {k: v for k, v in sample.items() if k not in ('image', 'image_local')}
  image = sample['image']
  out['image'] = jax.ShapeDtypeStruct((image.shape[0], *image.shape[2:]), image.dtype)
  return out


def make_train(config: ml_collections.ConfigDict, mesh: Mesh, *,
               crops: Sequence[host_crops.CropSpec] | None = None,
               start_step: int = 0) -> Iterator[dict[str, jax.Array]]:
  """Endless global training batches, starting at `start_step`. Variable-size images are
  cut on the host into the views `crops` asks for (the method's, methods.host_crops: the
  caller's to give, since which views a method wants is not the data layer's to know)."""
  d = config.data
  channels = host_views.train_channels(config, crops)
  if channels:
    yield from _host_cropped_train(config, mesh, start_step, channels, crops)
    return
  records = readers.Records(d.source, d.train_split, data_dir=d.data_dir or None,
                            in_memory=d.in_memory, transform=fetch.record_transform(d),
                            bad_files=d.get('bad_files', 'error'),
                            short_clips=waveforms.short_clip_policy(config),
                            sample_rate=int(d.get('sample_rate', 0)))
  b = readers.local_batch_size(config.batch_size)
  k = packing.check_pack(d)
  p, num_p = jax.process_index(), jax.process_count()
  index_batches = (grain.MapDataset.range(len(records))
                   .shuffle(seed=config.seed)
                   .repeat(None)
                   .batch(b * k)
                   .slice(slice(start_step * num_p + p, None, num_p)))
  take = records.take if k == 1 else lambda idx: packing.pack_tokens(records.take(idx), k)
  it = (index_batches.map(take)
        .to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=d.prefetch)))
  for local in it:
    yield sharding.to_global(local, mesh)


def _host_cropped_train(config: ml_collections.ConfigDict, mesh: Mesh, start_step: int,
                        channels: int, crops: Sequence[host_crops.CropSpec]
                        ) -> Iterator[dict[str, jax.Array]]:
  """make_train for variable-size images: batches of indices are read, decoded and cut into
  fixed-size views by `host_views.num_workers(config.data)` grain worker processes
  (host_crops.py)."""
  d = config.data
  src = sources.open_split(d.source, d.train_split, data_dir=d.data_dir or None,
                           bad_files=d.get('bad_files', 'error'))
  b = readers.local_batch_size(config.batch_size)
  views = host_views.HostViews(src, crops, channels, config.seed, start_step,
                               jax.process_index() * b, d.source)
  for local in host_views.host_view_batches(src, views, batch=b, seed=config.seed,
                                            start_step=start_step,
                                            workers=host_views.num_workers(d),
                                            prefetch=d.prefetch,
                                            threads=host_views.read_threads(d)):
    yield sharding.to_global(local, mesh)
