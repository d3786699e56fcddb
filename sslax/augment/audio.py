"""Audio on device: random crops, gain, noise, log-mel spectrograms, time/frequency masking.

Batches hold `audio` float32 [B, T] (zero-padded) and `audio_len` int32 [B] (real samples),
see `sslax/data/waveforms.py`. Everything here is plain jax.numpy, so it runs inside the
jitted train step on any device with no DSP dependency. Random ops take one key per step;
example n draws from fold_in(key, n), its index in the global batch, so the result does not
depend on how the batch is split over devices (DESIGN.md, "Randomness").

The log-mel spectrogram frames the waveform without centre padding: frame f covers samples
[f * hop, f * hop + n_fft), is multiplied by a periodic Hann window, goes through an rFFT,
and its power spectrum through a triangular mel filterbank (HTK mel scale, built in numpy
once); the log is taken of the filterbank energies plus a floor. Frame f is valid when its
centre lies inside the real samples.

Shape suffixes: B = batch, T = samples, F = frames, M = mel bins, K = rFFT bins.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sslax import errors

Array = jax.Array
# Floor added before the log: -100 dB below full scale, so silence (and zero padding) gives a
# finite, fixed value instead of -inf.
LOG_FLOOR = 1e-10


def hz_to_mel(hz):
  """HTK mel scale (O'Shaughnessy 1987): 2595 log10(1 + f / 700)."""
  return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel):
  return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                   fmax: float) -> np.ndarray:
  """Triangular filters [K = n_fft // 2 + 1, M], float64, peak 1, on the HTK mel scale."""
  if not 0 <= fmin < fmax <= sample_rate / 2:
    raise errors.ConfigError(f'mel range fmin={fmin}, fmax={fmax} must satisfy 0 <= fmin < fmax <= '
                             f'sample_rate / 2 = {sample_rate / 2}; fix config.audio.fmin/fmax.')
  freqs_K = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
  edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
  lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
  rising_KxM = (freqs_K[:, None] - lower) / (centre - lower)
  falling_KxM = (upper - freqs_K[:, None]) / (upper - centre)
  return np.maximum(0.0, np.minimum(rising_KxM, falling_KxM))


def num_frames(num_samples: int, n_fft: int, hop: int) -> int:
  if num_samples < n_fft:
    raise errors.ConfigError(
        f'clips of {num_samples} samples are shorter than one frame '
        f'(config.audio.n_fft={n_fft}); lengthen the clip or shorten the frame.')
  return 1 + (num_samples - n_fft) // hop


def frame_mask(audio_len_B: Array, num_frames_: int, n_fft: int, hop: int) -> Array:
  """[B, F] bool: frame f is real when its centre lies within the clip's real samples.

  Frame 0 always counts, so every example has at least one frame (a clip shorter than half a
  frame is still one, mostly padded, frame rather than nothing).
  """
  centre_F = jnp.arange(num_frames_) * hop + n_fft // 2
  return (centre_F[None, :] < audio_len_B[:, None]) | (jnp.arange(num_frames_) == 0)[None, :]


def log_mel(audio_BxT: Array, *, sample_rate: int, n_fft: int, hop: int, n_mels: int,
            fmin: float = 0.0, fmax: float | None = None) -> Array:
  """Log mel-filterbank energies [B, F, M] of waveforms [B, T] (float32; float64 stays)."""
  dtype = jnp.promote_types(audio_BxT.dtype, jnp.float32)
  x_BxT = audio_BxT.astype(dtype)
  frames = num_frames(x_BxT.shape[-1], n_fft, hop)
  idx_FxN = np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]
  window_N = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)   # periodic Hann
  frames_BxFxN = x_BxT[:, idx_FxN] * jnp.asarray(window_N, dtype)
  power_BxFxK = jnp.square(jnp.abs(jnp.fft.rfft(frames_BxFxN, axis=-1)))
  bank_KxM = mel_filterbank(sample_rate, n_fft, n_mels, float(fmin),
                            float(fmax if fmax else sample_rate / 2))
  mel_BxFxM = jnp.matmul(power_BxFxK, jnp.asarray(bank_KxM, dtype),
                         precision=jax.lax.Precision.HIGHEST)
  return jnp.log(mel_BxFxM + LOG_FLOOR)


