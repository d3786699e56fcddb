"""Waveforms on the host: WAV decoding, resampling, and fixed-length clips for batching.

Audio sources store each recording as decoded float32 mono samples at the file's own rate
(`builders/audio_folder.py`); the rate a model wants (`config.data.sample_rate`) and the clip
length (`config.data.clip_seconds`) are training choices applied when the pipeline fetches
records (`record_transform`), like tokenisation for text, so changing them never rebuilds
the data. Everything after that (crops, log-mel, augmentation) runs on device
(`sslax/augment/audio.py`).

Decoding uses only the standard library's `wave` module and numpy: PCM WAV, 8-bit (unsigned)
or 16-bit (signed little-endian), any number of channels (averaged to mono).
"""
from __future__ import annotations

from collections.abc import Mapping
import math
import wave
from typing import Any, Callable

import ml_collections
import numpy as np

from sslax import errors

# Zero crossings of the windowed-sinc kernel on each side: attenuation of the stop band is
# ~-60 dB with a Kaiser window of beta 8.6, plenty for speech features.
_SINC_ZEROS = 16
_KAISER_BETA = 8.6


def decode_wav(path: str) -> tuple[np.ndarray, int]:
  """(samples float32 [T] in [-1, 1], mono; sample rate in Hz) of a PCM WAV file.

  Raises:
    ValueError: naming the file, when it is not a PCM WAV of 8 or 16 bits, or is empty.
  """
  try:
    with wave.open(path, 'rb') as f:
      channels, width, rate, frames = (f.getnchannels(), f.getsampwidth(), f.getframerate(),
                                       f.getnframes())
      data = f.readframes(frames)
  except (wave.Error, EOFError, OSError) as e:
    raise errors.DataError(f'{path} is not a readable PCM WAV file ({e}). Fix: re-encode it as '
                           '8- or 16-bit PCM WAV, or remove it (or set '
                           "config.data.bad_files='skip').") from None
  if width == 1:   # 8-bit WAV is unsigned, centred on 128
    samples = (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
  elif width == 2:
    samples = np.frombuffer(data, '<i2').astype(np.float32) / 32768.0
  else:
    raise errors.DataError(f'{path}: {8 * width}-bit samples are not supported (only 8- and 16-bit '
                           'PCM). Fix: re-encode it as 16-bit PCM WAV.')
  usable = len(samples) // channels * channels
  if usable == 0:
    raise errors.DataError(f'{path} holds no audio samples. Fix: remove it (or set '
                           "config.data.bad_files='skip').")
  mono = samples[:usable].reshape(-1, channels).mean(axis=1)
  return mono.astype(np.float32), int(rate)


def to_float_mono(samples: np.ndarray) -> np.ndarray:
  """float32 mono [T] in [-1, 1] from integer PCM [T] or [T, C] (floats kept as they are).

  Signed integers are scaled by their full range (int16 / 32768, as `decode_wav` does),
  unsigned ones centred first (8-bit PCM is unsigned); channels are averaged.
  """
  x = np.asarray(samples)
  if x.dtype.kind == 'i':
    x = x.astype(np.float32) / float(-np.iinfo(x.dtype).min)
  elif x.dtype.kind == 'u':
    half = (float(np.iinfo(x.dtype).max) + 1) / 2
    x = (x.astype(np.float32) - half) / half
  x = x.astype(np.float32)
  return x.mean(axis=1) if x.ndim == 2 else x


def resample(x_T: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
  """Band-limited resampling by windowed-sinc interpolation (Smith, "Digital Audio Resampling").

  Output sample n sits at time n / rate_out; its value is the input convolved with a Kaiser-
  windowed sinc whose cut-off is the lower of the two Nyquist frequencies, so downsampling
  removes what the new rate cannot represent instead of aliasing it. Same rate: unchanged.

  Args:
    x_T: samples [T] at `rate_in`.
    rate_in, rate_out: sample rates in Hz.

  Returns:
    float32 [ceil(T * rate_out / rate_in)].
  """
  if rate_in == rate_out:
    return np.asarray(x_T, np.float32)
  x_T = np.asarray(x_T, np.float64)
  cutoff = min(1.0, rate_out / rate_in)   # in units of the input Nyquist frequency
  half_width = math.ceil(_SINC_ZEROS / cutoff)
  taps = 2 * half_width
  g = math.gcd(rate_in, rate_out)
  up, down = rate_out // g, rate_in // g
  out_len = math.ceil(len(x_T) * rate_out / rate_in)
  # Output n sits at input time n * down / up = floor + phase / up, and the kernel depends
  # only on the phase: outputs n0, n0 + up, n0 + 2 up, ... share one and step `down` input
  # samples apart. So the kernel is computed once per phase (the Kaiser window's Bessel
  # function per output sample took ~1 s per 10 s clip), and each phase's outputs are one
  # matrix-vector product over a strided view of the input (a gather per tap took 18x as long).
  n0_P = np.arange(min(up, out_len), dtype=np.int64)
  floor_P, phase_P = n0_P * down // up, n0_P * down % up
  offset_PxK = phase_P[:, None] / up + (half_width - 1 - np.arange(taps))[None]
  # Kaiser window over |offset| <= half_width (zero beyond).
  inside_window = np.clip(1.0 - (offset_PxK / half_width) ** 2, 0.0, None)
  window = np.i0(_KAISER_BETA * np.sqrt(inside_window)) / np.i0(_KAISER_BETA)
  kernel_PxK = cutoff * np.sinc(cutoff * offset_PxK) * window
  # Zeros beyond both ends, so every tap's index is in range.
  padded = np.concatenate([np.zeros(half_width), x_T, np.zeros(taps)])
  windows_WxK = np.lib.stride_tricks.sliding_window_view(padded, taps)
  out = np.empty(out_len)
  for n0 in n0_P:
    # Tap 0 of output n0 + k up is padded[floor_P[n0] + 1 + k down].
    rows = windows_WxK[floor_P[n0] + 1::down][:len(range(n0, out_len, up))]
    out[n0::up] = rows @ kernel_PxK[n0]
  return out.astype(np.float32)


def fixed_length(x_T: np.ndarray, length: int) -> tuple[np.ndarray, np.int32]:
  """(the first `length` samples, zero-padded to `length`; how many are real)."""
  real = min(len(x_T), length)
  out = np.zeros(length, np.float32)
  out[:real] = x_T[:real]
  return out, np.int32(real)


RecordTransform = Callable[[Mapping[str, Any]], dict[str, Any]]
SHORT_CLIPS = ('pad', 'error', 'skip')


def check_short_clips(data_config: ml_collections.ConfigDict) -> str:
  policy = data_config.get('short_clips', 'pad')
  if policy not in SHORT_CLIPS:
    raise errors.ConfigError(f'config.data.short_clips={policy!r} is unknown; choose one of '
                             f'{SHORT_CLIPS}.')
  return policy


def frames_needed(config: ml_collections.ConfigDict) -> int:
  """Real log-mel frames a training clip needs for config.method's loss to use it.

  Next-frame methods (a `steps_ahead` in the method's config section, apc and cpc) need
  max(k) + 1 frames for one (t, t + k) pair; masked-span methods (a `span`) need span + 1, so
  that a hidden span leaves one frame visible; anything else one frame.
  """
  section = config.get(config.get('method', ''), None)
  if section is None:
    return 1
  if 'steps_ahead' in section:
    return max(section.steps_ahead) + 1
  if 'span' in section:
    return int(section.span) + 1
  return 1


def short_clip_policy(config: ml_collections.ConfigDict) -> tuple[str, int]:
  """(config.data.short_clips, the fewest real samples a training clip needs).

  A clip of L real samples at config.data.sample_rate has frame f real when its centre
  f * hop + n_fft // 2 lies before L (`augment.audio.frame_mask`), so n frames need
  L >= (n - 1) * hop + n_fft // 2 + 1.
  """
  policy = check_short_clips(config.data)
  audio = config.get('audio', None)
  if policy == 'pad' or audio is None:
    return policy, 0
  return policy, (frames_needed(config) - 1) * audio.hop + audio.n_fft // 2 + 1


def real_samples(record: Mapping[str, Any], rate: int) -> int:
  """Samples of a stored audio record once resampled to `rate` (as `resample` makes them)."""
  return math.ceil(len(record['audio']) * rate / int(record['sample_rate']))


def check_config(data_config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(sample_rate, clip samples) from config.data; errors name the key."""
  rate = int(data_config.get('sample_rate', 0))
  seconds = float(data_config.get('clip_seconds', 0.0))
  if rate <= 0:
    raise errors.ConfigError(
        f'config.data.sample_rate={rate} must be positive for an audio source; '
        'set it to the rate models should see (e.g. 8000 or 16000).')
  if seconds <= 0:
    raise errors.ConfigError(
        f'config.data.clip_seconds={seconds} must be positive: every clip is cut '
        'or zero-padded to it so that clips stack into batches.')
  check_short_clips(data_config)
  return rate, max(1, round(rate * seconds))


def record_transform(data_config: ml_collections.ConfigDict) -> RecordTransform:
  """record with `audio` at its own `sample_rate` → `audio` float32 [clip samples] at
  config.data.sample_rate (cut or zero-padded) and `audio_len` int32 (real samples);
  `label` replaced by the feature config.data.label_key names, when it is not 'label'."""
  rate, samples = check_config(data_config)
  label_key = data_config.get('label_key', 'label')

  def transform(record: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in ('audio', 'sample_rate')}
    if label_key != 'label':
      if label_key not in record:
        raise errors.ConfigError(f'config.data.label_key={label_key!r}: the records have no such '
                                 f'feature; they have {sorted(record)}.')
      out['label'] = record[label_key]   # e.g. 'speaker': speaker identification downstream
    audio = resample(np.asarray(record['audio']), int(record['sample_rate']), rate)
    out['audio'], out['audio_len'] = fixed_length(audio, samples)
    return out
  return transform
