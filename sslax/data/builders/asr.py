"""`asr:DIR`: speech with transcripts, `DIR/<split>.tsv` (header `path<TAB>text`) + WAVs.

Paths in the TSV are relative to DIR (LJSpeech's layout in ../shared/data/ljspeech). Every
WAV is decoded once, at build time (`waveforms.decode_wav`), and stored as float32 mono
samples at the file's own rate with that rate, as audio folders are, so pretraining and the
`asr` evaluator resample it to `config.data.sample_rate` at fetch like any audio source.

The transcript is stored as `transcript` (not `text`, which the pipeline would tokenise):
pretraining ignores it; the `asr` evaluator reads it through `transcripts`.

Transcripts are normalised to the output alphabet (`ALPHABET`) when read: lower case, a
hyphen becomes a space (`well-known` is two words to a listener), the punctuation in
`DROPPED` is removed (it is not spoken), and runs of spaces shrink to one. Any other
character (a digit, an accented letter, a symbol) is refused with the file, line and
character: mapping "1984" or "é" to letters is language-specific work the data owner
should do, and silently dropping it would make the reference disagree with the audio.
An empty transcript (after normalising) and a missing WAV are errors naming file and line.
"""
from __future__ import annotations

import os
import re
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from sslax import errors
from sslax.data import waveforms
from sslax.data.builders import local
from sslax.data.builders import split_paths

HEADER = ('path', 'text')
ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"   # CTC's labels 1..28; 0 is the blank
DROPPED = set('.,;:!?"()[]')
_SPACES = re.compile(r' +')


def normalize(text: str, where: str) -> str:
  """`text` in ALPHABET (see the module doc); ValueError naming `where` otherwise."""
  out = []
  for c in text.lower().replace('\t', ' '):
    if c == '-':
      out.append(' ')
    elif c in ALPHABET:
      out.append(c)
    elif c not in DROPPED:
      raise errors.DataError(f'{where}: character {c!r} (U+{ord(c):04X}) is outside the output '
                             f'alphabet {ALPHABET!r}. Fix: spell it out in letters (e.g. digits as '
                             'words, accents removed) in the transcript.')
  text = _SPACES.sub(' ', ''.join(out)).strip()
  if not text:
    raise errors.DataError(f'{where}: the transcript is empty (or only punctuation). Fix: give '
                           'the clip its transcript, or remove the line.')
  return text


def split_files(root: str) -> dict[str, str]:
  """{split: DIR/<split>.tsv}."""
  return split_paths.in_folder(root, '.tsv')


def read_tsv(path: str) -> list[tuple[str, str, str]]:
  """[(absolute WAV path, normalised transcript, 'file:line')] of one split's TSV."""
  root = os.path.dirname(path)
  with open(path, encoding='utf-8') as f:
    lines = [l.rstrip('\r\n') for l in f]
  if not lines or lines[0].split('\t')[:2] != list(HEADER):
    raise errors.DataError(f'{path}:1: the header is {(lines or [""])[0][:80]!r}; expected '
                           '"path<TAB>text".')
  rows = []
  for number, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    where = f'{path}:{number}'
    wav, sep, text = line.partition('\t')
    if not sep:
      raise errors.DataError(f'{where}: no TAB between the WAV path and the transcript.')
    wav_path = os.path.join(root, wav)
    if not os.path.isfile(wav_path):
      raise errors.DataNotFoundError(
          f'{where}: WAV {wav!r} not found (looked for {wav_path}). Fix: paths are relative to '
          'the folder holding the .tsv.')
    rows.append((wav_path, normalize(text, where), where))
  if not rows:
    raise errors.DataError(f'{path} has a header but no clips.')
  return rows


def transcripts(root: str, split: str) -> list[str]:
  """The normalised transcripts of a split, in stored order (what `asr` scores against)."""
  files = split_files(root)
  if not files:
    # As squad.questions: the folder was checked before training but may be gone since.
    raise errors.DataNotFoundError(
        f'asr:{root}: {os.path.abspath(os.path.expanduser(root))} holds no <split>.tsv. Fix: '
        'point the source at asr:DIR with DIR/train.tsv and DIR/test.tsv (header '
        '"path<TAB>text", WAV paths relative to DIR).')
  if split not in files:
    raise errors.DataError(f'asr:{root} has no split {split!r}; available: {", ".join(files)}.')
  return [text for _, text, _ in read_tsv(files[split])]


def fingerprint(root: str) -> str:
  entries = []
  for split, tsv in split_files(root).items():
    entries.append(local.stat_entry(tsv, split))
    with open(tsv, encoding='utf-8') as f:
      for line in list(f)[1:]:
        wav = os.path.join(os.path.dirname(tsv), line.split('\t')[0])
        if line.strip() and os.path.isfile(wav):
          entries.append(local.stat_entry(wav))
  return local.fingerprint(entries)


def make_config(root: str) -> local.PathConfig:
  files = split_files(root)
  if not files:
    raise errors.DataNotFoundError(f'asr:{root} holds no <split>.tsv file.')
  items = {}
  for split, tsv in files.items():
    rows = []
    for wav, text, where in read_tsv(tsv):
      try:
        audio, rate = waveforms.decode_wav(wav)
      except ValueError as e:
        raise errors.DataError(f'{where}: {e}') from None
      rows.append((audio, rate, text, os.path.relpath(wav, os.path.dirname(tsv))))
    items[split] = rows
  return local.PathConfig(name=local.config_name(root), description=f'Speech from {root}',
                          path=os.path.abspath(os.path.expanduser(root)), num_classes=None,
                          payload={'items': items})


class SslaxAsr(local.LocalBuilder):
  """Mono waveforms at their own rate with normalised transcripts, in TSV order."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'audio float32 [T], sample_rate, transcript, file.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=self.builder_config.description,
        features=tfds.features.FeaturesDict({
            'audio': tfds.features.Tensor(shape=(None,), dtype=np.float32,
                                          encoding=tfds.features.Encoding.BYTES),
            'sample_rate': tfds.features.Tensor(shape=(), dtype=np.int32),
            'transcript': tfds.features.Text(),
            'file': tfds.features.Text()}),
        disable_shuffling=True)   # index i is data line i + 2 of the split's .tsv

  def _generate_examples(self, rows) -> Iterator:
    for i, (audio, rate, text, path) in enumerate(rows):
      yield i, {'audio': audio, 'sample_rate': np.int32(rate), 'transcript': text, 'file': path}


def prepare(root: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """Builds (once per version of the folder) and returns a read-only builder for `asr:root`."""
  return local.build_path(SslaxAsr, root, data_dir, fingerprint=fingerprint,
                          make_config=make_config)
