"""Audio folders: WAV decoding, resampling, the folder: builder, bad files, batching."""
import logging
import wave

import ml_collections
import numpy as np
import pytest

from sslax.data import fetch
from sslax.data import readers
from sslax.data import sources
from sslax.data import waveforms


def write_wav(path, samples_TxC, rate, width):
  """PCM WAV from integer samples [T, C] (uint8 for 8-bit, int16 for 16-bit)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with wave.open(str(path), 'wb') as f:
    f.setnchannels(samples_TxC.shape[1])
    f.setsampwidth(width)
    f.setframerate(rate)
    f.writeframes(samples_TxC.astype('<i2' if width == 2 else np.uint8).tobytes())


def test_decode_8_and_16_bit_mono_and_stereo(tmp_path):
  write_wav(tmp_path / 'a.wav', np.array([[0], [16384], [-32768]]), 8000, 2)
  write_wav(tmp_path / 'b.wav', np.array([[128, 192], [0, 0], [255, 128]]), 11025, 1)
  x, rate = waveforms.decode_wav(str(tmp_path / 'a.wav'))
  assert rate == 8000 and x.dtype == np.float32
  np.testing.assert_array_equal(x, [0.0, 0.5, -1.0])
  x, rate = waveforms.decode_wav(str(tmp_path / 'b.wav'))
  assert rate == 11025
  np.testing.assert_allclose(x, [0.25, -1.0, (127 / 128) / 2])   # channels averaged
  (tmp_path / 'c.wav').write_bytes(b'RIFF????WAVEjunk')
  with pytest.raises(ValueError, match=r'c\.wav is not a readable PCM WAV'):
    waveforms.decode_wav(str(tmp_path / 'c.wav'))


def test_resample_is_band_limited():
  t = np.arange(4000) / 8000
  up = waveforms.resample(np.sin(2 * np.pi * 440 * t), 8000, 11025)
  assert len(up) == 5513
  inner = slice(100, -100)   # the ends see the signal's edges
  np.testing.assert_allclose(up[inner], np.sin(2 * np.pi * 440 * np.arange(5513) / 11025)[inner],
                             atol=1e-4)
  # 3 kHz cannot exist at 4 kHz sampling (Nyquist 2 kHz): removed, not aliased to 1 kHz.
  down = waveforms.resample(np.sin(2 * np.pi * 3000 * t), 8000, 4000)
  assert np.abs(down[inner]).max() < 1e-3


@pytest.mark.parametrize('rate_in, rate_out, n', [(22050, 8000, 331), (8000, 11025, 97),
                                                  (16000, 8000, 200), (8000, 8001, 50)])
def test_resample_equals_the_windowed_sinc_sum_per_output_sample(rate_in, rate_out, n):
  """The polyphase arrangement against the formula it rearranges, in float64, one output
  sample at a time: y(t) = sum_k x[k] c sinc(c (t - k)) kaiser((t - k) / half_width)."""
  x = np.random.default_rng(0).normal(size=n)
  c = min(1.0, rate_out / rate_in)
  half_width = np.ceil(waveforms._SINC_ZEROS / c)
  want = []
  for m in range(int(np.ceil(n * rate_out / rate_in))):
    d = m * rate_in / rate_out - np.arange(n)
    # The kernel's 2 half_width taps cover -half_width <= t - k < half_width.
    window = np.where((d >= -half_width) & (d < half_width), np.i0(waveforms._KAISER_BETA * np.sqrt(
        np.clip(1 - (d / half_width) ** 2, 0, None))) / np.i0(waveforms._KAISER_BETA), 0.0)
    want.append(np.sum(x * c * np.sinc(c * d) * window))
  np.testing.assert_allclose(waveforms.resample(x, rate_in, rate_out), want, rtol=0, atol=1e-6)


def _folder(root, rate=16000):
  rng = np.random.default_rng(0)
  for split, takes in (('train', 3), ('test', 1)):
    for label in ('one', 'two'):
      for take in range(takes):
        n = int(rng.integers(rate // 10, rate // 4))
        write_wav(root / split / label / f'{label}_{"ab"[take % 2]}_{take}.wav',
                  rng.integers(-2000, 2000, size=(n, 1)), rate, 2)
  return root


def _data_config(**kw):
  return ml_collections.ConfigDict({'sample_rate': 8000, 'clip_seconds': 0.2, 'tokenizer': '', **kw})


def test_audio_folder_builds_and_batches(tmp_path):
  root = _folder(tmp_path / 'speech')
  source, data_dir = f'folder:{root}', str(tmp_path / 'tfds')
  info = sources.info(source, data_dir=data_dir)
  assert info.num_classes == 2 and info.split_sizes == {'train': 6, 'test': 2}
  raw = sources.open_split(source, 'train', data_dir=data_dir)[0]
  assert raw['sample_rate'] == 16000 and raw['speaker'] == 0 and raw['label'] == 0
  records = readers.Records(source, 'train', data_dir=data_dir, in_memory=True,
                            transform=fetch.record_transform(_data_config()))
  batch = records.take(np.arange(6))
  assert batch['audio'].shape == (6, 1600) and batch['audio'].dtype == np.float32
  assert sorted(batch) == ['audio', 'audio_len', 'label', 'speaker']
  # Resampled 16 kHz -> 8 kHz: half the samples (clip 0.2 s = 1600 cuts the longer ones).
  expected = np.minimum(np.ceil(np.array(
      [len(waveforms.decode_wav(p)[0]) for p in sorted(map(str, root.glob('train/*/*.wav')))]) / 2),
      1600)
  np.testing.assert_array_equal(batch['audio_len'], expected)
  for row, n in zip(batch['audio'], batch['audio_len']):
    assert np.all(row[n:] == 0)
  np.testing.assert_array_equal(batch['label'], [0, 0, 0, 1, 1, 1])
  np.testing.assert_array_equal(batch['speaker'], [0, 0, 1, 0, 0, 1])   # sorted: x_a_0, x_a_2, x_b_1
  speakers = readers.Records(source, 'train', data_dir=data_dir, in_memory=True,
                             transform=fetch.record_transform(_data_config(label_key='speaker')))
  np.testing.assert_array_equal(speakers.take(np.arange(6))['label'], batch['speaker'])
  with pytest.raises(ValueError, match=r'holds audio, but config.data.sample_rate is not set'):
    readers.Records(source, 'train', data_dir=data_dir, in_memory=True)


def test_bad_wav_errors_naming_it_or_is_skipped_and_counted(tmp_path, caplog):
  root = _folder(tmp_path / 'speech')
  (root / 'train' / 'two' / 'two_b_9.wav').write_bytes(b'not a wav')
  source, data_dir = f'folder:{root}', str(tmp_path / 'tfds')
  with pytest.raises(ValueError, match=r'two_b_9\.wav is not a readable PCM WAV'):
    sources.info(source, data_dir=data_dir)
  with caplog.at_level(logging.WARNING):
    info = sources.info(source, data_dir=data_dir, bad_files='skip')
  assert info.split_sizes['train'] == 6
  assert 'skipped 1 undecodable WAV' in caplog.text
  with pytest.raises(ValueError, match=r"config.data.bad_files='ignore' is unknown"):
    sources.info(source, data_dir=data_dir, bad_files='ignore')


def test_empty_class_folder_is_named(tmp_path):
  root = _folder(tmp_path / 'speech')
  (root / 'test' / 'three').mkdir()
  (root / 'test' / 'three' / 'notes.txt').write_text('x')
  with pytest.raises(ValueError, match=r'class folder .*test/three has no \.wav files'):
    sources.info(f'folder:{root}', data_dir=str(tmp_path / 'tfds'))


def test_bad_split_name_and_unequal_classes_are_named(tmp_path):
  # The layout rules are class_folders.py's, shared with image folders.
  root = _folder(tmp_path / 'speech')
  (root / 'test' / 'two').rename(root / 'test' / 'deux')
  with pytest.raises(ValueError, match=r"missing: \['two'\], extra: \['deux'\]"):
    sources.info(f'folder:{root}', data_dir=str(tmp_path / 'tfds'))
  (root / 'test').rename(root / 'test-set')
  with pytest.raises(ValueError, match=r'split folder .*test-set: split names may only hold'):
    sources.info(f'folder:{root}', data_dir=str(tmp_path / 'tfds'))


def test_tfds_speech_commands_mocked_is_batched_like_a_folder(tmp_path, monkeypatch):
  import importlib
  import jax
  import tensorflow_datasets as tfds
  from sslax.methods import apc
  source, data_dir = 'tfds:speech_commands', str(tmp_path)
  # TFDS 4.9.10's mocked data source breaks on batched reads (its __getitems__ takes a
  # missing argument); Records falls back to one read per record without it.
  monkeypatch.setattr(sources.RandomAccess, '__getitems__', None)
  with tfds.testing.mock_data(num_examples=4):
    raw = sources.open_split(source, 'train', data_dir=data_dir)
    int16 = [np.asarray(raw.data[i]['audio']) for i in range(4)]
    assert raw.audio_rate == 16000 and int16[0].dtype == np.int16
    records = readers.Records(source, 'train', data_dir=data_dir, in_memory=True,
                              transform=fetch.record_transform(_data_config(clip_seconds=0.25)))
  batch = records.take(np.arange(4))
  assert sorted(batch) == ['audio', 'audio_len', 'label']
  assert batch['audio'].shape == (4, 2000) and batch['audio'].dtype == np.float32
  for row, n, x in zip(batch['audio'], batch['audio_len'], int16):
    # int16 / 32768 at 16 kHz, resampled to config.data.sample_rate = 8 kHz, zero-padded.
    expected = waveforms.resample(x / 32768.0, 16000, 8000)[:2000]
    assert n == len(expected)
    np.testing.assert_allclose(row[:n], expected, atol=1e-6)
    assert np.all(row[n:] == 0)
  config = importlib.import_module('sslax.configs.apc_audio').get_config('smoke')
  front = apc.front_end(config)
  front.check(batch)
  x_BxFxM, mask_BxF = jax.jit(front.features)(batch['audio'], batch['audio_len'])
  a = config.audio
  assert x_BxFxM.shape == (4, 1 + (2000 - a.n_fft) // a.hop, a.n_mels)
  assert np.all(np.isfinite(x_BxFxM))
  real_frames = np.maximum(1, (batch['audio_len'] - a.n_fft // 2 - 1) // a.hop + 1)
  np.testing.assert_array_equal(np.asarray(mask_BxF).sum(1), real_frames)


def test_clips_shorter_than_the_loss_needs_error_naming_the_file_or_are_skipped(tmp_path,
                                                                                caplog):
  import importlib
  root = _folder(tmp_path / 'speech')
  write_wav(root / 'train' / 'two' / 'two_b_9.wav', np.ones((100, 1)), 16000, 2)  # 50 at 8 kHz
  config = importlib.import_module('sslax.configs.apc_audio').get_config('smoke')
  config.data.update(source=f'folder:{root}', sample_rate=8000, clip_seconds=0.2)
  a = config.audio
  assert waveforms.frames_needed(config) == max(config.apc.steps_ahead) + 1 == 4
  cpc = importlib.import_module('sslax.configs.cpc_audio').get_config('smoke')
  masked = importlib.import_module('sslax.configs.masked_audio').get_config('smoke')
  assert waveforms.frames_needed(cpc) == 3 and waveforms.frames_needed(masked) == masked.masked_audio.span + 1
  assert waveforms.short_clip_policy(config) == ('pad', 0)

  def records(policy, in_memory=True):
    config.data.short_clips = policy
    return readers.Records(config.data.source, 'train', data_dir=str(tmp_path / 'tfds'),
                           in_memory=in_memory, transform=fetch.record_transform(config.data),
                           short_clips=waveforms.short_clip_policy(config), sample_rate=8000)
  assert len(records('pad')) == 7
  need = 3 * a.hop + a.n_fft // 2 + 1   # 4 frames: the last centre, 3 hops on, before the end
  config.data.short_clips = 'error'
  assert waveforms.short_clip_policy(config) == ('error', need)
  with pytest.raises(ValueError, match=rf'speech/train/two/two_b_9\.wav: 50 samples at '
                                       rf'config.data.sample_rate=8000 is shorter than the {need}'):
    records('error')
  with caplog.at_level(logging.WARNING):
    kept = records('skip')
  assert len(kept) == 6 and 'skipped 1 of 7 clips' in caplog.text
  assert kept.take(np.arange(6))['audio_len'].min() >= need
  streamed = records('skip', in_memory=False)   # read on demand: indices skip the short one
  assert len(streamed) == 6
  np.testing.assert_array_equal(streamed.take(np.arange(6))['audio'], kept.take(np.arange(6))['audio'])
  config.data.short_clips = 'drop'
  with pytest.raises(ValueError, match=r"config.data.short_clips='drop' is unknown"):
    fetch.record_transform(config.data)
