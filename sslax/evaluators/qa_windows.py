"""Question + context packed into fixed-length windows, and predicted spans back to text.

Each window is `[CLS] question [SEP] context piece [SEP]`, PAD to `seq_len` (Devlin et al.
2019, SQuAD fine-tuning). A context longer than one window's room is covered by several
windows whose starts are `doc_stride` context tokens apart (BERT's document stride), so
every context token is in at least one window when doc_stride <= the room. Each window keeps
the character span [begin, end) of each of its context tokens (`tokenizers.*.encode_offsets`)
and -1 elsewhere, so a predicted token span maps back to characters of the context with
either tokenizer.

A training window's target is the token span of the first gold answer when the whole answer
is inside the window, else (0, 0): the CLS position, BERT's "not in this window".

Shape suffixes: W = windows, L = seq_len.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from sslax import errors
from sslax.data.builders import squad


@dataclasses.dataclass
class Windows:
  tokens_WxL: np.ndarray      # int32
  begin_WxL: np.ndarray       # int64 character start of each context token, -1 elsewhere
  end_WxL: np.ndarray         # int64 character end (exclusive), -1 elsewhere
  start_W: np.ndarray         # int32 target start position (0: answer not in the window)
  end_W: np.ndarray           # int32 target end position (inclusive)
  question_W: np.ndarray      # int64 index of the window's question


def _answer_tokens(begin: np.ndarray, end: np.ndarray, start_char: int,
                   end_char: int) -> tuple[int, int]:
  """First and last context token overlapping characters [start_char, end_char)."""
  first = int(np.argmax(end > start_char))
  last = int(len(begin) - 1 - np.argmax((begin < end_char)[::-1]))
  return first, last


def make(tokenizer, questions: Sequence[squad.Question], *, seq_len: int, doc_stride: int,
         max_query_tokens: int, key: str = 'config.evals.qa') -> Windows:
  """All windows of `questions`, in question order; `key`: the evaluator's config key, which
  errors name."""
  cache = {}
  rows = {k: [] for k in ('tokens', 'begin', 'end', 'start', 'stop', 'question')}
  for qi, q in enumerate(questions):
    if q.context not in cache:
      cache[q.context] = tokenizer.encode_offsets(q.context)
    c_ids, c_begin, c_end = cache[q.context]
    q_ids = tokenizer.encode(q.question)[:max_query_tokens]
    room = seq_len - len(q_ids) - 3
    if room < 1 or doc_stride > room:
      raise errors.ConfigError(
          f'config.data.seq_len={seq_len} leaves {room} context tokens per window after a '
          f'{len(q_ids)}-token question, less than {key}.doc_stride={doc_stride}; raise '
          f'config.data.seq_len or lower {key}.doc_stride / {key}.max_query_tokens.')
    text, a = q.answers[0]
    first, last = _answer_tokens(c_begin, c_end, a, a + len(text))
    offset = len(q_ids) + 2
    for s in range(0, max(len(c_ids) - room, 0) + doc_stride, doc_stride):
      piece = slice(s, min(s + room, len(c_ids)))
      n = piece.stop - piece.start
      tokens = np.full(seq_len, tokenizer.PAD, np.int32)
      tokens[:offset + n + 1] = np.concatenate(
          [[tokenizer.CLS], q_ids, [tokenizer.SEP], c_ids[piece], [tokenizer.SEP]])
      begin, end = np.full(seq_len, -1, np.int64), np.full(seq_len, -1, np.int64)
      begin[offset:offset + n], end[offset:offset + n] = c_begin[piece], c_end[piece]
      inside = piece.start <= first and last < piece.stop
      rows['tokens'].append(tokens)
      rows['begin'].append(begin)
      rows['end'].append(end)
      rows['start'].append(offset + first - s if inside else 0)
      rows['stop'].append(offset + last - s if inside else 0)
      rows['question'].append(qi)
      if piece.stop >= len(c_ids):
        break
  return Windows(np.stack(rows['tokens']), np.stack(rows['begin']), np.stack(rows['end']),
                 np.asarray(rows['start'], np.int32), np.asarray(rows['stop'], np.int32),
                 np.asarray(rows['question'], np.int64))


def best_spans(start_WxL: np.ndarray, end_WxL: np.ndarray, windows: Windows,
               contexts: Sequence[str], *, max_answer_tokens: int,
               top_k: int = 20) -> list[str]:
  """The predicted answer text of each question: over its windows, the context span
  (start <= end, at most `max_answer_tokens` tokens) with the highest start + end logit,
  among each window's `top_k` starts and ends (BERT's n-best search)."""
  best = [(-np.inf, '')] * len(contexts)
  for w in range(len(windows.question_W)):
    real = windows.begin_WxL[w] >= 0
    s_logit = np.where(real, start_WxL[w], -np.inf)
    e_logit = np.where(real, end_WxL[w], -np.inf)
    starts = np.argsort(-s_logit)[:top_k]
    ends = np.argsort(-e_logit)[:top_k]
    q = int(windows.question_W[w])
    for s in starts:
      for e in ends:
        if not (real[s] and real[e] and s <= e < s + max_answer_tokens):
          continue
        value = s_logit[s] + e_logit[e]
        if value > best[q][0]:
          text = contexts[q][windows.begin_WxL[w, s]:windows.end_WxL[w, e]]
          best[q] = (value, text)
  # SentencePiece pieces carry the space before a word ('▁Fort'): strip it.
  return [text.strip() for _, text in best]
