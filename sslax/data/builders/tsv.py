"""`tsv:PATH`: labelled sentences (GLUE-style TSV) as a TFDS data set.

Each file has the header `sentence<TAB>label` (other columns are ignored) and one example
per line. Integer labels become a ClassLabel (classes 0..max); if any label of any split is
not an integer, all are stored as float32 regression targets. PATH is one file (the `train`
split), a path with `{split}` (`sst2/{split}.tsv` → train, dev, test), or a folder whose
*.tsv files are the splits (`sst2/` → train.tsv, dev.tsv, test.tsv).

Records hold raw text (`text`) and `label`; tokenisation happens in the pipeline (see
`sslax/data/tokenizers.py`).
"""
from __future__ import annotations

import math
import os
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from sslax import errors
from sslax.data.builders import local
from sslax.data.builders import split_paths

HEADER = ('sentence', 'label')


def split_files(path: str) -> dict[str, str]:
  """{split: absolute file} for a file, a `{split}` pattern or a folder of <split>.tsv files."""
  return split_paths.from_path(path, '.tsv')


def fingerprint(path: str) -> str:
  return split_paths.fingerprint(split_files(path))


def _parse_label(value: str, where: str) -> int | float:
  try:
    return int(value)
  except ValueError:
    pass
  try:
    number = float(value)
  except ValueError:
    number = math.nan
  if not math.isfinite(number):
    raise errors.DataError(
        f'{where}: label {value!r} is not a number. Fix: labels must be integers '
        '(classes) or floats (regression targets).')
  return number


def read_tsv(path: str) -> tuple[list[str], list[int | float]]:
  """(sentences, labels) of one file; errors name the file, the line and the fix."""
  with open(path, 'rb') as f:
    data = f.read()
  try:
    # Not splitlines(): it also breaks at form feeds and other separators inside sentences.
    lines = [l.rstrip('\r') for l in data.decode('utf-8').split('\n')]
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b'\n') + 1
    raise errors.DataError(f'{path} is not UTF-8 (byte {e.start}, line {line}). Fix: convert it to '
                           'UTF-8.') from None
  while lines and not lines[-1]:
    lines.pop()
  if not lines:
    raise errors.DataError(f'{path} is empty; expected a header line "sentence<TAB>label".')
  header = lines[0].split('\t')
  if not all(name in header for name in HEADER):
    raise errors.DataError(
        f'{path}:1: the header is {lines[0][:80]!r}, without the columns '
        f'{" and ".join(HEADER)}. Fix: make the first line "sentence<TAB>label".')
  col_s, col_l = header.index('sentence'), header.index('label')
  sentences, labels = [], []
  for number, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    fields = line.split('\t')
    if len(fields) <= max(col_s, col_l):
      raise errors.DataError(
          f'{path}:{number}: {len(fields)} tab-separated fields, expected '
          f'{len(header)} as in the header. Fix: one TAB between sentence and label.')
    sentences.append(fields[col_s])
    labels.append(_parse_label(fields[col_l].strip(), f'{path}:{number}'))
  if not sentences:
    raise errors.DataError(f'{path} has a header but no examples.')
  return sentences, labels


def make_config(path: str) -> local.PathConfig:
  files = split_files(path)
  if not files:
    raise errors.DataNotFoundError(f'tsv:{path} names no file: expected a .tsv file, a path with '
                                   '{split}, or a folder of <split>.tsv files.')
  parsed = {split: read_tsv(file) for split, file in files.items()}
  all_labels = [y for _, labels in parsed.values() for y in labels]
  is_class = all(isinstance(y, int) for y in all_labels)
  if is_class and min(all_labels) < 0:
    raise errors.DataError(f'tsv:{path}: integer labels must be >= 0 class ids (found '
                           f'{min(all_labels)}); use floats (e.g. -1.0) for regression targets.')
  return local.PathConfig(
      name=local.config_name(path),
      description=f'Sentences from {path}',
      path=os.path.abspath(os.path.expanduser(path)),
      num_classes=(max(all_labels) + 1) if is_class else None,
      payload={'parsed': parsed},
  )


class SslaxTsv(local.LocalBuilder):
  """Sentences (raw UTF-8) with class or regression labels; one config per path."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'text + ClassLabel (integer labels) or float32 (regression).'}

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    label = (tfds.features.ClassLabel(num_classes=config.num_classes)
             if config.num_classes is not None else tfds.features.Scalar(dtype=np.float32))
    return self.dataset_info_from_configs(
        description=config.description,
        features=tfds.features.FeaturesDict({'text': tfds.features.Text(), 'label': label}),
        supervised_keys=('text', 'label'),
        disable_shuffling=True,   # index i is line i + 2 of the split's file
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Local files only.
    return {split: self._generate_examples(*data)
            for split, data in self.builder_config.payload['parsed'].items()}

  def _generate_examples(self, sentences: list[str], labels: list) -> Iterator:
    regression = self.builder_config.num_classes is None
    for i, (text, label) in enumerate(zip(sentences, labels)):
      yield i, {'text': text, 'label': float(label) if regression else int(label)}


def prepare(path: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """Builds (once per version of the files) and returns a read-only builder for `tsv:path`."""
  return local.build_path(SslaxTsv, path, data_dir, fingerprint=fingerprint,
                          make_config=make_config)
