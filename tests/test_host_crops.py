"""Host decode + crop (sslax/data/host_crops.py) against float64 references."""
import io

import numpy as np
import PIL.Image
import pytest
import simplejpeg

from sslax.data import host_crops


def _area_weights_f64(n_in: int, n_out: int) -> np.ndarray:
  """[out, in]: output pixel o is the mean of source interval [o*s, (o+1)*s), s = n_in/n_out,
  each source pixel weighted by its overlap with it (area averaging)."""
  s = n_in / n_out
  lo = np.arange(n_out)[:, None] * s
  i = np.arange(n_in)[None, :]
  return np.clip(np.minimum(lo + s, i + 1) - np.maximum(lo, i), 0.0, None) / s


def _linear_weights_f64(start: float, length: float, n_in: int, n_out: int) -> np.ndarray:
  """[out, in]: bilinear samples of [start, start+length) at the output's pixel centres,
  positions clamped to the image."""
  centre = start + (np.arange(n_out) + 0.5) * length / n_out - 0.5
  centre = np.clip(centre, 0, n_in - 1)
  return np.maximum(0.0, 1.0 - np.abs(centre[:, None] - np.arange(n_in)[None, :]))


def crop_resize_f64(image, top, left, height, width, size):
  """The box resized in float64: area averaging over the box rounded to whole pixels when it
  shrinks more than 2x, else bilinear samples of the (fractional) box."""
  image = image.astype(np.float64)
  if min(height, width) >= size and max(height, width) > 2 * size:
    r0, c0 = round(top), round(left)
    r1, c1 = round(top + height), round(left + width)
    rows, cols = _area_weights_f64(r1 - r0, size), _area_weights_f64(c1 - c0, size)
    image = image[r0:r1, c0:c1]
  else:
    rows = _linear_weights_f64(top, height, image.shape[0], size)
    cols = _linear_weights_f64(left, width, image.shape[1], size)
  return np.einsum('oh,hwc,pw->opc', rows, image, cols, optimize=True)


def smooth_image(height: int, width: int) -> np.ndarray:
  """A photo-like (smooth) RGB image: what DCT-scaled decoding is meant for."""
  y, x = np.mgrid[0:height, 0:width]
  return np.stack([128 + 100 * np.sin(x / 37.0) * np.cos(y / 23.0),
                   128 + 90 * np.sin((x + y) / 51.0), x * 255.0 / width],
                  -1).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize('channels', [1, 3])
def test_crop_resize_matches_float64_reference(channels):
  rng = np.random.default_rng(0)
  filters = set()
  for i in range(40):
    height, width = rng.integers(5, 160, 2)
    image = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    box = host_crops.sample_box(rng, height, width, (0.08, 1.0), (3 / 4, 4 / 3))
    if i % 2:   # fractional, as boxes on a reduced-scale decode are
      shrink = rng.uniform(0.9, 1.0)
      box = tuple(x * shrink for x in box)
    size = int(rng.integers(4, 96))
    filters.add('up' if min(box[2:]) < size else 'area' if max(box[2:]) > 2 * size
                else 'bilinear')
    got = host_crops.crop_resize(image, *box, size)
    want = crop_resize_f64(image, *box, size)
    assert got.shape == want.shape and got.dtype == np.uint8
    # OpenCV's bilinear weights are fixed point; its area sums are float32.
    np.testing.assert_allclose(got, want, atol=1.0 + 1e-9)
    np.testing.assert_array_equal(host_crops.crop_resize(image, *box, size, flip=True),
                                  got[:, ::-1])
  assert filters == {'up', 'bilinear', 'area'}   # every regime was checked


def test_sample_box_follows_random_resized_crop():
  rng = np.random.default_rng(1)
  boxes = np.array([host_crops.sample_box(rng, 300, 400, (0.2, 0.6), (3 / 4, 4 / 3))
                    for _ in range(2000)])
  top, left, h, w = boxes.T
  assert (top >= 0).all() and (left >= 0).all() and (top + h <= 300).all()
  assert (left + w <= 400).all()
  area = h * w / (300 * 400)
  assert 0.19 < area.min() and area.max() < 0.61   # U(scale), up to rounding
  assert abs(np.median(np.log(w / h))) < 0.05       # log-uniform aspect around 1
  # A box that never fits (aspect range far from the image's) falls back to the centre.
  assert host_crops.sample_box(rng, 10, 1000, (0.9, 1.0), (1.0, 1.0)) == (0, 495, 10, 10)


