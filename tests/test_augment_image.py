"""Tests for the on-device image augmentation, sslax.augment.geometry, .photometric and .image
(views): shapes, ranges, identities, determinism, sharding invariance."""
import colorsys
import functools

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
import pytest

from sslax.augment import geometry, photometric
from sslax.augment import image as aug

OUT = 16
BATCH = 8  # one example per fake device in the sharding test; every test uses it to share compiles


def _images(channels: int, dtype=np.uint8, size: int = 8, seed: int = 0) -> np.ndarray:
  """Random [BATCH, size, size, C] images, uint8 or float in [0, 1]."""
  pixels = np.random.default_rng(seed).integers(0, 256, (BATCH, size, size, channels), np.uint8)
  return pixels if dtype == np.uint8 else (pixels / 255.0).astype(dtype)


def _image(shape=(12, 10, 3), seed: int = 0) -> jnp.ndarray:
  return jnp.asarray(np.random.default_rng(seed).random(shape, dtype=np.float32))


def _jit(fn, **kwargs):
  """Jitted op: one compile instead of one per primitive in eager mode."""
  return jax.jit(functools.partial(fn, **kwargs))


@functools.cache
def _views_fn(**kwargs):
  """One jitted simclr_views per kwargs set, shared across tests (compilation dominates)."""
  return jax.jit(functools.partial(aug.simclr_views, out_size=OUT, **kwargs))


DIGITS = dict(crop_scale=(0.5, 1.0), flip_prob=0.0, rotation_degrees=10.0)  # noise: tested alone


# Each case is one compile (~3 s on 2 cores); together they cover C=1/3 and float/uint8 inputs.
@pytest.mark.parametrize('channels,dtype,kwargs', [(1, np.float32, DIGITS), (3, np.uint8, {})])
def test_views_shape_dtype_range(channels, dtype, kwargs):
  images = _images(channels, dtype)  # 8x8 inputs, so the crop also upsamples to 16x16
  views = _views_fn(**kwargs)(jax.random.key(0), images)
  assert len(views) == 2
  for view in views:
    assert view.shape == (BATCH, OUT, OUT, channels) and view.dtype == jnp.float32
    assert np.all(np.isfinite(view)) and view.min() >= 0.0 and view.max() <= 1.0
  assert not np.allclose(views[0], views[1])


def test_views_deterministic_and_per_example():
  images = _images(3)
  views_fn = _views_fn()
  first = views_fn(jax.random.key(1), images)
  again = views_fn(jax.random.key(1), images)
  other_key = views_fn(jax.random.key(2), images)
  for a, b, c in zip(first, again, other_key):
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)

  # Identical images at 0 and 1 still get their own views.
  twins = images.copy()
  twins[1] = twins[0]
  twin_views = views_fn(jax.random.key(1), twins)
  assert not np.allclose(twin_views[0][0], twin_views[0][1])

  # Changing example 3 leaves every other example's views untouched, bit for bit.
  changed = images.copy()
  changed[3] = 255 - changed[3]
  changed_views = views_fn(jax.random.key(1), changed)
  for before, after in zip(first, changed_views):
    np.testing.assert_array_equal(np.delete(before, 3, 0), np.delete(after, 3, 0))
    assert not np.allclose(before[3], after[3])


def test_views_independent_of_sharding():
  assert jax.device_count() == 8
  images = _images(3)
  views_fn = _views_fn()
  expected = views_fn(jax.random.key(3), images)
  mesh = Mesh(np.array(jax.devices()), ('data',))
  sharded = jax.device_put(images, NamedSharding(mesh, P('data')))
  got = views_fn(jax.random.key(3), sharded)
  for e, g in zip(expected, got):
    assert len(g.sharding.device_set) == 8
    # Same keys, so the same crops, flips and strengths; only rounding may differ, because XLA
    # vectorises per-example reductions (contrast's mean grey) differently for 1 vs 8 rows.
    np.testing.assert_allclose(e, g, rtol=0, atol=1e-6)


