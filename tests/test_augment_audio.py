"""On-device audio: log-mel against a float64 numpy reference and librosa's values, crops, masks,
per-example keys."""
import jax
import jax.numpy as jnp
import numpy as np

from sslax.augment import audio
from sslax.augment import masking


def log_mel_reference(x_T, rate, n_fft, hop, n_mels, fmin, fmax):
  """Frame by frame in float64: Hann window, |rfft|^2, HTK-mel triangles, log."""
  mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
  inv = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
  edges = [inv(m) for m in np.linspace(mel(fmin), mel(fmax), n_mels + 2)]
  freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
  bank = np.zeros((len(freqs), n_mels))
  for j in range(n_mels):
    lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
    for i, f in enumerate(freqs):
      if lo <= f <= mid:
        bank[i, j] = (f - lo) / (mid - lo)
      elif mid < f <= hi:
        bank[i, j] = (hi - f) / (hi - mid)
  window = np.array([0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft) for n in range(n_fft)])
  out = []
  for start in range(0, len(x_T) - n_fft + 1, hop):
    power = np.abs(np.fft.rfft(x_T[start:start + n_fft] * window)) ** 2
    out.append(np.log(power @ bank + audio.LOG_FLOOR))
  return np.array(out)


def test_log_mel_matches_float64_reference():
  rng = np.random.default_rng(0)
  t = np.arange(2000) / 8000
  x = np.sin(2 * np.pi * 440 * t) + 0.1 * rng.normal(size=t.shape)
  params = dict(sample_rate=8000, n_fft=200, hop=80, n_mels=16, fmin=20.0, fmax=4000.0)
  expected = log_mel_reference(x, 8000, 200, 80, 16, 20.0, 4000.0)
  with jax.enable_x64(True):
    got = np.asarray(audio.log_mel(jnp.asarray(x[None]), **params))[0]
  assert got.shape == expected.shape == (1 + (2000 - 200) // 80, 16)
  np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
  # float32 stays close (log-energies of unit-scale audio).
  got32 = np.asarray(jax.jit(lambda a: audio.log_mel(a, **params))(jnp.asarray(x[None],
                                                                           jnp.float32)))[0]
  np.testing.assert_allclose(got32, expected, atol=2e-3)
  # The 440 Hz tone lands in the mel band that contains 440 Hz.
  centres = audio.mel_to_hz(np.linspace(audio.hz_to_mel(20.0), audio.hz_to_mel(4000.0), 18))[1:-1]
  assert abs(centres[expected.mean(0).argmax()] - 440) < 150


# librosa 0.11.0's values, an implementation independent of ours (the float64 reference above
# follows the same recipe as the code, so it cannot catch a wrong recipe). librosa (with numba
# and llvmlite, ~220 MB) is too heavy a dependency for one test; its numbers were produced by
#   librosa.filters.mel(sr=8000, n_fft=16, n_mels=4, fmin=20.0, fmax=4000.0, htk=True,
#                       norm=None, dtype=np.float64)
#   librosa.feature.melspectrogram(y=x, sr=8000, n_fft=32, hop_length=16, center=False,
#       window='hann', power=2.0, n_mels=5, fmin=20.0, fmax=4000.0, htk=True, norm=None,
#       dtype=np.float64)
# with x = sin(2 pi 440 t) + 0.5 sin(2 pi 1500 t), t = arange(64) / 8000.
LIBROSA_MEL_16_4 = np.array([   # [n_mels, n_fft // 2 + 1]
    [0, 0.681007625, 0, 0, 0, 0, 0, 0, 0],
    [0, 0.318992375, 0.7477844634, 0.0276195187, 0, 0, 0, 0, 0],
    [0, 0, 0.2522155366, 0.9723804813, 0.5241224763, 0.0292664024, 0, 0, 0],
    [0, 0, 0, 0, 0.4758775237, 0.9707335976, 0.6800734629, 0.3400367314, 0]])
LIBROSA_MELSPEC = np.array([   # [frames, n_mels]
    [4.9650087851e+01, 4.0850169927e+01, 1.2746476987e+01, 1.2793997107e+01, 3.8124723948e-05],
    [4.8929854342e+01, 4.1117912238e+01, 1.2649955397e+01, 1.2809621208e+01, 1.8948043709e-05],
    [4.9479283750e+01, 4.0913665286e+01, 1.2590312033e+01, 1.2826588992e+01, 3.3576954942e-05]])


def test_mel_filterbank_and_log_mel_match_librosa():
  np.testing.assert_allclose(audio.mel_filterbank(8000, 16, 4, 20.0, 4000.0),
                             LIBROSA_MEL_16_4.T, rtol=0, atol=1e-9)
  t = np.arange(64) / 8000
  x = np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 1500 * t)
  with jax.enable_x64(True):
    got = np.asarray(audio.log_mel(jnp.asarray(x[None]), sample_rate=8000, n_fft=32, hop=16,
                                   n_mels=5, fmin=20.0, fmax=4000.0))[0]
  # Published to 11 significant digits; the top band's energies are ~1e-5, so compare logs.
  np.testing.assert_allclose(got, np.log(LIBROSA_MELSPEC + audio.LOG_FLOOR), rtol=0, atol=1e-8)


