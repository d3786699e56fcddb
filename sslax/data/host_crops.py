"""Host-side decode, random-resized-crop, resize and flip of variable-size images.

Images of different sizes cannot be stacked into one batch, and at ImageNet scale decoding
them is the input pipeline's main cost, so for such sources the geometric part of the
augmentation happens here, on the host, in grain worker processes (host_views.py): decode,
crop, resize to `data.image_size`, flip. Colour jitter, blur and solarise stay on device
(augment/image.py), applied to these fixed-size views.

Speed comes from decoding JPEGs at reduced DCT scale (libjpeg-turbo via simplejpeg): a crop
box that covers 400x400 source pixels and becomes 112x112 needs only a 1/2- or 1/4-scale
decode, which costs a fraction of a full one, and leaves less than 2x to shrink, which
OpenCV's SIMD bilinear warp does in a fraction of Pillow's time (see `crop_resize`).

Randomness: the crops and flips of one example are a pure function of (seed, step, position
in the global batch), drawn from numpy's PCG64 seeded with those three integers, so a resumed
run and any number of workers or processes produce the same views. The crop box is sampled
as torchvision's RandomResizedCrop (and `augment.image._crop_box`) does.

Deliberately free of JAX and TFDS imports: worker processes import it.
"""
from __future__ import annotations

import dataclasses
import io
import math
from typing import Any, Sequence

import cv2
import numpy as np
import PIL.Image
import simplejpeg

# One thread per resize: the pipeline already runs one decode per core (grain workers or
# read threads), and OpenCV's own pool would only contend with them.
cv2.setNumThreads(1)

# torchvision's RandomResizedCrop tries this many boxes before its centre fallback.
ATTEMPTS = 10
# The smallest reduction asked of libjpeg-turbo's DCT scaling (scales are M/8). 5/8 and
# smaller pay off; 7/8 and 3/4 do not (their IDCTs cost more than the smaller resize saves).
# CPU per 640x480 -> 224 view, random-resized crops, with Pillow's resize (medians of 4
# rounds): minimum factor 2 (1/2 and below) 2.26 ms, 1.5 (5/8 and below) 1.96 ms, 1.25 (3/4
# too) 2.03, 1.1 2.18; with OpenCV's (2026-12-03, medians of 14 alternating rounds of 320
# views, read to batch, two runs): 2 1.44 / 1.28 ms, 1.5 1.34 / 1.21 ms. libjpeg-turbo's
# fast IDCT and upsampling (simplejpeg's fastdct/fastupsample) gave 1.35 / 1.14 ms, within
# this machine's run-to-run noise and not bit-equal to other decoders: not used.
MIN_DCT_FACTOR = 1.5
_JPEG_MAGIC = b'\xff\xd8'


@dataclasses.dataclass(frozen=True)
class CropSpec:
  """`count` views of `size`² from boxes of area fraction ~U(scale), aspect ~logU(ratio),
  each flipped left-right with probability `flip_prob`; the views go to batch key `key`."""
  key: str
  count: int
  size: int
  scale: tuple[float, float]
  ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip_prob: float = 0.5


def rng_for(seed: int, step: int, position: int) -> np.random.Generator:
  """The generator of one example's host crops: the (seed, step, example) contract."""
  return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step), int(position)])


