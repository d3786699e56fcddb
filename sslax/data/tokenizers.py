"""Tokenizers: raw text records → fixed-length `tokens`, applied when the pipeline fetches records.

Text sources store raw UTF-8 (`builders/text.py`, `builders/tsv.py`); the tokenizer named by
`config.data.tokenizer` turns each record's `text` into `tokens` int32 [data.seq_len] here, on
the host, before records are stacked into batches. Keeping token ids out of the stored data
means a tokenizer or length change never rebuilds a data set, and the trainer, the evaluators
and the Method contract only ever see numeric arrays.

Byte-level (`'byte'`): every UTF-8 byte is one token, shifted past the special tokens, so any
text round-trips exactly and there is nothing to train. SentencePiece is not implemented yet.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ml_collections
import numpy as np

TOKENIZERS = ('byte',)


class ByteTokenizer:
  """UTF-8 bytes as token ids `NUM_SPECIAL + byte`; ids below NUM_SPECIAL are special tokens."""

  PAD, MASK, CLS, SEP, BOS, EOS = range(6)
  SPECIALS = ('[PAD]', '[MASK]', '[CLS]', '[SEP]', '[BOS]', '[EOS]')
  NUM_SPECIAL = len(SPECIALS)
  vocab_size = NUM_SPECIAL + 256

  def encode(self, text: str | bytes) -> np.ndarray:
    """Token ids [n] int32 of the text's UTF-8 bytes (no specials added)."""
    data = text.encode('utf-8') if isinstance(text, str) else bytes(text)
    return np.frombuffer(data, np.uint8).astype(np.int32) + self.NUM_SPECIAL

  def decode(self, ids: np.ndarray) -> str:
    """Text of the byte tokens in `ids`; special tokens (PAD, MASK, ...) are dropped."""
    ids = np.asarray(ids)
    data = (ids[ids >= self.NUM_SPECIAL] - self.NUM_SPECIAL).astype(np.uint8).tobytes()
    # A truncated sequence can end mid-character; 'replace' shows it instead of failing.
    return data.decode('utf-8', errors='replace')

  def fixed_length(self, text: str | bytes, length: int) -> np.ndarray:
    """Ids [length] int32: the first `length` tokens, right-padded with PAD."""
    ids = self.encode(text)[:length]
    return np.pad(ids, (0, length - len(ids)), constant_values=self.PAD)


def make(name: str) -> ByteTokenizer:
  if name == 'byte':
    return ByteTokenizer()
  raise ValueError(f'config.data.tokenizer={name!r} is unknown; choose one of {TOKENIZERS} '
                   "(or '' for sources without text).")


def vocab_size(data_config: ml_collections.ConfigDict) -> int:
  """The vocabulary `config.data.tokenizer` produces (model embedding tables use it)."""
  return make(data_config.get('tokenizer', '')).vocab_size


RecordTransform = Callable[[Mapping[str, Any]], dict[str, Any]]


def record_transform(data_config: ml_collections.ConfigDict) -> RecordTransform | None:
  """record → record with `text` replaced by `tokens` int32 [seq_len]; None without a tokenizer."""
  name = data_config.get('tokenizer', '')
  if not name:
    return None
  tokenizer = make(name)
  seq_len = int(data_config.get('seq_len', 0))
  if seq_len <= 0:
    raise ValueError(f'config.data.seq_len={seq_len} must be positive when '
                     f'config.data.tokenizer={name!r}; set it to the token length of a sequence.')

  def transform(record: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != 'text'}
    if 'text' in record:
      text = record['text']
      out['tokens'] = tokenizer.fixed_length(text.item() if hasattr(text, 'item') else text,
                                             seq_len)
    return out
  return transform