def test_views_are_a_function_of_seed_step_and_position():
  data = simplejpeg.encode_jpeg(smooth_image(120, 160), quality=90)
  record = {'image': data, 'height': 120, 'width': 160}
  spec = [host_crops.CropSpec('image', 2, 32, (0.08, 1.0))]
  views = lambda *key: host_crops.train_views(record, spec, 3, host_crops.rng_for(*key))
  np.testing.assert_array_equal(views(0, 5, 3)['image'], views(0, 5, 3)['image'])
  for other in ((1, 5, 3), (0, 6, 3), (0, 5, 4)):
    assert not np.array_equal(views(0, 5, 3)['image'], views(*other)['image'])
  assert views(0, 5, 3)['image'].shape == (2, 32, 32, 3)


def test_reduced_scale_decode_gives_the_full_decode_crop():
  """A JPEG decoded at 5/8..1/8 DCT scale, cropped and resized, against a full decode.

  Stated tolerance (smooth 960x720 image, quality 95, 64x64 views of crops >= 20% of the
  area): mean absolute difference <= 2 of 255 in every step's views and <= 1 over all
  steps, no pixel off by more than 12. (DCT scaling filters differently from a bilinear
  shrink of the full decode; measured over 60 steps: step means 0.3-1.7, max 10.)
  """
  data = simplejpeg.encode_jpeg(smooth_image(720, 960), quality=95)
  record = {'image': data, 'height': 720, 'width': 960}
  spec = [host_crops.CropSpec('image', 2, 64, (0.2, 1.0), flip_prob=0.5)]
  diffs = []
  for step in range(20):
    fast = host_crops.train_views(record, spec, 3, host_crops.rng_for(0, step, 0))['image']
    full = host_crops.train_views(record, spec, 3, host_crops.rng_for(0, step, 0),
                                  reduced=False)['image']
    diff = np.abs(fast.astype(np.float64) - full)
    assert diff.mean() <= 2.0 and diff.max() <= 12, (step, diff.mean(), diff.max())
    diffs.append(diff.mean())
  assert np.mean(diffs) <= 1.0, diffs
  # The decode really was reduced: 20% of 960x720 is >= 383 px a side, so >= 1/4 scale.
  assert host_crops.decode(data, 3, 180, 240).shape == (180, 240, 3)


def test_eval_view_is_the_resized_centre_square():
  image = smooth_image(90, 150)
  png = io.BytesIO()
  PIL.Image.fromarray(image).save(png, format='PNG')
  view = host_crops.eval_view({'image': png.getvalue()}, 32, 3)
  np.testing.assert_allclose(view, crop_resize_f64(image, 0, 30, 90, 90, 32), atol=1.0 + 1e-9)
  # Decoded arrays (catalog data) take the same path.
  np.testing.assert_array_equal(host_crops.eval_view({'image': image}, 32, 3), view)


def test_tiny_and_grey_images_give_full_size_views():
  """An image smaller than the view is upsampled; grey JPEGs become RGB where asked."""
  grey = simplejpeg.encode_jpeg(np.full((6, 9, 1), 100, np.uint8), colorspace='GRAY')
  spec = [host_crops.CropSpec('image', 2, 32, (0.08, 1.0))]
  views = host_crops.train_views({'image': grey}, spec, 3, host_crops.rng_for(0, 0, 0))
  assert views['image'].shape == (2, 32, 32, 3)
  np.testing.assert_allclose(views['image'], 100, atol=2)
  assert host_crops.eval_view({'image': grey}, 32, 1).shape == (32, 32, 1)


def test_undecodable_bytes_raise_value_error():
  with pytest.raises(ValueError, match='cannot decode'):
    host_crops.decode(b'not an image', 3)
