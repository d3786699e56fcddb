"""sslax.load / embed / export on an audio (CPC, FSDD) workdir: waveforms at their own rate
in, the evaluators' features out, from a moved workdir whose data sets were deleted."""
import numpy as np
import pytest

from tests import encoder_checks
from tests.test_audio_methods import audio_config


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('audio')
  # A few clips of every digit (splits are stored by class) keep the evaluators' pass short.
  per_digit = lambda split, size, n: '+'.join(f'{split}[{size * d}:{size * d + n}]'
                                              for d in range(10))
  config = audio_config('cpc', tmp / 'tfds', **{'eval.test_split': per_digit('test', 30, 4),
                                                 'eval.train_split': per_digit('train', 270, 8)})
  return (tmp, *encoder_checks.pretrain(config, tmp))


def test_load_embed_export(run):
  tmp, workdir, expected, raw = run
  rates = {int(r['sample_rate']) for r in raw}
  assert len(rates) == 1   # FSDD is 8 kHz throughout; the model runs at config.data.sample_rate
  waves = [np.asarray(r['audio']) for r in raw]
  encoder = encoder_checks.check_load_matches_evaluators(workdir, expected, waves,
                                                         sample_rate=rates.pop())
  assert encoder.modality == 'audio' and set(encoder.input_spec) == {'audio', 'audio_len'}
  encoder_checks.check_export(encoder, tmp, encoder_checks.prepared_test_split(encoder, raw),
                              expected)


def test_wrong_modality_and_missing_rate(run):
  import sslax
  encoder = sslax.load(str(run[1]))
  with pytest.raises(ValueError, match='takes audio'):
    encoder.embed({'text': ['one']})
  with pytest.raises(ValueError, match='sample_rate'):
    encoder.embed([np.zeros(800, np.float32)])