def sample_box(rng: np.random.Generator, height: int, width: int, scale: Sequence[float],
               ratio: Sequence[float], attempts: int = ATTEMPTS) -> tuple[int, int, int, int]:
  """(top, left, h, w) sampled like torchvision's RandomResizedCrop.get_params.

  All candidates are drawn at once and the first that fits is kept (the distribution of
  torchvision's retry loop, with a fixed number of draws so the stream never depends on data).
  """
  u = rng.random(2 * attempts + 2)
  area = height * width * (scale[0] + (scale[1] - scale[0]) * u[:attempts])
  log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
  aspect = np.exp(log_lo + (log_hi - log_lo) * u[attempts:2 * attempts])
  w_t = np.round(np.sqrt(area * aspect))
  h_t = np.round(np.sqrt(area / aspect))
  fits = (w_t >= 1) & (w_t <= width) & (h_t >= 1) & (h_t <= height)
  if fits.any():
    first = int(np.argmax(fits))
    h, w = int(h_t[first]), int(w_t[first])
    top = min(int(u[-2] * (height - h + 1)), height - h)
    left = min(int(u[-1] * (width - w + 1)), width - w)
    return top, left, h, w
  # torchvision's fallback: the whole image cut to the nearest allowed aspect ratio.
  h, w = height, width
  if width / height < ratio[0]:
    h = max(1, round(width / ratio[0]))
  elif width / height > ratio[1]:
    w = max(1, round(height * ratio[1]))
  return (height - h) // 2, (width - w) // 2, h, w


def is_encoded(image: Any) -> bool:
  return isinstance(image, (bytes, bytearray)) or (
      isinstance(image, np.ndarray) and image.dtype == object)


def as_bytes(image: Any) -> bytes:
  return image.item() if isinstance(image, np.ndarray) else bytes(image)


def image_size(data: bytes) -> tuple[int, int]:
  """(height, width) from the header alone."""
  if data[:2] == _JPEG_MAGIC:
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    return height, width
  with PIL.Image.open(io.BytesIO(data)) as image:
    return image.size[1], image.size[0]


def decode(data: bytes, channels: int, min_height: int = 0, min_width: int = 0) -> np.ndarray:
  """uint8 [h, w, channels]; JPEGs at the smallest DCT scale with h >= min_height and
  w >= min_width (0: full size). Other formats (PNG) decode at full size.

  Raises ValueError for data that does not decode (the caller names the file).
  """
  if data[:2] == _JPEG_MAGIC:
    try:
      pixels = simplejpeg.decode_jpeg(data, colorspace='RGB' if channels == 3 else 'GRAY',
                                      min_height=min_height, min_width=min_width,
                                      min_factor=MIN_DCT_FACTOR)
      return pixels if pixels.ndim == 3 else pixels[..., None]
    except ValueError:
      pass   # e.g. CMYK or arithmetic-coded JPEGs: Pillow below reads more variants
  try:
    with PIL.Image.open(io.BytesIO(data)) as image:
      pixels = np.asarray(image.convert('RGB' if channels == 3 else 'L'))
  except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as e:
    raise ValueError(f'cannot decode image: {e}') from None
  return pixels if pixels.ndim == 3 else pixels[..., None]


