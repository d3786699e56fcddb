"""Host augmentation for dense targets: masks stay on their image, and boxes follow resize,
crop and flip, checked by drawing boxes into masks and transforming the masks."""
import numpy as np
import pytest

from sslax.data import dense_augment


def _draw(boxes, height, width):
  """Pixels whose centre lies inside any box, as a bool mask."""
  ys, xs = np.mgrid[0:height, 0:width] + 0.5
  out = np.zeros((height, width), bool)
  for x0, y0, x1, y1 in boxes:
    out |= (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
  return out


def _iou(a, b):
  return (a & b).sum() / max((a | b).sum(), 1)


def test_each_box_transform_matches_the_drawn_mask():
  boxes = np.array([[3, 4, 11, 9], [0, 0, 2, 5], [12, 10, 16, 12]], np.float32)
  mask = _draw(boxes, 12, 16)
  np.testing.assert_array_equal(_draw(dense_augment.boxes_flip(boxes, 16), 12, 16),
                                mask[:, ::-1])
  cropped, keep = dense_augment.boxes_crop(boxes, 2, 1, 8, 10)
  np.testing.assert_array_equal(_draw(cropped[keep], 8, 10), mask[2:10, 1:11])
  assert keep.tolist() == [True, True, False]   # the third box lies outside the window
  resized = dense_augment.boxes_resize(boxes, 2.0, 3.0)
  np.testing.assert_array_equal(_draw(resized, 24, 48), mask.repeat(2, 0).repeat(3, 1))


@pytest.mark.parametrize('scale_range', [(1.0, 1.0), (0.5, 2.0)])
def test_scale_crop_flip_keeps_mask_boxes_and_image_together(scale_range):
  rng = np.random.default_rng(0)
  h, w, size = 40, 56, 40
  boxes = np.array([[5, 6, 25, 30], [30, 2, 50, 14], [40, 28, 55, 39]], np.float32)
  mask = _draw(boxes, h, w).astype(np.uint8)
  # The image holds the mask in its red channel and a left/right ramp in green, so a flip
  # of the image without the mask (or the reverse) shows.
  image = np.stack([mask * 200, np.tile(np.arange(w, dtype=np.uint8) * 4, (h, 1)),
                    np.zeros((h, w), np.uint8)], -1)
  flips = 0
  for _ in range(12):
    out, out_mask, (out_boxes, keep) = dense_augment.scale_crop_flip(
        image, mask, boxes, size=size, scale_range=scale_range, flip_prob=0.5, rng=rng)
    assert out.shape == (size, size, 3) and out_mask.shape == (size, size)
    real = out_mask != dense_augment.IGNORE
    from_image = out[..., 0] > 100
    exact = scale_range == (1.0, 1.0)
    if exact:   # no resizing: pure index operations
      np.testing.assert_array_equal(from_image[real], out_mask[real] == 1)
    else:
      assert np.mean(from_image[real] != (out_mask[real] == 1)) < 0.05
    drawn = _draw(out_boxes[keep], size, size)
    assert _iou(drawn & real, (out_mask == 1) & real) > (0.999 if exact else 0.8)
    flips += int(out[size // 2, 0, 1] > out[size // 2, -1, 1])
  assert 0 < flips < 12   # both flipped and unflipped crops were drawn


def test_padding_is_ignored_and_eval_view():
  rng = np.random.default_rng(1)
  image = np.full((10, 20, 3), 7, np.uint8)
  mask = np.ones((10, 20), np.uint8)
  out, out_mask, _ = dense_augment.scale_crop_flip(image, mask, size=32,
                                                   scale_range=(0.5, 0.5), flip_prob=0.0,
                                                   rng=rng)
  # Shorter side 16 < 32: the scaled image (16x32) is padded, the padding ignored.
  assert (out_mask == dense_augment.IGNORE).sum() == 16 * 32
  assert (out[out_mask == 1] == 7).all()
  assert dense_augment.eval_view(image, 8).shape == (8, 8, 3)
