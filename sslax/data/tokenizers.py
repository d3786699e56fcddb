"""Tokenizers: raw text records → fixed-length `tokens`, applied when the pipeline fetches records.

Text sources store raw UTF-8 (`builders/text.py`, `builders/tsv.py`); the tokenizer named by
`config.data.tokenizer` turns each record's `text` into `tokens` int32 [data.seq_len] here, on
the host, before records are stacked into batches. Keeping token ids out of the stored data
means a tokenizer or length change never rebuilds a data set, and the trainer, the evaluators
and the Method contract only ever see numeric arrays.

Both tokenizers put the same special tokens first (PAD=0, MASK, CLS, SEP, BOS, EOS) and
their own pieces after them, so a piece can never collide with a special token:

- `'byte'`: every UTF-8 byte is one token; any text round-trips exactly, nothing to train.
- `'sentencepiece'` (Kudo & Richardson 2018): a unigram-LM subword vocabulary of
  `config.data.vocab_size` ids (specials included) trained on the `data.train_split` of
  `data.source` the first time a run starts, and stored in the workdir
  (`WORKDIR/tokenizer/spm.model`, or `config.data.tokenizer_dir`), next to the checkpoints, so
  a resumed run, `python -m sslax.evaluate` and fine-tuning all read the same vocabulary.
  Byte fallback, identity normalisation and a piece for '\n' make the round trip exact.

`prepare(config, workdir)` does the training / loading and returns the config that `make`
and `record_transform` read; call it once before building a method.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
import copy
import functools
import io
import json
from typing import Any

import ml_collections
import numpy as np

from sslax import errors
from sslax import storage   # a workdir or tokenizer_dir may be gs://
from sslax.data import sources

TOKENIZERS = ('byte', 'sentencepiece')
SPECIALS = ('[PAD]', '[MASK]', '[CLS]', '[SEP]', '[BOS]', '[EOS]')
SPM_MODEL = 'spm.model'
SPM_META = 'spm.json'   # what the model was trained for: checked against the config on reuse


class _Specials:
  """Ids 0..NUM_SPECIAL-1: PAD (also what models mask out), MASK, CLS, SEP, BOS, EOS."""
  PAD, MASK, CLS, SEP, BOS, EOS = range(len(SPECIALS))
  SPECIALS = SPECIALS
  NUM_SPECIAL = len(SPECIALS)

  def encode(self, text: str | bytes) -> np.ndarray:
    raise NotImplementedError

  def fixed_length(self, text: str | bytes, length: int) -> np.ndarray:
    """Ids [length] int32: the first `length` tokens, right-padded with PAD."""
    ids = self.encode(text)[:length]
    return np.pad(ids, (0, length - len(ids)), constant_values=self.PAD)


class ByteTokenizer(_Specials):
  """UTF-8 bytes as token ids `NUM_SPECIAL + byte`."""

  vocab_size = len(SPECIALS) + 256

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

  def encode_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids [n], begin [n], end [n]): each byte token with the character span [begin, end) of
    the character it is part of, so a span of tokens maps back to a span of `text` (QA)."""
    ids = self.encode(text)
    widths = np.array([len(c.encode('utf-8')) for c in text], np.int64)
    char_of_byte = np.repeat(np.arange(len(text)), widths)
    return ids, char_of_byte, char_of_byte + 1