def normalize(x_BxFxM: Array, mask_BxF: Array, eps: float = 1e-5) -> Array:
  """Per-example, per-bin mean and variance normalisation over real frames (CMVN); padded
  frames become 0. Removes loudness and channel offsets that would otherwise dominate MSE
  targets and features."""
  w_BxFx1 = mask_BxF[..., None].astype(x_BxFxM.dtype)
  count_Bx1x1 = jnp.maximum(w_BxFx1.sum(1, keepdims=True), 1.0)
  mean_Bx1xM = (x_BxFxM * w_BxFx1).sum(1, keepdims=True) / count_Bx1x1
  var_Bx1xM = (jnp.square(x_BxFxM - mean_Bx1xM) * w_BxFx1).sum(1, keepdims=True) / count_Bx1x1
  return (x_BxFxM - mean_Bx1xM) * jax.lax.rsqrt(var_Bx1xM + eps) * w_BxFx1


# ---- Random augmentations (one example; `per_example` maps them over a batch). -------------


def per_example(key: Array, batch_size: int) -> Array:
  """[B] keys, example n's = fold_in(key, n)."""
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(batch_size))


def random_crop(key: Array, audio_T: Array, length: Array, crop: int) -> tuple[Array, Array]:
  """A window of `crop` samples starting uniformly in [0, max(length - crop, 0)]; returns
  (window [crop], its real length min(length, crop)); a short clip keeps its zero padding."""
  if audio_T.shape[0] < crop:
    raise errors.ConfigError(f'crops of {crop} samples exceed clips of {audio_T.shape[0]}; lower '
                             'config.audio.crop_seconds or raise config.data.clip_seconds.')
  start = jax.random.randint(key, (), 0, jnp.maximum(length - crop, 0) + 1)
  return jax.lax.dynamic_slice(audio_T, (start,), (crop,)), jnp.minimum(length, crop)


def random_gain(key: Array, audio_T: Array, max_db: float) -> Array:
  """Scales by a gain uniform in [-max_db, +max_db] decibels."""
  db = jax.random.uniform(key, (), minval=-max_db, maxval=max_db)
  return audio_T * (10.0 ** (db / 20.0))


def add_noise(key: Array, audio_T: Array, length: Array, std: float) -> Array:
  """White Gaussian noise of standard deviation `std` on the real samples only."""
  noise_T = std * jax.random.normal(key, audio_T.shape, audio_T.dtype)
  return audio_T + jnp.where(jnp.arange(audio_T.shape[0]) < length, noise_T, 0.0)


def _span_mask(key: Array, size: int, max_width: int, count: int) -> Array:
  """[size] bool: `count` spans, each of width uniform in [0, max_width], start uniform."""
  width_key, start_key = jax.random.split(key)
  widths_C = jax.random.randint(width_key, (count,), 0, max_width + 1)
  starts_C = jax.random.randint(start_key, (count,), 0, jnp.maximum(size - widths_C, 0) + 1)
  pos_S = jnp.arange(size)
  return ((pos_S[None] >= starts_C[:, None]) & (pos_S[None] < (starts_C + widths_C)[:, None])
          ).any(0)


def spec_augment(key: Array, x_FxM: Array, *, time_masks: int, time_width: int,
                 freq_masks: int, freq_width: int) -> Array:
  """SpecAugment's time and frequency masking (Park et al. 2019): zeroes `time_masks` spans
  of up to `time_width` frames and `freq_masks` bands of up to `freq_width` mel bins (zero is
  the mean after `normalize`)."""
  time_key, freq_key = jax.random.split(key)
  drop_FxM = jnp.zeros(x_FxM.shape, bool)
  if time_masks:
    drop_FxM |= _span_mask(time_key, x_FxM.shape[0], time_width, time_masks)[:, None]
  if freq_masks:
    drop_FxM |= _span_mask(freq_key, x_FxM.shape[1], freq_width, freq_masks)[None, :]
  return jnp.where(drop_FxM, 0.0, x_FxM)
