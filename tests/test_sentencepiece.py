"""SentencePiece: exact round trip, specials apart from pieces, one model per workdir."""
import os

import ml_collections
import numpy as np
import pytest

from sslax.data import tokenizers

_WORDS = 'the quick brown fox jumps over lazy dog then rests twice, or not at all!'.split()
CORPUS = [' '.join(np.random.default_rng(i).choice(_WORDS, 12)) + '\n' for i in range(400)]


@pytest.fixture(scope='module')
def spm_model(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('spm') / 'spm.model')
  tokenizers.train_sentencepiece(iter(CORPUS), path, vocab_size=300)
  return path


@pytest.mark.parametrize('text', ['', 'the quick brown fox\n\n  two  spaces, tabs\tend ',
                                  'héllo wörld ✓ 🙂 unseen: ЖЭЮ', ' leading space'])
def test_round_trip_is_exact_even_for_unseen_characters(spm_model, text):
  tok = tokenizers.SentencePieceTokenizer(spm_model)
  ids = tok.encode(text)
  assert ids.dtype == np.int32 and ((ids >= tok.NUM_SPECIAL) & (ids < tok.vocab_size)).all()
  assert tok.decode(ids) == text
  fixed = tok.fixed_length(text, 64)
  assert fixed.shape == (64,) and tok.decode(fixed) == text   # PAD is dropped on decode


def test_specials_never_collide_with_pieces(spm_model):
  tok = tokenizers.SentencePieceTokenizer(spm_model)
  assert tok.vocab_size == 300   # the requested size, specials included
  assert (tok.PAD, tok.MASK, tok.CLS) == (0, 1, 2) and tok.NUM_SPECIAL == 6
  pieces = [tok.piece(i) for i in range(tok.vocab_size)]
  assert pieces[:tok.NUM_SPECIAL] == list(tokenizers.SPECIALS)
  # No piece spells a special token, so no text can encode to one...
  assert not set(pieces[tok.NUM_SPECIAL:]) & set(tokenizers.SPECIALS)
  ids = tok.encode(' '.join(tokenizers.SPECIALS) + ' [PAD][MASK]')
  assert (ids >= tok.NUM_SPECIAL).all()
  # ...and decoding drops the specials that the model or the padding put in.
  word = tok.encode('fox')
  assert tok.decode(np.concatenate([[tok.CLS], word, [tok.MASK, tok.PAD]])) == 'fox'
  # Subwords, not bytes: a frequent word is one piece.
  assert len(tok.encode('quick')) == 1


def _config(tmp_path, **data):
  (tmp_path / 'corpus.txt').write_text(''.join(CORPUS))
  c = ml_collections.ConfigDict({'data': dict(
      source=f'text:{tmp_path / "corpus.txt"}', train_split='train',
      data_dir=str(tmp_path / 'tfds'), tokenizer='sentencepiece', seq_len=16, vocab_size=400,
      tokenizer_dir='')})
  c.data.update(data)
  return c


def test_trained_once_per_workdir_then_reused_and_checked(tmp_path, monkeypatch):
  workdir = str(tmp_path / 'run')
  # Evaluation never trains: without the run's model it stops, naming the file.
  with pytest.raises(FileNotFoundError, match='spm.model'):
    tokenizers.prepare(_config(tmp_path), workdir, train_if_missing=False)
  prepared = tokenizers.prepare(_config(tmp_path), workdir)
  model = os.path.join(workdir, 'tokenizer', 'spm.model')
  assert prepared.data.tokenizer_dir == os.path.dirname(model) and os.path.exists(model)
  transform = tokenizers.record_transform(prepared.data)
  tokens = transform({'text': b'the lazy dog', 'label': 1})['tokens']
  assert tokens.shape == (16,) and tokenizers.make(prepared.data).decode(tokens) == 'the lazy dog'

  # A resumed run (or sslax.evaluate) reuses the stored model: no second training.
  def no_training(*args, **kwargs):
    raise AssertionError('retrained a tokenizer the workdir already has')
  monkeypatch.setattr(tokenizers, 'train_sentencepiece', no_training)
  again = tokenizers.prepare(_config(tmp_path), workdir)
  assert again.data.tokenizer_dir == prepared.data.tokenizer_dir
  assert tokenizers.prepare(_config(tmp_path), workdir, train_if_missing=False)

  # A config the stored model was not trained for is an error naming the key.
  with pytest.raises(ValueError, match=r'config.data.vocab_size: stored 400, config 500'):
    tokenizers.prepare(_config(tmp_path, vocab_size=500), workdir)
  with pytest.raises(ValueError, match=r'config.data.vocab_size=100 is too small'):
    tokenizers.prepare(_config(tmp_path, vocab_size=100), str(tmp_path / 'other'))
  # Before prepare, make() says what is missing.
  with pytest.raises(ValueError, match='tokenizers.prepare'):
    tokenizers.make(_config(tmp_path).data)
