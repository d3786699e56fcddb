"""What a config's `data.source` / `eval.source` names, and random access to its splits.

`SCHEMES` is the one table of what a source may be (builtin:, npz:, folder:, text:, tsv:,
squad:, asr:, segfolder:, coco:, tfds:): each scheme's form, the check that its path names
something, and its builder; a local scheme's layout is documented in its builder
(builders/<name>.py), catalog data sets in catalog.py. A `folder:` holds images or WAVs
(told apart by its files); catalog audio (tfds:speech_commands) reads like an audio folder.

Local sources become TFDS data sets stored as array_record under `data_dir` (default:
$TFDS_DATA_DIR or ~/tensorflow_datasets), built on first use and reused until their files
change (see `builders/local.py`). Everything is read through TFDS's random-access data
sources, so no TensorFlow is needed, and `open_split` results plug into
`grain.MapDataset.source(...)` directly.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow_datasets as tfds

from sslax import errors
from sslax.data import catalog
from sslax.data.builders import arrays
from sslax.data.builders import asr
from sslax.data.builders import audio_folder
from sslax.data.builders import coco
from sslax.data.builders import digits
from sslax.data.builders import image_folder
from sslax.data.builders import local
from sslax.data.builders import segfolder
from sslax.data.builders import split_paths
from sslax.data.builders import squad
from sslax.data.builders import text
from sslax.data.builders import tsv

BUILTINS: dict[str, Callable[[str | None], tfds.core.DatasetBuilder]] = {
    'digits': digits.prepare,
}


@dataclasses.dataclass(frozen=True)
class Scheme:
  """What one scheme of `data.source` takes, how `check` tells that its path names nothing
  to build from, and how it is built."""
  form: str                      # its syntax, listed when a source does not parse
  found: Callable[[str], Any]    # truthy when the part after 'scheme:' names something
  problem: Callable[[str], str]  # what `check` says when not, from that part
  fix: str                       # and how to fix it; {key} is the config key
  build: Callable[[str, str, str], tfds.core.DatasetBuilder]   # (part, data_dir, bad_files)
  error: type[errors.UserError] = errors.DataNotFoundError
  local: bool = True             # built from local files by sslax (not TFDS's catalog)
  # The evaluator type that reads this scheme's own records (qa, asr, segmentation,
  # detection); '' when its records are labelled examples for the shared feature path.
  task: str = ''


def _where(rest: str) -> str:
  return os.path.abspath(os.path.expanduser(rest))


def _folder_root(rest: str) -> str:
  # folder:DIR/{split}/images: the folder above the split names must exist.
  return _where(rest).partition(split_paths.SPLIT_FIELD)[0].rstrip(os.sep) or os.sep


def _folder(rest: str, data_dir: str, bad_files: str) -> tfds.core.DatasetBuilder:
  module = audio_folder if audio_folder.is_audio(rest) else image_folder
  return module.prepare(rest, data_dir, bad_files)


SCHEMES: dict[str, Scheme] = {
    'builtin': Scheme(
        'builtin:digits', found=lambda rest: rest in BUILTINS,
        problem=lambda rest: f'unknown builtin data set {rest!r}',
        fix='set {key} to one of ' + ', '.join(f'builtin:{n}' for n in sorted(BUILTINS)) + '.',
        build=lambda rest, data_dir, _: BUILTINS[rest](data_dir), error=errors.ConfigError),
    'npz': Scheme(
        'npz:PATH (PATH may contain {split})', found=split_paths.from_pattern,
        problem=lambda rest: f'{_where(rest)}: ' + (
            'no file matches it with {split} replaced by a split name'
            if split_paths.SPLIT_FIELD in rest else 'that file does not exist'),
        fix='set {key} to npz:PATH for an existing .npz with "images" (and "labels"), or '
            'npz:DIR/name_{{split}}.npz for one file per split.',
        build=lambda rest, data_dir, _: arrays.prepare(rest, data_dir)),
    'folder': Scheme(
        'folder:DIR (DIR/<split>/<class>/*.jpg|png|wav)',
        found=lambda rest: os.path.isdir(_folder_root(rest)),
        problem=lambda rest: f'folder {_folder_root(rest)} does not exist',
        fix='set {key} to folder:DIR for an existing DIR laid out as DIR/<split>/<class>/*.jpg '
            '(e.g. DIR/train/cat/1.jpg), DIR/<split>/*.jpg (unlabelled), or a path with '
            '{{split}} (DIR/{{split}}/images).',
        build=_folder),
    'text': Scheme(
        'text:PATH (a UTF-8 file, a folder of .txt files, or a glob)', found=text.list_files,
        problem=lambda rest: f'{_where(rest)} names no file',
        fix='set {key} to text:PATH for a UTF-8 file, a folder of .txt files, or a glob such '
            'as text:DIR/*.py.',
        build=lambda rest, data_dir, _: text.prepare(rest, data_dir)),
    'tsv': Scheme(
        'tsv:PATH (header sentence<TAB>label; PATH may contain {split} or be a folder)',
        found=tsv.split_files, problem=lambda rest: f'{_where(rest)} names no .tsv file',
        fix='set {key} to tsv:FILE.tsv, tsv:DIR/{{split}}.tsv, or tsv:DIR holding '
            'train.tsv/test.tsv, each with the header "sentence<TAB>label".',
        build=lambda rest, data_dir, _: tsv.prepare(rest, data_dir)),
    'squad': Scheme(
        'squad:PATH (SQuAD v1.1 JSON; PATH may contain {split} or be a folder)',
        found=squad.split_files, problem=lambda rest: f'{_where(rest)} names no .json file',
        fix='set {key} to squad:FILE.json, squad:DIR/{{split}}.json, or squad:DIR holding '
            'train.json/test.json in the SQuAD v1.1 format.',
        build=lambda rest, data_dir, _: squad.prepare(rest, data_dir), task='qa'),
    'asr': Scheme(
        'asr:DIR (DIR/<split>.tsv with header path<TAB>text, WAV paths relative to DIR)',
        found=asr.split_files, problem=lambda rest: f'{_where(rest)} holds no <split>.tsv',
        fix='set {key} to asr:DIR with DIR/train.tsv and DIR/test.tsv (header '
            '"path<TAB>text", WAV paths relative to DIR).',
        build=lambda rest, data_dir, _: asr.prepare(rest, data_dir), task='asr'),
    'segfolder': Scheme(
        'segfolder:DIR (DIR/classes.txt, DIR/<split>/images/<id>.png|jpg, '
        'DIR/<split>/masks/<id>.png)', found=segfolder.splits,
        problem=lambda rest: f'{_where(rest)} holds no <split>/images folder',
        fix='set {key} to segfolder:DIR with DIR/classes.txt, DIR/<split>/images/<id>.png|jpg '
            'and DIR/<split>/masks/<id>.png.',
        build=lambda rest, data_dir, _: segfolder.prepare(rest, data_dir), task='segmentation'),
    'coco': Scheme(
        'coco:DIR (DIR/<split>.json in COCO detection format, images in DIR/<split>/)',
        found=coco.split_files,
        problem=lambda rest: f'{_where(rest)} holds no <split>.json with a <split>/ image '
                             'folder beside it',
        fix='set {key} to coco:DIR with DIR/train.json + DIR/train/ (and test) in COCO '
            'detection format.',
        build=lambda rest, data_dir, _: coco.prepare(rest, data_dir), task='detection'),
    'tfds': Scheme(
        'tfds:NAME[/CONFIG][:VERSION]', found=catalog.known,
        problem=lambda rest: f'{catalog.name_of(rest)!r} is not in the TFDS catalog',
        fix='set {key} to tfds:NAME for a NAME in tfds.list_builders().',
        build=lambda rest, data_dir, _: catalog.prepare(rest, data_dir),
        error=errors.ConfigError, local=False),
}
FORMS = tuple(scheme.form for scheme in SCHEMES.values())


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
  name, rest = parse(source, key=key)
  scheme = SCHEMES[name]
  if not scheme.found(rest):
    raise scheme.error(f'{key}={source!r}: {scheme.problem(rest)}. Fix: '
                       f'{scheme.fix.format(key=key)}')


def task_of(source: str, *, key: str) -> str:
  """The evaluator type that reads `source` with its own reader (qa, asr, segmentation,
  detection), '' for a source of labelled examples (kNN, probes, the raw-input baseline)."""
  return SCHEMES[parse(source, key=key)[0]].task


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
  name, rest = parse(source, key='source')
  data_dir = _data_dir(data_dir)
  if SCHEMES[name].local and '://' in data_dir:
    # Local builders write their array_record files, lock and fingerprint through local file
    # APIs (array_record's writer opens local paths only); a URL would land in ./gs:/...
    raise errors.ConfigError(
        f'config.data.data_dir={data_dir!r}: {source!r} is built on first use, and its build is '
        'written with local file APIs, so its data_dir must be a folder (local disk, a shared '
        'filesystem, or a bucket mounted with gcsfuse), not a URL. Set data.data_dir to such a '
        "folder, or to '' for $TFDS_DATA_DIR / ~/tensorflow_datasets.")
  return SCHEMES[name].build(rest, data_dir, bad_files)


def _check_split(source: str, builder: tfds.core.DatasetBuilder, split: str) -> None:
  available = sorted(builder.info.splits)
  # TFDS accepts slices such as 'train[:10%]'; the name before '[' must exist.
  if available and split.split('[')[0] not in available:
    hint = ''
    if source.startswith('npz:') and split_paths.SPLIT_FIELD not in source:
      hint = (' A single .npz is only the train split: put {split} in the path (e.g. '
              'npz:data/x_{split}.npz for x_train.npz and x_test.npz) to have more.')
    raise errors.ConfigError(f'{source!r} has no split {split!r}; available: '
                             f'{", ".join(available)}.{hint}')


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


class RandomAccess:
  """One split of a source: `len(x)`, `x[i]` → {'image': uint8 [H,W,C], 'label': int64, ...}
  (images of variable size: their encoded bytes, see `catalog.decoders` and image_folder.py).

  Pickles without its open file handles (only the source, split and stored directory), and
  reopens the stored data lazily, so grain worker processes can receive it.
  """

  def __init__(self, source: str, split: str, builder_dir: str, data: Sequence[Any],
               audio_rate: int | None = None):
    self.source = source
    self.split = split
    self.builder_dir = builder_dir
    self.audio_rate = audio_rate   # catalog audio: integer samples at this rate
    self._data = data
    self._len = len(data)

  @property
  def data(self) -> Sequence[Any]:
    if self._data is None:
      builder = tfds.builder_from_directory(self.builder_dir)
      self._data = builder.as_data_source(self.split, decoders=catalog.decoders(builder))
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
    return example if self.audio_rate is None else catalog.audio_record(example, self.audio_rate)

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
  catalog_audio = not SCHEMES[parse(source)[0]].local
  return RandomAccess(source, split, os.fspath(builder.data_dir),
                      builder.as_data_source(split, decoders=catalog.decoders(builder)),
                      catalog.audio_rate(source, builder) if catalog_audio else None)


def dense_classes(source: str, *, data_dir: str | None = None) -> list[str]:
  """The class names of a `segfolder:` (its classes.txt) or `coco:` source (its categories
  by id), building it if needed."""
  if task_of(source, key='source') not in ('segmentation', 'detection'):
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
