"""`tfds:NAME[/CONFIG][:VERSION]` sources: TFDS catalog data sets, read without TensorFlow.

What a catalog data set needs beyond a local build (sources.py): its name checked against
the catalog, download and preparation as array_record, catalog audio made to look like an
audio folder's records, and variable-size images left encoded for the host crops.
"""
from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.features import audio_feature

from sslax import errors
from sslax.data import waveforms


class _NoTensorFlow:
  """The one piece of TensorFlow that TFDS's `Audio` feature touches when it is built.

  `tfds.features.Audio.__init__` (TFDS 4.9) converts its numpy dtype with
  `tf.dtypes.as_dtype` for a decoder that only the lazily decoded (FLAC/MP3 bytes) form uses;
  catalog audio such as speech_commands stores decoded integer samples, which numpy reads.
  Without this, merely naming such a data set needs TensorFlow. Anything else asked of it
  says TensorFlow is needed.
  """

  class dtypes:  # pylint: disable=invalid-name
    as_dtype = staticmethod(np.dtype)

  def __getattr__(self, name: str):
    raise ImportError(f'tensorflow.{name} is needed by this TFDS audio feature (lazily decoded '
                      'audio); install tensorflow, or use a data set that stores samples.')


if importlib.util.find_spec('tensorflow') is None:
  audio_feature.tf = _NoTensorFlow()


def name_of(spec: str) -> str:
  """The catalog name of `NAME[/CONFIG][:VERSION]`."""
  return spec.split('/')[0].split(':')[0]


def known(spec: str) -> bool:
  """Whether the data set `NAME[/CONFIG][:VERSION]` names is in the TFDS catalog."""
  try:
    tfds.builder_cls(name_of(spec))
  except tfds.core.registered.DatasetNotFoundError:
    return False
  return True


def prepare(spec: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """A builder of `spec`, downloaded and prepared as array_record once: what
  tfds.data_source does, split in two so that the split can be checked before reading."""
  builder = tfds.builder(spec, data_dir=data_dir)
  builder.download_and_prepare(file_format='array_record')
  return builder


# Catalog names for the waveform feature: most use 'audio'; LibriSpeech calls it 'speech'.
AUDIO_FEATURES = ('audio', 'speech')


def _audio_feature(features: Any) -> str | None:
  return next((k for k in AUDIO_FEATURES if k in features), None)


def audio_record(example: dict[str, Any], rate: int) -> dict[str, Any]:
  """A catalog audio record as an audio folder's: float32 mono `audio` in [-1, 1] plus its
  `sample_rate`, so `waveforms.record_transform` resamples and cuts both alike."""
  example = dict(example)
  example['audio'] = waveforms.to_float_mono(example.pop(_audio_feature(example)))
  if 'text' in example:
    # A transcript (LibriSpeech) is a label of the clip, not text for a tokenizer to embed.
    example['transcript'] = example.pop('text')
  example['sample_rate'] = np.int32(rate)
  return example


def audio_rate(source: str, builder: tfds.core.DatasetBuilder) -> int | None:
  """The sample rate of a catalog data set's `audio` feature; None when it has none."""
  features = builder.info.features
  key = _audio_feature(features)
  feature = features[key] if key else None
  if not isinstance(feature, tfds.features.Audio):
    return None
  if not feature.sample_rate:
    raise errors.DataError(f'{source!r}: its audio feature records no sample rate, so it cannot be '
                           'resampled to config.data.sample_rate; use a data set that records one '
                           'or a folder: of WAV files.')
  return int(feature.sample_rate)


def decoders(builder: tfds.core.DatasetBuilder) -> dict | None:
  """TFDS decoders for `as_data_source`: a catalog `Image` of variable size stays encoded.

  Such images are cut on the host (data/host_crops.py), which decodes a JPEG at the reduced
  DCT scale its crops need; TFDS would decode every record at full size first (OpenCV or
  Pillow). One 224² view of a 640x480 JPEG: 3.2 ms of CPU from TFDS's full decode, 1.3 ms
  from the bytes (BCCD, medians of 8 rounds). TFDS's `mock_data` cannot serve decoders
  without TensorFlow, so tests that mock a variable-size catalog set patch this to None.
  """
  features = builder.info.features
  feature = features['image'] if features and 'image' in features else None
  if isinstance(feature, tfds.features.Image) and None in feature.shape[:2]:
    return {'image': tfds.decode.SkipDecoding()}
  return None
