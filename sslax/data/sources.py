"""What a config's `data.source` / `eval.source` names, and random access to its splits.

Forms (see `FORMS`):
  builtin:digits        scikit-learn's bundled handwritten digits (no network, real data)
  npz:PATH              .npz with `images` (+ `labels`); PATH may hold `{split}`
  folder:DIR            image folder DIR/<split>/<class>/*.{jpg,jpeg,png} (any sizes), unlabelled
                        DIR/<split>/*.jpg or DIR/{split}/images/*.png, or audio folder
                        DIR/<split>/<class>/*.wav (told apart by the files it holds)
  text:PATH             UTF-8 text: a file, a folder of .txt files, or a glob (DIR/*.py)
  tsv:PATH              `sentence<TAB>label` files: one file, a {split} path, or a folder
  squad:PATH            SQuAD v1.1 JSON (one file, a {split} path, or a folder of
                        <split>.json): context paragraphs as text; questions for `qa`
  asr:DIR               speech: DIR/<split>.tsv (header path<TAB>text) + WAVs; audio as an
                        audio folder's, transcripts for `asr`
  coco:DIR              detection: DIR/<split>.json (COCO format) + images in DIR/<split>/
                        (builders/coco.py)
  segfolder:DIR         segmentation: DIR/classes.txt, DIR/<split>/images/<id>.png|jpg and
                        DIR/<split>/masks/<id>.png (uint8 class ids, 255 = ignore), for
                        `segmentation` (builders/segfolder.py)
  tfds:NAME[/CONFIG][:VERSION]   a TFDS catalog data set (downloaded and prepared if needed);
                        catalog audio (e.g. tfds:speech_commands) is read like an audio folder

Local sources become TFDS data sets stored as array_record under `data_dir` (default:
$TFDS_DATA_DIR or ~/tensorflow_datasets), built on first use and reused until their files
change (see `builders/local.py`). Everything is read through TFDS's random-access data
sources, so no TensorFlow is needed, and `open_split` results plug into
`grain.MapDataset.source(...)` directly.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.features import audio_feature

from sslax import errors
from sslax.data import waveforms
from sslax.data.builders import arrays
from sslax.data.builders import asr
from sslax.data.builders import audio_folder
from sslax.data.builders import coco
from sslax.data.builders import digits
from sslax.data.builders import image_folder
from sslax.data.builders import local
from sslax.data.builders import segfolder
from sslax.data.builders import squad
from sslax.data.builders import text
from sslax.data.builders import tsv

FORMS = ('builtin:digits', 'npz:PATH (PATH may contain {split})',
         'folder:DIR (DIR/<split>/<class>/*.jpg|png|wav)',
         'text:PATH (a UTF-8 file, a folder of .txt files, or a glob)',
         'tsv:PATH (header sentence<TAB>label; PATH may contain {split} or be a folder)',
         'squad:PATH (SQuAD v1.1 JSON; PATH may contain {split} or be a folder)',
         'asr:DIR (DIR/<split>.tsv with header path<TAB>text, WAV paths relative to DIR)',
         'segfolder:DIR (DIR/classes.txt, DIR/<split>/images/<id>.png|jpg, '
         'DIR/<split>/masks/<id>.png)',
         'coco:DIR (DIR/<split>.json in COCO detection format, images in DIR/<split>/)',
         'tfds:NAME[/CONFIG][:VERSION]')
SCHEMES = ('builtin', 'npz', 'folder', 'text', 'tsv', 'squad', 'asr', 'segfolder', 'coco',
           'tfds')
BUILTINS: dict[str, Callable[[str | None], tfds.core.DatasetBuilder]] = {
    'digits': digits.prepare,
}


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


@dataclasses.dataclass(frozen=True)
class SourceInfo:
  """What pipelines and models need to know about a source before reading it.

  Attributes:
    num_classes: classes of the `label` feature; None when the source is unlabelled or its
      labels are regression targets.
    regression: the `label` feature holds float targets (a `tsv:` with a non-integer label,
      an `npz:` with float `labels`), for regression evaluators.
    split_sizes: examples per split ({} when TFDS does not know them, e.g. under mocking).
    image_shape: (H, W, C) of the `image` feature, None for sources without images; a
      dimension that varies between examples (catalog data sets such as imagenet2012,
      image folders stored encoded) is None: such sources are cropped on the host.
  """
  num_classes: int | None
  split_sizes: dict[str, int]
  image_shape: tuple[int, ...] | None
  regression: bool = False


def parse(source: str, *, key: str = 'data.source') -> tuple[str, str]:
  """'folder:/data/x' → ('folder', '/data/x'); ValueError naming `key` for anything else."""
  scheme, sep, rest = source.partition(':') if isinstance(source, str) else ('', '', '')
  if not sep or scheme not in SCHEMES or not rest.strip():
    raise errors.ConfigError(f'{key}={source!r} is not a data source; use one of: '
                             f'{", ".join(FORMS)}.')
  return scheme, rest.strip()


def check(source: str, *, key: str = 'data.source') -> None:
  """Cheap pre-flight check (no building): the form is valid and local paths exist."""
  scheme, rest = parse(source, key=key)
  if scheme == 'builtin':
    if rest not in BUILTINS:
      raise errors.ConfigError(f'{key}={source!r}: unknown builtin data set {rest!r}; known: '
                               f'{", ".join("builtin:" + n for n in sorted(BUILTINS))}.')
  elif scheme == 'npz':
    path = os.path.abspath(os.path.expanduser(rest))
    if not arrays.split_files(rest):
      hint = ('no file matches it with {split} replaced by a split name'
              if arrays.SPLIT_FIELD in rest else 'that file does not exist')
      raise errors.DataNotFoundError(
          f'{key}={source!r}: {path}: {hint}. Fix: set {key} to npz:PATH for an existing .npz '
          'with "images" (and "labels"), or npz:DIR/name_{split}.npz for one file per split.')
  elif scheme == 'folder':
    path = os.path.abspath(os.path.expanduser(rest))
    # folder:DIR/{split}/images: the folder above the split names must exist.
    existing = path.partition(image_folder.SPLIT_FIELD)[0].rstrip(os.sep) or os.sep
    if not os.path.isdir(existing):
      raise errors.DataNotFoundError(
          f'{key}={source!r}: folder {existing} does not exist. Fix: set {key} to folder:DIR '
          'for an existing DIR laid out as DIR/<split>/<class>/*.jpg (e.g. DIR/train/cat/1.jpg), '
          'DIR/<split>/*.jpg (unlabelled), or a path with {split} (DIR/{split}/images).')
  elif scheme == 'text':
    if not text.list_files(rest):
      raise errors.DataNotFoundError(
          f'{key}={source!r}: {os.path.abspath(os.path.expanduser(rest))} names no file. Fix: '
          f'set {key} to text:PATH for a UTF-8 file, a folder of .txt files, or a glob such '
          'as text:DIR/*.py.')
  elif scheme == 'tsv':
    if not tsv.split_files(rest):
      raise errors.DataNotFoundError(
          f'{key}={source!r}: {os.path.abspath(os.path.expanduser(rest))} names no .tsv file. '
          f'Fix: set {key} to tsv:FILE.tsv, tsv:DIR/{{split}}.tsv, or tsv:DIR holding '
          'train.tsv/test.tsv, each with the header "sentence<TAB>label".')
  elif scheme == 'squad':
    if not squad.split_files(rest):
      raise errors.DataNotFoundError(
          f'{key}={source!r}: {os.path.abspath(os.path.expanduser(rest))} names no .json file. '
          f'Fix: set {key} to squad:FILE.json, squad:DIR/{{split}}.json, or squad:DIR holding '
          'train.json/test.json in the SQuAD v1.1 format.')
  elif scheme == 'asr':
    if not asr.split_files(rest):
      raise errors.DataNotFoundError(
          f'{key}={source!r}: {os.path.abspath(os.path.expanduser(rest))} holds no <split>.tsv. '
          f'Fix: set {key} to asr:DIR with DIR/train.tsv and DIR/test.tsv (header '
          '"path<TAB>text", WAV paths relative to DIR).')
  elif scheme == 'segfolder':
    if not segfolder.splits(rest):
      raise errors.DataNotFoundError(
          f'{key}={source!r}: {os.path.abspath(os.path.expanduser(rest))} holds no '
          f'<split>/images folder. Fix: set {key} to segfolder:DIR with DIR/classes.txt, '
          'DIR/<split>/images/<id>.png|jpg and DIR/<split>/masks/<id>.png.')
  elif scheme == 'coco':
    if not coco.split_files(rest):
      raise errors.DataNotFoundError(
          f'{key}={source!r}: {os.path.abspath(os.path.expanduser(rest))} holds no <split>.json '
          f'with a <split>/ image folder beside it. Fix: set {key} to coco:DIR with '
          'DIR/train.json + DIR/train/ (and test) in COCO detection format.')
  else:
    name = rest.split('/')[0].split(':')[0]
    try:
      tfds.builder_cls(name)
    except tfds.core.registered.DatasetNotFoundError:
      raise errors.ConfigError(f'{key}={source!r}: {name!r} is not in the TFDS catalog '
                               '(see tfds.list_builders()).') from None


def _data_dir(data_dir: str | None) -> str:
  return os.path.expanduser(data_dir) if data_dir else local.default_data_dir()


def _builder(source: str, data_dir: str | None,
             bad_files: str = 'error') -> tfds.core.DatasetBuilder:
  """A prepared builder for `source`: local ones built once, catalog ones downloaded once.

  `bad_files` ('error' or 'skip', config.data.bad_files): what an audio folder does with a
  file it cannot decode.
  """
  # Config keys are checked (by name) before this; here the message names the source itself.
  check(source, key='source')
  scheme, rest = parse(source, key='source')
  data_dir = _data_dir(data_dir)
  if scheme != 'tfds' and '://' in data_dir:
    # Local builders write their array_record files, lock and fingerprint through local file
    # APIs (array_record's writer opens local paths only); a URL would land in ./gs:/...
    raise errors.ConfigError(
        f'config.data.data_dir={data_dir!r}: {source!r} is built on first use, and its build is '
        'written with local file APIs, so its data_dir must be a folder (local disk, a shared '
        'filesystem, or a bucket mounted with gcsfuse), not a URL. Set data.data_dir to such a '
        "folder, or to '' for $TFDS_DATA_DIR / ~/tensorflow_datasets.")
  if scheme == 'builtin':
    return BUILTINS[rest](data_dir)
  if scheme == 'npz':
    return arrays.prepare(rest, data_dir)
  if scheme == 'folder':
    if audio_folder.is_audio(rest):
      return audio_folder.prepare(rest, data_dir, bad_files)
    return image_folder.prepare(rest, data_dir, bad_files)
  if scheme == 'text':
    return text.prepare(rest, data_dir)
  if scheme == 'tsv':
    return tsv.prepare(rest, data_dir)
  if scheme == 'squad':
    return squad.prepare(rest, data_dir)
  if scheme == 'asr':
    return asr.prepare(rest, data_dir)
  if scheme == 'segfolder':
    return segfolder.prepare(rest, data_dir)
  if scheme == 'coco':
    return coco.prepare(rest, data_dir)
  # What tfds.data_source does, split in two so the split can be checked before reading.
  builder = tfds.builder(rest, data_dir=data_dir)
  builder.download_and_prepare(file_format='array_record')
  return builder


def _check_split(source: str, builder: tfds.core.DatasetBuilder, split: str) -> None:
  available = sorted(builder.info.splits)
  # TFDS accepts slices such as 'train[:10%]'; the name before '[' must exist.
  if available and split.split('[')[0] not in available:
    hint = ''
    if source.startswith('npz:') and arrays.SPLIT_FIELD not in source:
      hint = (' A single .npz is only the train split: put {split} in the path (e.g. '
              'npz:data/x_{split}.npz for x_train.npz and x_test.npz) to have more.')
    raise errors.ConfigError(f'{source!r} has no split {split!r}; available: '
                             f'{", ".join(available)}.{hint}')


# Catalog names for the waveform feature: most use 'audio'; LibriSpeech calls it 'speech'.
AUDIO_FEATURES = ('audio', 'speech')


def _audio_feature(features: Any) -> str | None:
  return next((k for k in AUDIO_FEATURES if k in features), None)


def _catalog_audio(example: dict[str, Any], rate: int) -> dict[str, Any]:
  """A catalog audio record as an audio folder's: float32 mono `audio` in [-1, 1] plus its
  `sample_rate`, so `waveforms.record_transform` resamples and cuts both alike."""
  example = dict(example)
  example['audio'] = waveforms.to_float_mono(example.pop(_audio_feature(example)))
  if 'text' in example:
    # A transcript (LibriSpeech) is a label of the clip, not text for a tokenizer to embed.
    example['transcript'] = example.pop('text')
  example['sample_rate'] = np.int32(rate)
  return example


def _audio_rate(source: str, builder: tfds.core.DatasetBuilder) -> int | None:
  """The sample rate of a catalog data set's `audio` feature; None when it has none."""
  features = builder.info.features
  key = _audio_feature(features) if source.startswith('tfds:') else None
  feature = features[key] if key else None
  if not isinstance(feature, tfds.features.Audio):
    return None
  if not feature.sample_rate:
    raise errors.DataError(f'{source!r}: its audio feature records no sample rate, so it cannot be '
                           'resampled to config.data.sample_rate; use a data set that records one '
                           'or a folder: of WAV files.')
  return int(feature.sample_rate)


