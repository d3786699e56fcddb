"""Sequence packing: k records' tokens per training row (config.data.pack_sequences)."""
from collections.abc import Mapping

import ml_collections
import numpy as np

from sslax import errors
from sslax.data import tokenizers


def pack_tokens(batch: Mapping[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
  """Rows of k consecutive records' tokens, PAD dropped, joined by SEP and cut to the length.

  Short records (SST-2's phrases: 16 of 64 tokens on average) otherwise leave most of each
  row PAD, which the model still computes; RoBERTa's FULL-SENTENCES packing (Liu et al.
  2019) fills rows across sentence boundaries instead. Only `tokens` is kept: a label or other
  per-record feature does not describe a packed row.
  """
  tokens_NxL = np.asarray(batch['tokens'])
  n, length = tokens_NxL.shape
  out_BxL = np.full((n // k, length), tokenizers.ByteTokenizer.PAD, tokens_NxL.dtype)
  sep = np.array([tokenizers.ByteTokenizer.SEP], tokens_NxL.dtype)
  for r in range(n // k):
    rows = [row[row != tokenizers.ByteTokenizer.PAD] for row in tokens_NxL[r * k:(r + 1) * k]]
    joined = np.concatenate([piece for row in rows for piece in (row, sep)][:-1])[:length]
    out_BxL[r, :len(joined)] = joined
  return {'tokens': out_BxL}


def check_pack(data_config: ml_collections.ConfigDict) -> int:
  """`config.data.pack_sequences` (records per training row), checked."""
  k = data_config.get('pack_sequences', 1)
  if not isinstance(k, int) or k < 1:
    raise errors.ConfigError(
        f'config.data.pack_sequences={k!r} must be an integer >= 1 (1: one '
        'record per row; k: k records\' tokens packed into each training row).')
  if k > 1 and not data_config.get('tokenizer', ''):
    raise errors.ConfigError(f'config.data.pack_sequences={k} packs token rows, but '
                             'config.data.tokenizer is not set; set 1, or use a text:/tsv: source '
                             'with a tokenizer.')
  return k
