"""Host-side geometric augmentation that keeps dense targets aligned with their image.

Segmentation masks and detection boxes must follow every geometric change of the image:
`scale_crop_flip` scales the image so its shorter side is a random multiple (`scale_range`)
of the crop size, cuts a random `size` x `size` window (padding with zeros, and the mask with
IGNORE, where the scaled image is smaller), and flips left-right with `flip_prob`. The image
is resized with Pillow's antialiased bilinear filter, the mask with nearest neighbour (class
ids are not numbers to interpolate), boxes by the same affine map (`boxes_*`), then clipped
to the window; boxes left with no area are dropped.

`eval_view` is the test-time view: the whole image resized to `size` x `size` (aspect ratio
not kept: no pixel is cut away, and predictions are resized back to the original size before
scoring).

Randomness comes from the numpy Generator the caller passes (seeded with (seed, step)).
Boxes are [N, 4] float32 (x0, y0, x1, y1) in pixels: COCO's [x, y, w, h] -> (x, y, x + w, y + h).
Free of JAX imports, like host_crops.py.
"""
from __future__ import annotations

import math

import numpy as np
import PIL.Image

IGNORE = 255


def resize_image(image_HxWxC: np.ndarray, height: int, width: int) -> np.ndarray:
  if image_HxWxC.shape[:2] == (height, width):
    return image_HxWxC
  return np.asarray(PIL.Image.fromarray(image_HxWxC).resize((width, height),
                                                            PIL.Image.BILINEAR))


def resize_mask(mask_HxW: np.ndarray, height: int, width: int) -> np.ndarray:
  if mask_HxW.shape == (height, width):
    return mask_HxW
  return np.asarray(PIL.Image.fromarray(mask_HxW).resize((width, height), PIL.Image.NEAREST))


def boxes_resize(boxes_Nx4: np.ndarray, sy: float, sx: float) -> np.ndarray:
  return np.asarray(boxes_Nx4, np.float32) * np.array([sx, sy, sx, sy], np.float32)


def boxes_crop(boxes_Nx4: np.ndarray, y0: int, x0: int, height: int,
               width: int) -> tuple[np.ndarray, np.ndarray]:
  """Boxes in the window's coordinates, clipped to it, and which of them keep an area."""
  out = np.asarray(boxes_Nx4, np.float32) - np.array([x0, y0, x0, y0], np.float32)
  out = np.clip(out, 0, np.array([width, height, width, height], np.float32))
  keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
  return out, keep


def boxes_flip(boxes_Nx4: np.ndarray, width: int) -> np.ndarray:
  b = np.asarray(boxes_Nx4, np.float32)
  return np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], axis=1)


def scaled_size(height: int, width: int, shorter: float) -> tuple[int, int]:
  s = shorter / min(height, width)
  return max(1, round(height * s)), max(1, round(width * s))


def scale_crop_flip(image_HxWxC: np.ndarray, mask_HxW: np.ndarray | None = None,
                    boxes_Nx4: np.ndarray | None = None, *, size: int,
                    scale_range: tuple[float, float], flip_prob: float,
                    rng: np.random.Generator):
  """(image [size, size, C], mask [size, size] or None, (boxes, kept) or None): one random
  scale, crop and flip applied to all of them (see the module doc)."""
  h, w = image_HxWxC.shape[:2]
  nh, nw = scaled_size(h, w, rng.uniform(*scale_range) * size)
  image = resize_image(image_HxWxC, nh, nw)
  mask = None if mask_HxW is None else resize_mask(mask_HxW, nh, nw)
  ph, pw = max(nh, size), max(nw, size)
  if (ph, pw) != (nh, nw):
    image = np.pad(image, ((0, ph - nh), (0, pw - nw), (0, 0)))
    if mask is not None:
      mask = np.pad(mask, ((0, ph - nh), (0, pw - nw)), constant_values=IGNORE)
  y0, x0 = int(rng.integers(0, ph - size + 1)), int(rng.integers(0, pw - size + 1))
  image = image[y0:y0 + size, x0:x0 + size]
  mask = None if mask is None else mask[y0:y0 + size, x0:x0 + size]
  boxes = None
  if boxes_Nx4 is not None:
    boxes = boxes_crop(boxes_resize(boxes_Nx4, nh / h, nw / w), y0, x0, size, size)
  if rng.random() < flip_prob:
    image = image[:, ::-1]
    mask = None if mask is None else mask[:, ::-1]
    if boxes is not None:
      boxes = (boxes_flip(boxes[0], size), boxes[1])
  return (np.ascontiguousarray(image), None if mask is None else np.ascontiguousarray(mask),
          boxes)


def eval_view(image_HxWxC: np.ndarray, size: int) -> np.ndarray:
  """The whole image resized to size x size (see the module doc)."""
  return resize_image(image_HxWxC, size, size)


def shrink(image_HxWxC: np.ndarray, mask_HxW: np.ndarray | None,
           shorter: int) -> tuple[np.ndarray, np.ndarray | None]:
  """Image (and mask) with the shorter side at most `shorter`: what training keeps in memory,
  since no crop is ever cut at a larger scale."""
  h, w = image_HxWxC.shape[:2]
  if min(h, w) <= shorter:
    return image_HxWxC, mask_HxW
  nh, nw = scaled_size(h, w, shorter)
  return (resize_image(image_HxWxC, nh, nw),
          None if mask_HxW is None else resize_mask(mask_HxW, nh, nw))


def max_shorter_side(size: int, scale_range: tuple[float, float]) -> int:
  return math.ceil(size * max(scale_range))
