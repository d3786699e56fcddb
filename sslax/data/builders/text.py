"""`text:PATH`: plain UTF-8 text (one file, a folder of .txt files, or a glob) as a TFDS data set.

Records hold raw text (`text`, stored as UTF-8 bytes), never token ids: the tokenizer is a
training choice (`config.data.tokenizer`, see `sslax/data/tokenizers.py`) applied when the
pipeline fetches records, so changing it never rebuilds the data.

Splits are deterministic and need no seed: the last `TEST_FRACTION` of every file (cut at
the first line break after that point) is `test`, the rest `train`. Each part is cut into
chunks of whole lines of at most `CHUNK_BYTES` bytes (a longer line is cut at character
boundaries), so one record is one training sequence's worth of text for byte-level
tokenizers at the default lengths. With several files, `label` is the file a chunk came from
(ClassLabel named by file), which gives any folder of text a labelled "which file" task
for the downstream evaluators.
"""
from __future__ import annotations

import glob
import os
from typing import Iterator

import tensorflow_datasets as tfds

from sslax import errors
from sslax.data.builders import local

TEST_FRACTION = 0.1
# A record's text budget. 256 bytes fill a byte-level sequence of 256 (or two of 128 would
# be wasted as one); the tokenizer truncates records longer than `data.seq_len`.
CHUNK_BYTES = 256


def list_files(path: str) -> list[str]:
  """The files `text:path` names: the file itself, a folder's *.txt files, or a glob's matches."""
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isfile(path):
    return [path]
  if os.path.isdir(path):
    return sorted(p for p in glob.glob(os.path.join(glob.escape(path), '*.txt'))
                  if os.path.isfile(p))
  return sorted(p for p in glob.glob(path) if os.path.isfile(p))


def fingerprint(path: str) -> str:
  return local.fingerprint([local.stat_entry(p) for p in list_files(path)])


def read_text(path: str) -> str:
  """A file's text; errors name the file and the fix."""
  with open(path, 'rb') as f:
    data = f.read()
  try:
    text = data.decode('utf-8')
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b'\n') + 1
    raise errors.DataError(f'{path} is not UTF-8 text (byte {e.start}, line {line}: {e.reason}). '
                           'Fix: convert it (e.g. iconv -t UTF-8) or leave it out of the text: '
                           'source.') from None
  if not text.strip():
    raise errors.DataError(f'{path} is empty (no text to train on). Fix: remove it from the '
                           'text: source or point the source at a non-empty file.')
  return text


def split_text(text: str, test_fraction: float = TEST_FRACTION) -> tuple[str, str]:
  """(train, test): test is the tail from the first line break after (1 - fraction) of text."""
  cut = int(len(text) * (1.0 - test_fraction))
  newline = text.find('\n', cut)
  cut = newline + 1 if newline != -1 else cut
  return text[:cut], text[cut:]


def chunks(text: str, max_bytes: int = CHUNK_BYTES) -> list[str]:
  """Whole lines packed into pieces of at most `max_bytes` UTF-8 bytes (long lines cut)."""
  out, current, size = [], [], 0
  for line in text.splitlines(keepends=True):
    encoded = line.encode('utf-8')
    while len(encoded) > max_bytes:  # Cut at a character boundary: never mid-codepoint.
      head = encoded[:max_bytes].decode('utf-8', errors='ignore')
      if current:
        out.append(''.join(current))
        current, size = [], 0
      out.append(head)
      encoded = encoded[len(head.encode('utf-8')):]
    line = encoded.decode('utf-8')
    if size + len(encoded) > max_bytes and current:
      out.append(''.join(current))
      current, size = [], 0
    if line:
      current.append(line)
      size += len(encoded)
  if current:
    out.append(''.join(current))
  return [c for c in out if c.strip()]


def make_config(path: str) -> local.PathConfig:
  """Reads every file once (errors up front) and chunks both splits."""
  files = list_files(path)
  if not files:
    raise errors.DataNotFoundError(f'text:{path} names no file: expected a UTF-8 file, a folder '
                                   'holding *.txt files, or a glob such as DIR/*.py.')
  items = {'train': [], 'test': []}
  for label, file in enumerate(files):
    train, test = split_text(read_text(file))
    items['train'] += [(c, label) for c in chunks(train)]
    items['test'] += [(c, label) for c in chunks(test)]
  names = None
  if len(files) > 1:
    root = os.path.commonpath(files)
    names = tuple(os.path.relpath(f, root) for f in files)
  return local.PathConfig(
      name=local.config_name(path),
      description=f'Text from {path}',
      path=os.path.abspath(os.path.expanduser(path)),
      num_classes=len(files) if names else None,
      class_names=names,
      payload={'items': items},
  )


class SslaxText(local.LocalBuilder):
  """Raw UTF-8 text chunks (+ the source file as label when there are several)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': f'Line-packed chunks of <= {CHUNK_BYTES} bytes; last '
                            f'{TEST_FRACTION:.0%} of each file is test.'}

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    features = {'text': tfds.features.Text()}
    if config.class_names:
      features['label'] = tfds.features.ClassLabel(names=list(config.class_names))
    return self.dataset_info_from_configs(
        description=config.description,
        features=tfds.features.FeaturesDict(features),
        # Stored order = file order then position, so index i is a fixed piece of text.
        disable_shuffling=True,
    )

  def _generate_examples(self, items: list[tuple[str, int]]) -> Iterator:
    labelled = bool(self.builder_config.class_names)
    for i, (text, label) in enumerate(items):
      yield i, ({'text': text, 'label': label} if labelled else {'text': text})


def prepare(path: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """Builds (once per version of the files) and returns a read-only builder for `text:path`."""
  return local.build_path(SslaxText, path, data_dir, fingerprint=fingerprint,
                          make_config=make_config)