def _to_numpy(example: Any, name: str = '') -> Any:
  """Plain numpy leaves: images always [H,W,C], class labels int64 scalars."""
  if isinstance(example, dict):
    return {k: _to_numpy(v, k) for k, v in example.items()}
  if isinstance(example, bytes) and name in ('image', 'mask'):
    return example   # encoded images: np.asarray would strip trailing zero bytes
  value = np.asarray(example)
  if name == 'image' and value.ndim == 2:
    value = value[..., None]
  elif name == 'label' and value.ndim == 0 and value.dtype.kind in 'iub':
    value = np.int64(value)   # regression labels (tsv: floats) stay float
  return value


def _decoders(builder: tfds.core.DatasetBuilder) -> dict | None:
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


class RandomAccess:
  """One split of a source: `len(x)`, `x[i]` → {'image': uint8 [H,W,C], 'label': int64, ...}
  (images of variable size: their encoded bytes, see `_decoders` and image_folder.py).

  Pickles without its open file handles (only the source, split and stored directory), and
  reopens the stored data lazily, so grain worker processes can receive it.
  """

  def __init__(self, source: str, split: str, builder_dir: str, data: Sequence[Any],
               audio_rate: int | None = None):
    self.source = source
    self.split = split
    self.builder_dir = builder_dir
    self.audio_rate = audio_rate   # catalog audio: integer samples at this rate (see above)
    self._data = data
    self._len = len(data)

  @property
  def data(self) -> Sequence[Any]:
    if self._data is None:
      builder = tfds.builder_from_directory(self.builder_dir)
      self._data = builder.as_data_source(self.split, decoders=_decoders(builder))
    return self._data

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, index: int) -> dict[str, Any]:
    index = int(index)
    if not -self._len <= index < self._len:
      raise IndexError(f'index {index} out of range for {self!r}')
    return self._record(self.data[index % self._len])

  def _record(self, example: Any) -> dict[str, Any]:
    example = _to_numpy(example)
    return example if self.audio_rate is None else _catalog_audio(example, self.audio_rate)

  def _getitems(self, indices: Sequence[int]) -> list[dict[str, Any]]:
    """Batched read (grain's protocol): one call into array_record for many records."""
    getitems = getattr(self.data, '__getitems__', None)
    if getitems is None:
      return [self[i] for i in indices]
    return [self._record(x) for x in getitems([int(i) % self._len for i in indices])]

  __getitems__ = _getitems

  def __getstate__(self) -> dict[str, Any]:
    state = dict(self.__dict__)
    state['_data'] = None
    return state

  def __repr__(self) -> str:
    return f'RandomAccess({self.source!r}, split={self.split!r}, len={self._len})'