def crop_resize(pixels: np.ndarray, top: float, left: float, height: float, width: float,
                size: int, flip: bool = False) -> np.ndarray:
  """The box [top, top+height) x [left, left+width) (fractional allowed) of uint8 [H, W, C]
  resized to [size, size, C] uint8, mirrored left-right if `flip`.

  The filter is bilinear, sampling the box at the output's pixel centres (borders clamped),
  unless the box shrinks more than 2x: there it averages by area (each output pixel the mean
  of the source area it covers; OpenCV's INTER_AREA, FFCV's choice), on the box rounded to
  whole pixels. Bilinear is what big_vision's and SimCLR's TF crops use; up to 2x every
  source pixel still contributes (2x exactly is the 2x2 mean), beyond it pixels would be
  skipped (aliasing). JPEG crops are decoded at the DCT scale that leaves less than 2x to
  shrink, so bilinear is the common case, and OpenCV's SIMD does it in ~0.2 ms per 224² view
  against ~0.6-0.9 ms for area averaging and 0.9-1.4 ms for Pillow's antialiased bilinear
  (docs/vision.md). Both filters are within 1 of 255 of float64 references
  (tests/test_host_crops.py).
  """
  if min(height, width) >= size and max(height, width) > 2 * size:
    r0, c0 = round(top), round(left)
    r1 = min(max(round(top + height), r0 + 1), pixels.shape[0])
    c1 = min(max(round(left + width), c0 + 1), pixels.shape[1])
    view = cv2.resize(pixels[r0:r1, c0:c1], (size, size), interpolation=cv2.INTER_AREA)
  else:
    # Output pixel (x, y) samples the source at (left + (x + 0.5) * rx - 0.5, ...).
    rx, ry = width / size, height / size
    to_source = np.array([[rx, 0.0, left + 0.5 * rx - 0.5], [0.0, ry, top + 0.5 * ry - 0.5]])
    view = cv2.warpAffine(pixels, to_source, (size, size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
  if flip:
    view = cv2.flip(view, 1)
  return view.reshape(size, size, pixels.shape[-1])


def _scaled_decode(image: Any, channels: int, factor: float,
                   full_hw: tuple[int, int]) -> tuple[np.ndarray, float, float]:
  """(pixels, row scale, column scale): the image decoded at the smallest scale >= `factor`
  (output pixels per source pixel of the most demanding box), so no view is upsampled from a
  reduced decode."""
  if not is_encoded(image):
    return np.ascontiguousarray(image), 1.0, 1.0
  height, width = full_hw
  min_h, min_w = (0, 0) if factor >= 1 else (math.ceil(height * factor),
                                             math.ceil(width * factor))
  pixels = decode(as_bytes(image), channels, min_h, min_w)
  return pixels, pixels.shape[0] / height, pixels.shape[1] / width


def full_size(record: dict[str, Any]) -> tuple[int, int] | None:
  """(height, width) stored beside encoded bytes, or read from a decoded image."""
  image = record['image']
  if not is_encoded(image):
    return np.asarray(image).shape[:2]
  if 'height' in record and 'width' in record:
    return int(record['height']), int(record['width'])
  return None


def train_views(record: dict[str, Any], specs: Sequence[CropSpec], channels: int,
                rng: np.random.Generator, reduced: bool = True,
                out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
  """{spec.key: uint8 [count, size, size, C]} for one record, written into `out` if given
  (a batch's row: no stacking copies).

  The image is decoded once, at the scale the largest crop-to-view ratio of all views needs
  (`reduced=False`: always full size), and every view is cut from that decode.
  """
  image = record['image']
  hw = full_size(record)
  if hw is None:
    hw = image_size(as_bytes(image))
  height, width = hw
  boxes = []
  for spec in specs:
    for _ in range(spec.count):
      box = sample_box(rng, height, width, spec.scale, spec.ratio)
      flip = rng.random() < spec.flip_prob
      boxes.append((spec, box, flip))
  # The decode must serve the view that needs the most source pixels per output pixel.
  need = max(max(s.size / b[2], s.size / b[3]) for s, b, _ in boxes)
  pixels, sy, sx = _scaled_decode(image, channels, need if reduced else 1.0, hw)
  if out is None:
    out = {s.key: np.empty((s.count, s.size, s.size, channels), np.uint8) for s in specs}
  filled = dict.fromkeys(out, 0)
  for spec, (top, left, h, w), flip in boxes:
    out[spec.key][filled[spec.key]] = crop_resize(pixels, top * sy, left * sx, h * sy,
                                                  w * sx, spec.size, flip)
    filled[spec.key] += 1
  return out


def eval_view(record: dict[str, Any], size: int, channels: int) -> np.ndarray:
  """uint8 [size, size, C]: the shorter side resized to `size`, then the centre square (the
  same view as `augment.image.eval_view`: the central square, resized)."""
  image = record['image']
  hw = full_size(record)
  if hw is None:
    hw = image_size(as_bytes(image))
  height, width = hw
  side = min(height, width)
  pixels, sy, sx = _scaled_decode(image, channels, size / side, hw)
  top, left = (height - side) // 2, (width - side) // 2
  return crop_resize(pixels, top * sy, left * sx, side * sy, side * sx, size)