def test_crop_and_resize_matches_direct_crop_and_resize():
  image = _image()
  for top, left, height, width, out in [(2, 3, 5, 4, 16), (1, 1, 9, 8, 3)]:  # up and down
    got = _jit(geometry.crop_and_resize, out_size=out)(image, top, left, height, width)
    cut = image[top:top + height, left:left + width]
    expected = jax.image.resize(cut, (out, out, 3), 'linear')
    np.testing.assert_allclose(got, expected, atol=1e-6)
  # On the whole image the weights are jax.image.scale_and_translate's.
  got = _jit(geometry.crop_and_resize, out_size=16)(image, 0, 0, 12, 10)
  expected = jax.image.scale_and_translate(
      image, (16, 16, 3), (0, 1), jnp.array([16 / 12, 16 / 10]), jnp.zeros(2), 'linear')
  np.testing.assert_allclose(got, expected, atol=1e-6)


def test_random_resized_crop_identity_and_boxes():
  image = _image((16, 16, 3))
  crop = _jit(geometry.random_resized_crop, out_size=16, scale=(1, 1), ratio=(1, 1))
  same = crop(jax.random.key(0), image)
  np.testing.assert_allclose(same, image, atol=1e-5)

  keys = jax.random.split(jax.random.key(0), 512)
  box = jax.jit(jax.vmap(
      lambda k: jnp.stack(geometry._crop_box(k, 12, 10, (0.08, 1.0), (3 / 4, 4 / 3), 10))))
  top, left, h, w = np.asarray(box(keys)).T
  assert np.all((h >= 1) & (w >= 1) & (top >= 0) & (left >= 0))
  assert np.all((top + h <= 12) & (left + w <= 10))
  assert len(np.unique(top)) > 3 and len(np.unique(h * w)) > 10
  # No candidate fits a 2:1 box covering the whole square: torchvision's centred fallback.
  fallback = jax.jit(lambda k: jnp.stack(geometry._crop_box(k, 8, 8, (1.0, 1.0), (2.0, 2.0), 10)))
  np.testing.assert_array_equal(fallback(jax.random.key(0)), [2, 0, 4, 8])


def test_flip():
  image, key = _image(), jax.random.key(0)
  flipped = _jit(geometry.random_flip, prob=1.0)(key, image)
  np.testing.assert_array_equal(flipped, image[:, ::-1])
  np.testing.assert_array_equal(_jit(geometry.random_flip, prob=1.0)(key, flipped), image)
  np.testing.assert_array_equal(_jit(geometry.random_flip, prob=0.0)(key, image), image)


def test_color_jitter():
  image, key = _image(), jax.random.key(0)
  zero = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, prob=1.0)
  np.testing.assert_array_equal(_jit(photometric.color_jitter, **zero)(key, image), image)
  strong = dict(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, prob=1.0)
  for img in (image, image[..., :1]):  # C=3 and C=1 (saturation and hue skipped)
    out = _jit(photometric.color_jitter, **strong)(key, img)
    assert out.shape == img.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out, img)
  # A hue rotation keeps each pixel's saturation and value.
  hue_only = _jit(photometric.color_jitter, **{**zero, 'hue': 0.5})(key, image)
  sat_value = lambda x: _jit(photometric.rgb_to_hsv)(x)[..., 1:]
  np.testing.assert_allclose(sat_value(hue_only), sat_value(image), atol=1e-5)
  assert not np.allclose(hue_only, image)


def test_hsv_roundtrip_and_hue_identity():
  rgb = _image((500, 3))
  hsv = _jit(photometric.rgb_to_hsv)(rgb)
  reference = np.array([colorsys.rgb_to_hsv(*p) for p in np.asarray(rgb)])
  np.testing.assert_allclose(hsv, reference, atol=1e-5)
  np.testing.assert_allclose(_jit(photometric.hsv_to_rgb)(hsv), rgb, atol=1e-5)
  np.testing.assert_allclose(_jit(photometric.adjust_hue)(_image(), 0.0), _image(), atol=1e-5)
  greys = jnp.linspace(0.0, 1.0, 5)[:, None].repeat(3, axis=1)
  np.testing.assert_allclose(photometric.hsv_to_rgb(photometric.rgb_to_hsv(greys)), greys,
                             atol=1e-6)


def test_grayscale():
  image, key = _image(), jax.random.key(0)
  grey = _jit(photometric.random_grayscale, prob=1.0)(key, image)
  np.testing.assert_allclose(grey[..., 0], grey[..., 1])
  np.testing.assert_allclose(grey[..., 0], grey[..., 2])
  expected = image @ jnp.array([0.299, 0.587, 0.114])
  np.testing.assert_allclose(grey[..., 0], expected, atol=1e-6)
  np.testing.assert_array_equal(_jit(photometric.random_grayscale, prob=1.0)(key, image[..., :1]),
                                image[..., :1])


