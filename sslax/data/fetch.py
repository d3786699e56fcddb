"""A stored record as batches hold it: transformed (tokens, resampled audio), then numeric.

The one place the input path depends on the kind of data (see `record_transform`); the
readers (readers.py, host_views.py, train_batches.py) fetch every record through here.
"""
from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np

from sslax import errors
from sslax.data import sources
from sslax.data import tokenizers
from sslax.data import waveforms


def numeric(record: Mapping[str, Any]) -> dict[str, np.ndarray]:
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

  Text records are tokenised on fetch (`data.tokenizer`, see tokenizers.py for why not at
  build time), and audio records resampled and cut or padded to one length
  (`data.sample_rate`, `data.clip_seconds`, see waveforms.py).
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


def fetched(record: Mapping[str, Any], transform: tokenizers.RecordTransform | None,
            source: str) -> dict[str, np.ndarray]:
  """`record` transformed and made numeric; a ConfigError when text or audio is left raw
  because the config sets no tokenizer or sample rate."""
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
  return numeric(record)


def first_record(source: str, split: str, *, data_dir: str | None,
                 transform: tokenizers.RecordTransform | None = None,
                 bad_files: str = 'error') -> dict[str, np.ndarray]:
  """One record with the dtypes batches will have: what a method's init needs to see."""
  return fetched(sources.open_split(source, split, data_dir=data_dir, bad_files=bad_files)[0],
                 transform, source)
