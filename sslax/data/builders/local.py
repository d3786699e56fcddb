"""What every local builder shares: path-derived config names, source fingerprints, build once.

A local source (an .npz file, an image folder, a bundled data set) becomes a TFDS data set
stored as array_record under `data_dir/<builder>/<config>/<version>/`. The config name is
derived from the absolute source path, so two folders called `images/` never share a build,
and a stamp file written next to the build records a fingerprint of the source files (names,
sizes, modification times). Opening a source whose stamp matches reuses the build through
`tfds.builder_from_directory` (no builder code runs, no source file is read); a missing or
different stamp means the source changed (or a build was interrupted), so the build is
deleted and made again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import time
from typing import Callable, Iterator, Sequence

import tensorflow_datasets as tfds

STAMP = 'sslax_source.json'
_LOCK_SUFFIX = '.sslax_lock'


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the builders of local files."""

  def dataset_info_from_configs(self, **kwargs) -> tfds.core.DatasetInfo:
    info = super().dataset_info_from_configs(**kwargs)
    # A builder whose data is not built yet looks for precomputed metadata on GCS; TFDS 4.9's
    # `initialize_from_bucket` makes a temp dir before it finds none and never removes it, so
    # every build left an empty /tmp/tmp*tfds. Local files are never on GCS.
    info.initialize_from_bucket = lambda: None
    return info

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """One split per entry of the config's `payload['items']` (the rows the scan found), each
    handed to `_generate_examples`; a split without rows is left out, since TFDS refuses to
    write one ("No examples were yielded")."""
    del dl_manager  # Local files only.
    return {split: self._generate_examples(rows)
            for split, rows in self.builder_config.payload['items'].items() if rows}


def config_name(path: str | os.PathLike[str]) -> str:
  """A TFDS-safe config name for `path`: readable basename plus a hash of the absolute path."""
  absolute = os.path.abspath(os.path.expanduser(os.fspath(path)))
  stem = os.path.basename(absolute.rstrip(os.sep)) or 'root'
  stem = re.sub(r'\.npz$', '', stem, flags=re.IGNORECASE)
  readable = re.sub(r'[^a-z0-9]+', '_', stem.lower()).strip('_')[:40] or 'data'
  digest = hashlib.sha1(absolute.encode('utf-8')).hexdigest()[:10]
  return f'{readable}_{digest}'


def fingerprint(entries: Sequence[tuple[str, int, int]]) -> str:
  """Hash of (name, size, mtime_ns) rows; any added, removed, resized or touched file changes it."""
  payload = json.dumps(sorted(entries), separators=(',', ':')).encode('utf-8')
  return hashlib.sha1(payload).hexdigest()


def stat_entry(path: str | os.PathLike[str], name: str | None = None) -> tuple[str, int, int]:
  """One fingerprint row for a file; `name` defaults to the path itself."""
  st = os.stat(path)
  return (name if name is not None else os.fspath(path), st.st_size, st.st_mtime_ns)


@dataclasses.dataclass(eq=False)
class PathConfig(tfds.core.BuilderConfig):
  """A BuilderConfig made at run time for one source path (never listed in BUILDER_CONFIGS).

  Only `name`, `version` and `description` reach the stored DatasetInfo; the other fields carry
  what the scan before a build found (shapes, file lists, arrays) into `_info` and the
  generators, which is why a reused build never needs them.
  """
  path: str = ''
  image_shape: tuple[int, ...] = ()
  num_classes: int | None = None
  class_names: tuple[str, ...] | None = None
  payload: dict = dataclasses.field(default_factory=dict, repr=False)


def default_data_dir() -> str:
  """TFDS's usual location, honouring TFDS_DATA_DIR as TFDS itself does."""
  return os.path.expanduser(os.environ.get('TFDS_DATA_DIR', '~/tensorflow_datasets'))


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
  """An exclusive advisory lock, so processes on one machine never build the same data at once."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, 'a+') as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


def _stamp_matches(stamp: pathlib.Path, expected: str) -> bool:
  try:
    return json.loads(stamp.read_text())['fingerprint'] == expected
  except (OSError, ValueError, KeyError):
    return False


def ensure_built(
    *,
    builder_cls: type[tfds.core.GeneratorBasedBuilder],
    config: str | None,
    source_fingerprint: Callable[[], str],
    make_builder: Callable[[str], tfds.core.GeneratorBasedBuilder],
    data_dir: str | None,
) -> tfds.core.DatasetBuilder:
  """Returns a read-only builder for the stored data set, building it first when needed.

  Args:
    builder_cls: the GeneratorBasedBuilder subclass (its `name` and `VERSION` locate the build).
    config: the config name (see `config_name`), or None for a builder without configs.
    source_fingerprint: computes the current fingerprint of the source files.
    make_builder: scans the source and returns a builder instance for `data_dir`; called
      only when a build is needed, because the scan reads every source file.
    data_dir: TFDS data directory; None means `default_data_dir()`.
  """
  root = pathlib.Path(os.path.expanduser(data_dir or default_data_dir())).absolute()
  builder_root = root / builder_cls.name
  config_dir = builder_root / config if config else builder_root
  version_dir = config_dir / str(builder_cls.VERSION)
  current = source_fingerprint()
  with _locked(config_dir.parent / f'{config_dir.name}{_LOCK_SUFFIX}'):
    stamp = version_dir / STAMP
    if not _stamp_matches(stamp, current):
      if version_dir.exists():
        logging.warning('sslax: source of %s changed since it was built (or the build was '
                        'interrupted); rebuilding.', version_dir)
        shutil.rmtree(version_dir)
      start = time.perf_counter()
      builder = make_builder(os.fspath(root))
      if pathlib.Path(os.fspath(builder.data_dir)) != version_dir:
        raise RuntimeError(f'builder writes to {builder.data_dir}, expected {version_dir}')
      builder.download_and_prepare(
          file_format='array_record',
          download_config=tfds.download.DownloadConfig(
              # Stats need TensorFlow and nothing here reads them.
              compute_stats=tfds.download.ComputeStatsMode.SKIP,
              try_download_gcs=False),
      )
      # The stamp is written last: a build that dies half-way has none and is redone.
      stamp.write_text(json.dumps({
          'fingerprint': current,
          'builder': builder_cls.name,
          'config': config,
          'build_seconds': round(time.perf_counter() - start, 3),
      }, indent=2))
  return tfds.builder_from_directory(os.fspath(version_dir))


def build_path(builder_cls: type[tfds.core.GeneratorBasedBuilder], path: str,
               data_dir: str | None, *, fingerprint: Callable[[str], str],
               make_config: Callable[[str], PathConfig],
               config: str | None = None) -> tfds.core.DatasetBuilder:
  """`ensure_built` for a builder with one config per source path: named `config` (default
  `config_name(path)`), fingerprinted by `fingerprint(path)`, scanned by `make_config(path)`."""
  return ensure_built(
      builder_cls=builder_cls,
      config=config or config_name(path),
      source_fingerprint=lambda: fingerprint(path),
      make_builder=lambda root: builder_cls(data_dir=root, config=make_config(path)),
      data_dir=data_dir,
  )