def test_frame_mask_and_normalize():
  mask = np.asarray(audio.frame_mask(jnp.array([2000, 500, 10]), 23, 200, 80))
  assert mask[0].all() and mask[1].sum() == 5 and mask[2].sum() == 1   # centres 100, 180, ...
  rng = np.random.default_rng(1)
  x = rng.normal(3.0, 2.0, size=(3, 23, 4))
  y = np.asarray(audio.normalize(jnp.asarray(x), jnp.asarray(mask)))
  assert np.all(y[~mask] == 0)
  np.testing.assert_allclose(y[0].mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(y[0].std(0), 1, atol=1e-3)


def test_augmentations_are_per_example_and_respect_lengths():
  rng = np.random.default_rng(2)
  audio_BxT = jnp.asarray(rng.normal(size=(4, 100)), jnp.float32)
  len_B = jnp.array([100, 60, 20, 5])
  key = jax.random.PRNGKey(0)

  @jax.jit
  def augment(a, l):
    keys = audio.per_example(key, a.shape[0])
    crops, lens = jax.vmap(audio.random_crop, in_axes=(0, 0, 0, None))(keys, a, l, 30)
    noisy = jax.vmap(audio.add_noise, in_axes=(0, 0, 0, None))(keys, crops, lens, 0.1)
    spec = jax.vmap(lambda k, x: audio.spec_augment(k, x, time_masks=1, time_width=3,
                                                    freq_masks=1, freq_width=2))(
        keys, jnp.ones((a.shape[0], 10, 6)))
    return crops, lens, noisy, spec, masking.frame_span_mask(key, jnp.arange(10)[None] < l[:, None] // 10,
                                                            start_prob=0.2, span=3)
  crops, lens, noisy, spec, spans = map(np.asarray, augment(audio_BxT, len_B))
  np.testing.assert_array_equal(lens, [30, 30, 20, 5])
  for b in range(4):   # every crop is a window of the real clip (short clips start at 0)
    last = max(int(len_B[b]) - 30, 0)
    assert any(np.array_equal(crops[b], np.asarray(audio_BxT)[b, s:s + 30]) for s in range(last + 1))
  assert np.all(noisy[3, 5:] == crops[3, 5:]) and np.any(noisy[3, :5] != crops[3, :5])
  assert (spec == 0).any() and (spec == 1).any()
  assert spans.any(1)[:3].all() and not (spans & ~(np.arange(10)[None] < np.asarray(len_B)[:, None] // 10)).any()
  # Example n's randomness does not depend on the rest of the batch.
  crops2, _, _, spec2, spans2 = map(np.asarray, augment(audio_BxT[:2], len_B[:2]))
  np.testing.assert_array_equal(crops2, crops[:2])
  np.testing.assert_array_equal(spec2, spec[:2])
  np.testing.assert_array_equal(spans2, spans[:2])