def open_split(source: str, split: str, *, data_dir: str | None = None,
               bad_files: str = 'error') -> RandomAccess:
  """Random access to one split of `source`, building or downloading it first if needed.

  Raises:
    ValueError: unknown form or split (the message lists the available splits).
    FileNotFoundError: a local path that does not exist.
  """
  builder = _builder(source, data_dir, bad_files)
  _check_split(source, builder, split)
  return RandomAccess(source, split, os.fspath(builder.data_dir),
                      builder.as_data_source(split, decoders=_decoders(builder)),
                      _audio_rate(source, builder))


def dense_classes(source: str, *, data_dir: str | None = None) -> list[str]:
  """The class names of a `segfolder:` (its classes.txt) or `coco:` source (its categories
  by id), building it if needed."""
  if parse(source, key='source')[0] not in ('segfolder', 'coco'):
    raise errors.ConfigError(f'{source!r} is neither a segfolder: nor a coco: source.')
  return list(_builder(source, data_dir).info.metadata['class_names'])


def info(source: str, *, data_dir: str | None = None, bad_files: str = 'error') -> SourceInfo:
  """Classes, split sizes and image shape of `source` (building it first if needed)."""
  builder = _builder(source, data_dir, bad_files)
  features = builder.info.features
  num_classes = None
  regression = False
  if 'label' in features and isinstance(features['label'], tfds.features.ClassLabel):
    num_classes = int(features['label'].num_classes)
  elif 'label' in features:
    regression = np.issubdtype(np.dtype(features['label'].np_dtype), np.floating)
  image_shape = None
  if 'image' in features:
    image_shape = tuple(None if d is None else int(d) for d in features['image'].shape)
    if not image_shape:   # encoded bytes of any size (image folders, see image_folder.py)
      image_shape = (None, None, int(builder.info.metadata.get('channels', 3)))
    if len(image_shape) == 2:
      image_shape += (1,)
  split_sizes = {str(name): int(split.num_examples)
                 for name, split in builder.info.splits.items()}
  return SourceInfo(num_classes=num_classes, split_sizes=split_sizes, image_shape=image_shape,
                    regression=regression)
