"""sslax.load / embed / export on a text (MLM, SentencePiece) workdir: raw strings in, the
evaluators' features out, from a moved workdir whose data sets were deleted."""
import numpy as np
import pytest

from tests import encoder_checks
from tests.test_text_methods import text_config


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('text')
  config = text_config('mlm', tmp / 'tfds', **{'data.tokenizer': 'sentencepiece',
                                                'data.vocab_size': 400})
  return (tmp, *encoder_checks.pretrain(config, tmp))


def test_load_embed_export(run):
  tmp, workdir, expected, raw = run
  texts = [r['text'].item().decode() for r in raw]   # TFDS Text: a numpy bytes scalar
  encoder = encoder_checks.check_load_matches_evaluators(workdir, expected, texts)
  assert encoder.modality == 'text' and encoder.input_spec == {
      'tokens': {'shape': [32], 'dtype': 'int32'}}
  # The tokenizer is the workdir's own copy, not the path it was trained at.
  assert encoder.config.data.tokenizer_dir == str(workdir / 'tokenizer')
  prepared = encoder_checks.prepared_test_split(encoder, raw)
  np.testing.assert_array_equal(prepared['tokens'], encoder.prepare(texts)['tokens'])
  out = encoder_checks.check_export(encoder, tmp, prepared, expected)
  assert (out / 'tokenizer' / 'spm.model').exists()


def test_wrong_modality(run):
  import sslax
  encoder = sslax.load(str(run[1]))
  with pytest.raises(ValueError, match='takes text'):
    encoder.embed({'image': np.zeros((1, 8, 8, 1), np.uint8)})
  with pytest.raises(ValueError, match='list of strings'):
    encoder.embed([np.zeros(3)])