def test_blur():
  image, key = _image((16, 16, 3)), jax.random.key(0)
  sharp = _jit(photometric.gaussian_blur, prob=1.0, sigma=(0.1, 0.1))(key, image)
  np.testing.assert_allclose(sharp, image, atol=1e-6)
  soft = _jit(photometric.gaussian_blur, prob=1.0, sigma=(2.0, 2.0), kernel_frac=0.5)(key, image)
  assert soft.std() < 0.7 * image.std()
  # Reflected borders: a flat image stays flat, edges included.
  flat = jnp.full((16, 16, 1), 0.3)
  np.testing.assert_allclose(_jit(photometric.gaussian_blur, prob=1.0)(key, flat), flat, atol=1e-6)


def test_solarize_rotation_noise():
  image, key = _image((9, 9, 3)), jax.random.key(0)
  solar = _jit(photometric.solarize, prob=1.0, threshold=0.5)(key, image)
  np.testing.assert_allclose(solar, np.where(image >= 0.5, 1.0 - image, image))
  np.testing.assert_array_equal(_jit(geometry.random_rotation, max_degrees=0.0)(key, image), image)
  rotated = _jit(geometry.random_rotation, max_degrees=30.0)(key, image)
  assert rotated.shape == image.shape and rotated.min() >= 0.0 and rotated.max() <= 1.0
  np.testing.assert_allclose(rotated[4, 4], image[4, 4], atol=1e-6)  # the centre stays put
  assert not np.allclose(rotated, image)
  np.testing.assert_array_equal(_jit(photometric.gaussian_noise, std=0.0)(key, image), image)
  noisy = _jit(photometric.gaussian_noise, std=0.1)(key, image)
  assert noisy.min() >= 0.0 and noisy.max() <= 1.0 and not np.allclose(noisy, image)


def test_eval_view_and_ranges():
  images = _images(3, size=16)
  np.testing.assert_allclose(_jit(aug.eval_view, out_size=16)(images), images / 255.0, atol=1e-6)
  assert _jit(aug.eval_view, out_size=8)(images[:, :, :12]).shape == (BATCH, 8, 8, 3)
  np.testing.assert_allclose(aug.to_model_range(jnp.array([0.0, 1.0])), [-1.0, 1.0])


@pytest.mark.parametrize('kwargs,name', [
    (dict(crop_scale=(0.5, 0.2)), 'crop_scale'),
    (dict(crop_scale=(0.0, 1.0)), 'crop_scale'),
    (dict(crop_scale=(0.5, 1.5)), 'crop_scale'),
    (dict(crop_ratio=(4 / 3, 3 / 4)), 'crop_ratio'),
    (dict(flip_prob=1.5), 'flip_prob'),
    (dict(jitter_prob=-0.1), 'jitter_prob'),
    (dict(blur_sigma=(2.0, 1.0)), 'blur_sigma'),
    (dict(hue=0.7), 'hue'),
    (dict(brightness=-0.1), 'brightness'),
    (dict(out_size=0), 'out_size'),
    (dict(rotation_degrees=-1.0), 'rotation_degrees'),
    (dict(noise_std=-0.1), 'noise_std'),
    (dict(num_views=0), 'num_views'),
])
def test_bad_kwargs_raise(kwargs, name):
  kwargs = {'out_size': OUT, **kwargs}
  with pytest.raises(ValueError, match=name):
    aug.simclr_views(jax.random.key(0), _images(3), **kwargs)


def test_bad_op_kwargs_raise():
  image, key = _image(), jax.random.key(0)
  with pytest.raises(ValueError, match='scale'):
    geometry.random_resized_crop(key, image, out_size=8, scale=(0.9, 0.1))
  with pytest.raises(ValueError, match='prob'):
    photometric.random_grayscale(key, image, prob=2.0)
  with pytest.raises(ValueError, match='kernel_frac'):
    photometric.gaussian_blur(key, image, kernel_frac=0.0)
  with pytest.raises(ValueError, match='image'):
    aug.simclr_views(key, _images(3).astype(np.int32), out_size=OUT)
