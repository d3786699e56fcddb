"""Which file holds which split of a local source, and the fingerprint of those files.

A source path names its splits' files in one of three ways: one file (the `train` split), a
path holding `{split}` (`mnist_{split}.npz` → the splits `train`, `test`, ... found on disk),
or a folder of `<split><extension>` files (`sst2/` → train.tsv, dev.tsv, test.tsv).
"""
from __future__ import annotations

import glob
import os
import re

from sslax import errors
from sslax.data.builders import local

SPLIT_FIELD = '{split}'
# TFDS parses split strings such as 'train[:10%]', so names are restricted to word characters.
_SPLIT_NAME = r'[A-Za-z0-9_]+'


def from_pattern(pattern: str) -> dict[str, str]:
  """{split: absolute file} for a path that may contain `{split}`; {} when nothing matches."""
  pattern = os.path.abspath(os.path.expanduser(pattern))
  if SPLIT_FIELD not in pattern:
    return {'train': pattern} if os.path.isfile(pattern) else {}
  head, _, tail = pattern.partition(SPLIT_FIELD)
  if SPLIT_FIELD in tail:
    raise errors.DataError(f'{pattern!r} contains {SPLIT_FIELD} more than once.')
  regex = re.compile(re.escape(head) + f'({_SPLIT_NAME})' + re.escape(tail) + '$')
  found = {}
  for path in sorted(glob.glob(glob.escape(head) + '*' + glob.escape(tail))):
    match = regex.match(path)
    if match and os.path.isfile(path):
      found[match.group(1)] = path
  return found


def in_folder(root: str, extension: str) -> dict[str, str]:
  """{split: absolute file} of the `<split><extension>` files in the folder `root`."""
  root = os.path.abspath(os.path.expanduser(root))
  return {os.path.splitext(os.path.basename(p))[0]: p
          for p in sorted(glob.glob(os.path.join(glob.escape(root), '*' + extension)))}


def from_path(path: str, extension: str) -> dict[str, str]:
  """{split: absolute file} for a file, a `{split}` pattern, or a folder of
  `<split><extension>` files."""
  if SPLIT_FIELD not in path and os.path.isdir(os.path.abspath(os.path.expanduser(path))):
    return in_folder(path, extension)
  return from_pattern(path)


def fingerprint(files: dict[str, str]) -> str:
  """Names, sizes and mtimes of the files of {split: file}."""
  return local.fingerprint([local.stat_entry(p, s) for s, p in files.items()])
