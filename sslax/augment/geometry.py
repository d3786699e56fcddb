"""On-device geometric image ops: exact crop-and-resize, torchvision's RandomResizedCrop, flip and
rotation (SimCLR, Chen et al. 2020, appendix A), one PRNG key per example.

Every op takes `(key, image_HxWxC)` with float32 pixels in [0, 1] and returns the same range,
for C = 1 (grayscale) or C = 3 (RGB). No Python control flow touches traced values, so ops vmap
over a batch inside the jitted train step. Keyword arguments are static Python numbers,
validated at trace time; an op whose strength or probability is 0 is left out.
"""
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from sslax.augment.arg_checks import check_pair, check_range

Array = jax.Array

# Float32 matmuls on TPU/GPU default to bf16/TF32 passes, which would blur exact pixel copies.
_HIGHEST = jax.lax.Precision.HIGHEST


def _resize_weights(start: Array, length: Array, in_size: int, out_size: int) -> Array:
  """Bilinear weights [out_size, in_size] resampling input pixels [start, start+length).

  The triangle kernel, half-pixel centres and antialiasing of jax.image.scale_and_translate, but
  pixels outside the box get no weight: scale_and_translate on the whole image would blend in the
  pixels just outside the box, so it would not equal cutting the box out and resizing it.
  """
  start, length = jnp.asarray(start, jnp.float32), jnp.asarray(length, jnp.float32)
  inv_scale = length / out_size
  centre_O = (jnp.arange(out_size, dtype=jnp.float32) + 0.5) * inv_scale - 0.5
  offset_I = jnp.arange(in_size, dtype=jnp.float32) - start
  kernel_scale = jnp.maximum(inv_scale, 1.0)
  w_OxI = jnp.maximum(0.0, 1.0 - jnp.abs(centre_O[:, None] - offset_I[None, :]) / kernel_scale)
  w_OxI = jnp.where((offset_I >= 0) & (offset_I < length), w_OxI, 0.0)
  # Every output centre lies within half a pixel of an in-box pixel, so each row sum is > 0.
  return w_OxI / jnp.sum(w_OxI, axis=1, keepdims=True)


def crop_and_resize(image_HxWxC: Array, top: Array, left: Array, height: Array, width: Array, *,
                    out_size: int) -> Array:
  """Cuts rows [top, top+height) x cols [left, left+width) and resizes bilinearly to out_size².

  Box coordinates may be traced (integer-valued) scalars; the result equals
  `jax.image.resize(image[top:top+height, left:left+width], (out_size, out_size, C), 'linear')`.
  """
  in_h, in_w, _ = image_HxWxC.shape
  rows_OxH = _resize_weights(top, height, in_h, out_size)
  cols_PxW = _resize_weights(left, width, in_w, out_size)
  out_OxWxC = jnp.einsum('oh,hwc->owc', rows_OxH, image_HxWxC, precision=_HIGHEST)
  return jnp.einsum('pw,owc->opc', cols_PxW, out_OxWxC, precision=_HIGHEST)


def _centre_box(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
  """torchvision's fallback: the whole image, cut to the nearest allowed aspect ratio."""
  in_ratio = width / height
  if in_ratio < ratio[0]:
    return max(1, round(width / ratio[0])), width
  if in_ratio > ratio[1]:
    return height, max(1, round(height * ratio[1]))
  return height, width


def _crop_box(key: Array, height: int, width: int, scale: tuple[float, float],
              ratio: tuple[float, float], attempts: int) -> tuple[Array, Array, Array, Array]:
  """(top, left, h, w) as float32 scalars, sampled like RandomResizedCrop.get_params.

  torchvision retries up to `attempts` times; here all candidates are drawn at once and the first
  one that fits is kept, which gives the same distribution without a data-dependent loop.
  """
  # One draw per op: each threefry call costs ~0.3 s of XLA compile time on CPU under vmap.
  u_U = jax.random.uniform(key, (2 * attempts + 2,))
  area_T = height * width * (scale[0] + (scale[1] - scale[0]) * u_U[:attempts])
  # Aspect ratio is log-uniform so that r and 1/r are equally likely.
  log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
  aspect_T = jnp.exp(log_lo + (log_hi - log_lo) * u_U[attempts:2 * attempts])
  w_T = jnp.round(jnp.sqrt(area_T * aspect_T))
  h_T = jnp.round(jnp.sqrt(area_T / aspect_T))
  fits_T = (w_T >= 1) & (w_T <= width) & (h_T >= 1) & (h_T <= height)
  first = jnp.argmax(fits_T)  # argmax returns the first maximum
  found = jnp.any(fits_T)
  fallback_h, fallback_w = _centre_box(height, width, ratio)
  h = jnp.where(found, h_T[first], fallback_h)
  w = jnp.where(found, w_T[first], fallback_w)
  # floor(u * (n + 1)) is uniform on {0..n}; the minimum guards u * (n + 1) rounding up to n + 1.
  top = jnp.minimum(jnp.floor(u_U[-2] * (height - h + 1)), height - h)
  left = jnp.minimum(jnp.floor(u_U[-1] * (width - w + 1)), width - w)
  top = jnp.where(found, top, (height - fallback_h) // 2)
  left = jnp.where(found, left, (width - fallback_w) // 2)
  return top, left, h, w


def random_resized_crop(key: Array, image_HxWxC: Array, *, out_size: int,
                        scale: Sequence[float] = (0.08, 1.0),
                        ratio: Sequence[float] = (3 / 4, 4 / 3), attempts: int = 10) -> Array:
  """Crop of area fraction ~U(scale), aspect ~logU(ratio), resized to [out_size, out_size, C]."""
  check_range('out_size', out_size, low=1, high=math.inf)
  check_range('attempts', attempts, low=1, high=math.inf)
  scale = check_pair('scale', scale, high=1.0)
  ratio = check_pair('ratio', ratio)
  height, width, _ = image_HxWxC.shape
  top, left, h, w = _crop_box(key, height, width, scale, ratio, attempts)
  return crop_and_resize(image_HxWxC, top, left, h, w, out_size=out_size)


def random_flip(key: Array, image_HxWxC: Array, *, prob: float = 0.5) -> Array:
  """Horizontal (left-right) flip with probability prob."""
  check_range('prob', prob)
  if prob == 0.0:
    return image_HxWxC
  return jnp.where(jax.random.uniform(key) < prob, image_HxWxC[:, ::-1], image_HxWxC)


def random_rotation(key: Array, image_HxWxC: Array, *, max_degrees: float = 0.0) -> Array:
  """Rotates about the centre by U[-max_degrees, max_degrees]: bilinear, black fill."""
  check_range('max_degrees', max_degrees, high=math.inf)
  if max_degrees == 0.0:
    return image_HxWxC
  height, width, _ = image_HxWxC.shape
  angle = jnp.deg2rad(jax.random.uniform(key, minval=-max_degrees, maxval=max_degrees))
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  y_HxW, x_HxW = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32) - (height - 1) / 2,
                              jnp.arange(width, dtype=jnp.float32) - (width - 1) / 2, indexing='ij')
  # Inverse mapping: each output pixel reads the input point that the rotation carries onto it.
  src_y = cos * y_HxW - sin * x_HxW + (height - 1) / 2
  src_x = sin * y_HxW + cos * x_HxW + (width - 1) / 2
  sample = lambda plane_HxW: jax.scipy.ndimage.map_coordinates(
      plane_HxW, [src_y, src_x], order=1, mode='constant', cval=0.0)
  return jax.vmap(sample, in_axes=-1, out_axes=-1)(image_HxWxC)