class SentencePieceTokenizer(_Specials):
  """A trained SentencePiece model; its piece i is token id NUM_SPECIAL + i."""

  def __init__(self, model_path: str):
    import sentencepiece as spm   # only runs that use it need the package
    self.model_path = model_path
    # From bytes: the model may sit in a gs:// workdir, which SentencePiece cannot open.
    self._sp = spm.SentencePieceProcessor(model_proto=storage.path(model_path).read_bytes())
    self.vocab_size = self.NUM_SPECIAL + self._sp.vocab_size()

  def encode(self, text: str | bytes) -> np.ndarray:
    text = bytes(text).decode('utf-8') if not isinstance(text, str) else text
    return np.asarray(self._sp.encode(text), np.int32) + self.NUM_SPECIAL

  def decode(self, ids: np.ndarray) -> str:
    """Text of the piece tokens in `ids`; special tokens are dropped."""
    ids = np.asarray(ids)
    return self._sp.decode((ids[ids >= self.NUM_SPECIAL] - self.NUM_SPECIAL).tolist())

  def encode_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids [n], begin [n], end [n]) with the character span [begin, end) of each piece.

    The Python wrapper's `immutable_proto` pieces carry begin/end in characters of the str
    passed in (checked on accented and CJK text; the C++ API counts bytes). Two kinds of
    piece cover no character: the dummy-prefix '▁' (0, 0), and all but the last byte-fallback
    piece of a multi-byte character; each takes the span of the next piece that does cover
    one, so every token points at real text.
    """
    pieces = self._sp.encode(text, out_type='immutable_proto').pieces
    ids = np.array([p.id for p in pieces], np.int32) + self.NUM_SPECIAL
    begin = np.array([p.begin for p in pieces], np.int64)
    end = np.array([p.end for p in pieces], np.int64)
    following = (len(text), len(text))
    for i in range(len(pieces) - 1, -1, -1):
      if end[i] > begin[i]:
        following = (begin[i], end[i])
      else:
        begin[i], end[i] = following
    return ids, begin, end

  def piece(self, token_id: int) -> str:
    return (SPECIALS[token_id] if token_id < self.NUM_SPECIAL
            else self._sp.id_to_piece(int(token_id) - self.NUM_SPECIAL))


def train_sentencepiece(texts: Iterator[str], model_path: str, vocab_size: int) -> None:
  """Trains a unigram SentencePiece model of `vocab_size` ids (specials included) on `texts`.

  SentencePiece's own pad/bos/eos are off and its <unk> is piece 0; our specials sit before
  every piece (`SentencePieceTokenizer`), so they need no place in its vocabulary.
  """
  import sentencepiece as spm
  buf = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=texts, model_writer=buf, vocab_size=vocab_size - len(SPECIALS),
      model_type='unigram', byte_fallback=True, user_defined_symbols=['\n'],
      unk_id=0, pad_id=-1, bos_id=-1, eos_id=-1, normalization_rule_name='identity',
      remove_extra_whitespaces=False, max_sentence_length=1 << 20, num_threads=1,
      # A small corpus may not hold vocab_size pieces: take what it has rather than fail.
      hard_vocab_limit=False, minloglevel=2)
  path = storage.path(model_path)
  path.parent.mkdir(parents=True, exist_ok=True)
  # Written aside, then renamed: a killed run never leaves half a model behind (on gs:// the
  # upload itself is all-or-nothing).
  tmp = path.with_name(path.name + '.tmp')
  tmp.write_bytes(buf.getvalue())
  tmp.rename(path)


def _train_texts(data_config: ml_collections.ConfigDict) -> Iterator[str]:
  split = sources.open_split(data_config.source, data_config.train_split,
                             data_dir=data_config.data_dir or None)
  for i in range(len(split)):
    record = split[i]
    if 'text' not in record:
      raise errors.ConfigError(
          f"config.data.tokenizer='sentencepiece' trains on text, but config.data."
          f'source={data_config.source!r} holds {sorted(record)}; use a text:/tsv: '
          'source.')
    text = record['text']
    text = text.item() if hasattr(text, 'item') else text
    yield text.decode('utf-8') if isinstance(text, bytes) else str(text)


def _meta(data_config: ml_collections.ConfigDict) -> dict[str, Any]:
  return {'vocab_size': int(data_config.vocab_size), 'source': data_config.source,
          'train_split': data_config.train_split}


def prepare(config: ml_collections.ConfigDict, workdir: str, *,
            train_if_missing: bool = True) -> ml_collections.ConfigDict:
  """The config with `data.tokenizer_dir` resolved, its tokenizer trained there if needed.

  For 'sentencepiece': uses `data.tokenizer_dir` ('' = WORKDIR/tokenizer); trains a model on
  the training split when none is there, else reuses it after checking that it was trained for
  this `data.vocab_size`, `data.source` and `data.train_split` (ValueError naming the keys if
  not); with `train_if_missing=False` (evaluation) a missing model is an error. Other tokenizers: the config unchanged. Only process 0 trains; the others wait for it.
  """
  d = config.data
  if d.get('tokenizer', '') != 'sentencepiece':
    return config
  if int(d.vocab_size) <= len(SPECIALS) + 256 + 1:
    raise errors.ConfigError(
        f'config.data.vocab_size={d.vocab_size} is too small for SentencePiece '
        f'with byte fallback: it needs more than {len(SPECIALS) + 257} ids '
        f'({len(SPECIALS)} specials, <unk>, 256 bytes); try 4096.')
  tok_dir = d.tokenizer_dir or str(storage.path(workdir) / 'tokenizer')
  model_path, meta_path = (storage.path(tok_dir) / n for n in (SPM_MODEL, SPM_META))
  import jax
  if train_if_missing and jax.process_index() == 0 and not model_path.exists():
    print(f'Training a SentencePiece vocabulary of {d.vocab_size} on {d.source} '
          f'({d.train_split}) into {model_path}.')
    train_sentencepiece(_train_texts(d), str(model_path), int(d.vocab_size))
    meta_path.write_text(json.dumps(_meta(d), indent=2, sort_keys=True))
  if train_if_missing and jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices('sslax tokenizer ready')
  if not model_path.exists():
    raise errors.DataNotFoundError(
        f'{model_path} (the SentencePiece model of this run) is missing; '
        'it is written when training starts. Point config.data.tokenizer_dir '
        'at the folder holding spm.model.')
  stored = {}
  if meta_path.exists():
    stored = json.loads(meta_path.read_text())
  differ = [f'config.data.{k}: stored {stored.get(k)!r}, config {v!r}'
            for k, v in _meta(d).items() if stored.get(k) != v]
  if differ:
    raise errors.ConfigError(
        f'The SentencePiece model in {tok_dir} was trained for other settings '
        f'({"; ".join(differ)}). Restore those values, use a new --workdir, or point '
        'config.data.tokenizer_dir at an empty folder to train a new one.')
  config = copy.deepcopy(config)
  config.data.tokenizer_dir = tok_dir
  return config


@functools.lru_cache(maxsize=8)
def _sentencepiece(model_path: str) -> SentencePieceTokenizer:
  return SentencePieceTokenizer(model_path)


def make(data_config: ml_collections.ConfigDict) -> ByteTokenizer | SentencePieceTokenizer:
  """The tokenizer `config.data` names (for SentencePiece, after `prepare`)."""
  name = data_config.get('tokenizer', '')
  if name == 'byte':
    return ByteTokenizer()
  if name == 'sentencepiece':
    if not data_config.get('tokenizer_dir', ''):
      raise errors.ConfigError(
          "config.data.tokenizer='sentencepiece' needs its trained model: call "
          'tokenizers.prepare(config, workdir) first (sslax.main and '
          'sslax.evaluate do), or set config.data.tokenizer_dir to a folder '
          f'holding {SPM_MODEL}.')
    return _sentencepiece(str(storage.path(data_config.tokenizer_dir) / SPM_MODEL))
  raise errors.ConfigError(f'config.data.tokenizer={name!r} is unknown; choose one of {TOKENIZERS} '
                           "(or '' for sources without text).")


def vocab_size(data_config: ml_collections.ConfigDict) -> int:
  """The vocabulary `config.data.tokenizer` produces (model embedding tables use it)."""
  return make(data_config).vocab_size


RecordTransform = Callable[[Mapping[str, Any]], dict[str, Any]]


def record_transform(data_config: ml_collections.ConfigDict) -> RecordTransform | None:
  """record → record with `text` replaced by `tokens` int32 [seq_len]; None without a tokenizer."""
  name = data_config.get('tokenizer', '')
  if not name:
    return None
  tokenizer = make(data_config)
  seq_len = int(data_config.get('seq_len', 0))
  if seq_len <= 0:
    raise errors.ConfigError(
        f'config.data.seq_len={seq_len} must be positive when '
        f'config.data.tokenizer={name!r}; set it to the token length of a sequence.')

  def transform(record: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != 'text'}
    if 'text' in record:
      text = record['text']
      out['tokens'] = tokenizer.fixed_length(text.item() if hasattr(text, 'item') else text,
                                             seq_len)
    return out
  return transform
