"""On-device SimCLR image augmentations (Chen et al. 2020, appendix A), one PRNG key per example.

Strengths and sampling follow torchvision's transforms.

Every single-image op takes `(key, image_HxWxC)` with float32 pixels in [0, 1] and returns the
same shape and range, for C = 1 (grayscale) or C = 3 (RGB). No Python control flow touches traced
values, so ops vmap over a batch inside the jitted train step. Keyword arguments are static Python
numbers, validated at trace time; an op whose strength or probability is 0 is left out.
"""
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array

# Float32 matmuls on TPU/GPU default to bf16/TF32 passes, which would blur exact pixel copies.
_HIGHEST = jax.lax.Precision.HIGHEST
# ITU-R BT.601 luma, as in torchvision's rgb_to_grayscale and PIL's 'L' mode.
_LUMA_RGB = (0.299, 0.587, 0.114)


# --- validation (static Python values, at trace time) ---------------------------------------------

def _check_range(name: str, value: float, low: float = 0.0, high: float = 1.0) -> None:
  if not low <= float(value) <= high:
    raise ValueError(f'{name} must be in [{low}, {high}], got {value!r}.')


def _check_pair(name: str, pair: Sequence[float], *, high: float = math.inf) -> tuple[float, float]:
  """Checks that pair is (low, upper) with 0 < low <= upper <= high; returns it as floats."""
  try:
    low, upper = (float(v) for v in pair)
  except (TypeError, ValueError):
    raise ValueError(f'{name} must be a pair (low, high), got {pair!r}.') from None
  if not 0.0 < low <= upper <= high:
    bound = '' if math.isinf(high) else f' <= {high}'
    raise ValueError(f'{name} must satisfy 0 < low <= high{bound}, got {pair!r}.')
  return low, upper


# --- colour-space helpers -------------------------------------------------------------------------

def luma(image_HxWxC: Array) -> Array:
  """ITU-R 601 luma [H, W, 1] of an RGB image; a grayscale image is its own luma."""
  if image_HxWxC.shape[-1] == 1:
    return image_HxWxC
  return jnp.tensordot(image_HxWxC, jnp.asarray(_LUMA_RGB, image_HxWxC.dtype), axes=([-1], [0]),
                       precision=_HIGHEST)[..., None]


def rgb_to_hsv(rgb_Nx3: Array) -> Array:
  """RGB in [0, 1] -> HSV in [0, 1] (hue in turns), like colorsys; works on any `...x3` shape."""
  r, g, b = rgb_Nx3[..., 0], rgb_Nx3[..., 1], rgb_Nx3[..., 2]
  value = jnp.max(rgb_Nx3, axis=-1)
  delta = value - jnp.min(rgb_Nx3, axis=-1)
  # Divide by a safe denominator so grey pixels give finite hue (and finite gradients).
  safe_delta = jnp.where(delta > 0, delta, 1.0)
  saturation = jnp.where(value > 0, delta / jnp.where(value > 0, value, 1.0), 0.0)
  # The largest channel picks the hue sextant; ties resolve r before g before b, as in colorsys.
  hue = jnp.where(r == value, (g - b) / safe_delta,
                  jnp.where(g == value, 2.0 + (b - r) / safe_delta, 4.0 + (r - g) / safe_delta))
  hue = jnp.where(delta > 0, (hue / 6.0) % 1.0, 0.0)
  return jnp.stack([hue, saturation, value], axis=-1)


def hsv_to_rgb(hsv_Nx3: Array) -> Array:
  """HSV in [0, 1] -> RGB in [0, 1]; inverse of rgb_to_hsv. Works on any `...x3` shape."""
  hue, saturation, value = hsv_Nx3[..., 0], hsv_Nx3[..., 1], hsv_Nx3[..., 2]

  # Branch-free form: channel n is value minus a chroma ramp that is 0 on its own sextants.
  def channel(n: float) -> Array:
    k = (n + hue * 6.0) % 6.0
    return value - value * saturation * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)

  return jnp.stack([channel(5.0), channel(3.0), channel(1.0)], axis=-1)


def adjust_hue(image_HxWx3: Array, delta: Array | float) -> Array:
  """Rotates hue by `delta` turns (in [-0.5, 0.5]) in HSV space."""
  hsv = rgb_to_hsv(image_HxWx3)
  hsv = hsv.at[..., 0].set((hsv[..., 0] + delta) % 1.0)
  return jnp.clip(hsv_to_rgb(hsv), 0.0, 1.0)


def _blend(image: Array, other: Array, factor: Array) -> Array:
  """torchvision's _blend: factor 1 keeps image, 0 gives other; extrapolates beyond 1."""
  return jnp.clip(factor * image + (1.0 - factor) * other, 0.0, 1.0)


# --- geometry -------------------------------------------------------------------------------------

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
  _check_range('out_size', out_size, low=1, high=math.inf)
  _check_range('attempts', attempts, low=1, high=math.inf)
  scale = _check_pair('scale', scale, high=1.0)
  ratio = _check_pair('ratio', ratio)
  height, width, _ = image_HxWxC.shape
  top, left, h, w = _crop_box(key, height, width, scale, ratio, attempts)
  return crop_and_resize(image_HxWxC, top, left, h, w, out_size=out_size)


def random_flip(key: Array, image_HxWxC: Array, *, prob: float = 0.5) -> Array:
  """Horizontal (left-right) flip with probability prob."""
  _check_range('prob', prob)
  if prob == 0.0:
    return image_HxWxC
  return jnp.where(jax.random.uniform(key) < prob, image_HxWxC[:, ::-1], image_HxWxC)


def random_rotation(key: Array, image_HxWxC: Array, *, max_degrees: float = 0.0) -> Array:
  """Rotates about the centre by U[-max_degrees, max_degrees]: bilinear, black fill."""
  _check_range('max_degrees', max_degrees, high=math.inf)
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


# --- photometric ----------------------------------------------------------------------------------

def color_jitter(key: Array, image_HxWxC: Array, *, brightness: float, contrast: float,
                 saturation: float, hue: float, prob: float = 0.8) -> Array:
  """torchvision's ColorJitter applied with probability prob, the four ops in a random order.

  brightness/contrast/saturation s draw a factor ~U[max(0, 1-s), 1+s]; hue h draws a shift
  ~U[-h, h] turns. Saturation and hue need colour, so C=1 images skip them.
  """
  for name, value in dict(brightness=brightness, contrast=contrast, saturation=saturation).items():
    _check_range(name, value, high=math.inf)
  _check_range('hue', hue, high=0.5)
  _check_range('prob', prob)
  colour = image_HxWxC.shape[-1] == 3
  # u[0]: apply?  u[1:5]: sort keys for the order.  u[5:9]: the four strengths.
  u_9 = jax.random.uniform(key, (9,))
  factor = lambda u, s: max(0.0, 1.0 - s) + (1.0 + s - max(0.0, 1.0 - s)) * u
  # Ops at strength 0 are identities, so only the active ones are shuffled (same distribution).
  ops = []
  if brightness > 0:
    f_b = factor(u_9[5], brightness)
    ops.append(lambda x: jnp.clip(x * f_b, 0.0, 1.0))
  if contrast > 0:
    f_c = factor(u_9[6], contrast)
    ops.append(lambda x: _blend(x, jnp.mean(luma(x)), f_c))
  if colour and saturation > 0:
    f_s = factor(u_9[7], saturation)
    ops.append(lambda x: _blend(x, luma(x), f_s))
  if colour and hue > 0:
    shift = hue * (2.0 * u_9[8] - 1.0)
    ops.append(lambda x: adjust_hue(x, shift))
  if prob == 0.0 or not ops:
    return image_HxWxC
  # Sorting i.i.d. uniforms gives a uniformly random permutation.
  order = jnp.argsort(u_9[1:1 + len(ops)])
  # Under vmap, switch evaluates every branch and selects; with <= 4 cheap ops that is fine.
  jittered = jax.lax.fori_loop(0, len(ops), lambda i, x: jax.lax.switch(order[i], ops, x),
                               image_HxWxC)
  return jnp.where(u_9[0] < prob, jittered, image_HxWxC)


def random_grayscale(key: Array, image_HxWxC: Array, *, prob: float = 0.2) -> Array:
  """Replaces an RGB image by its luma in all C channels with probability prob; C=1 is unchanged."""
  _check_range('prob', prob)
  if prob == 0.0 or image_HxWxC.shape[-1] == 1:
    return image_HxWxC
  grey = jnp.broadcast_to(luma(image_HxWxC), image_HxWxC.shape)
  return jnp.where(jax.random.uniform(key) < prob, grey, image_HxWxC)


def gaussian_blur(key: Array, image_HxWxC: Array, *, prob: float = 0.5,
                  sigma: Sequence[float] = (0.1, 2.0), kernel_frac: float = 0.1) -> Array:
  """Separable Gaussian blur, sigma ~U(sigma), kernel ~kernel_frac of the short side (odd, >= 3)."""
  _check_range('prob', prob)
  sigma = _check_pair('sigma', sigma)
  _check_range('kernel_frac', kernel_frac, low=1e-6)
  if prob == 0.0:
    return image_HxWxC
  height, width, _ = image_HxWxC.shape
  # SimCLR: kernel = side // 10, radius = kernel // 2, taps = 2 * radius + 1.
  radius = max(1, int(min(height, width) * kernel_frac) // 2)
  u_2 = jax.random.uniform(key, (2,))
  std = sigma[0] + (sigma[1] - sigma[0]) * u_2[1]
  taps_K = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  kernel_K = jnp.exp(-0.5 * (taps_K / std) ** 2)
  kernel_K = kernel_K / jnp.sum(kernel_K)

  def blur_axis(x: Array, axis: int) -> Array:
    pad = [(radius, radius) if a == axis else (0, 0) for a in range(3)]
    padded = jnp.pad(x, pad, mode='reflect')  # as torchvision: zero padding would darken edges
    size = x.shape[axis]
    # A static sum of shifted slices: a depthwise 1-D convolution without conv's layout shuffles.
    return sum(kernel_K[k] * jax.lax.slice_in_dim(padded, k, k + size, axis=axis)
               for k in range(2 * radius + 1))

  blurred = blur_axis(blur_axis(image_HxWxC, 0), 1)
  return jnp.where(u_2[0] < prob, jnp.clip(blurred, 0.0, 1.0), image_HxWxC)


def solarize(key: Array, image_HxWxC: Array, *, prob: float = 0.0, threshold: float = 0.5) -> Array:
  """Inverts pixels >= threshold with probability prob (BYOL uses prob 0.2 on one view)."""
  _check_range('prob', prob)
  _check_range('threshold', threshold)
  if prob == 0.0:
    return image_HxWxC
  inverted = jnp.where(image_HxWxC >= threshold, 1.0 - image_HxWxC, image_HxWxC)
  return jnp.where(jax.random.uniform(key) < prob, inverted, image_HxWxC)


def gaussian_noise(key: Array, image_HxWxC: Array, *, std: float = 0.0) -> Array:
  """Adds N(0, std²) pixel noise, clipped back to [0, 1]."""
  _check_range('std', std, high=math.inf)
  if std == 0.0:
    return image_HxWxC
  noise = std * jax.random.normal(key, image_HxWxC.shape, image_HxWxC.dtype)
  return jnp.clip(image_HxWxC + noise, 0.0, 1.0)


# --- whole views ----------------------------------------------------------------------------------

def to_float(image: Array) -> Array:
  """uint8 [0, 255] -> float32 [0, 1]; floating images are assumed to be in [0, 1] already."""
  if image.dtype == jnp.uint8:
    return image.astype(jnp.float32) / 255.0
  if not jnp.issubdtype(image.dtype, jnp.floating):
    raise ValueError(f'image must be uint8 or floating, got dtype {image.dtype}.')
  return image.astype(jnp.float32)


def simclr_view(key: Array, image_HxWxC: Array, *, out_size: int,
                crop_scale: Sequence[float] = (0.08, 1.0),
                crop_ratio: Sequence[float] = (3 / 4, 4 / 3), flip_prob: float = 0.5,
                jitter_prob: float = 0.8, brightness: float = 0.4, contrast: float = 0.4,
                saturation: float = 0.4, hue: float = 0.1, grayscale_prob: float = 0.2,
                blur_prob: float = 0.5, blur_sigma: Sequence[float] = (0.1, 2.0),
                solarize_prob: float = 0.0, rotation_degrees: float = 0.0,
                noise_std: float = 0.0, host_cropped: bool = False) -> Array:
  """One SimCLR view: float32 [out_size, out_size, C] in [0, 1] from a uint8 or float image.

  Order: rotation, crop, flip, colour jitter, grayscale, blur, solarize, noise. With
  `host_cropped` the image is a view the host already cropped, resized and flipped
  (data/host_crops.py): crop and flip are left out (rotation then turns the crop).
  """
  if image_HxWxC.ndim != 3 or image_HxWxC.shape[-1] not in (1, 3):
    raise ValueError(f'image must be HxWxC with C in (1, 3), got shape {image_HxWxC.shape}.')
  # Validate here first so that errors name this function's arguments.
  _check_range('out_size', out_size, low=1, high=math.inf)
  _check_pair('crop_scale', crop_scale, high=1.0)
  _check_pair('crop_ratio', crop_ratio)
  _check_pair('blur_sigma', blur_sigma)
  _check_range('hue', hue, high=0.5)
  for name, value in dict(flip_prob=flip_prob, jitter_prob=jitter_prob, blur_prob=blur_prob,
                          grayscale_prob=grayscale_prob, solarize_prob=solarize_prob).items():
    _check_range(name, value)
  for name, value in dict(rotation_degrees=rotation_degrees, noise_std=noise_std,
                          brightness=brightness, contrast=contrast, saturation=saturation).items():
    _check_range(name, value, high=math.inf)
  keys = jax.random.split(key, 8)
  x = to_float(image_HxWxC)
  x = random_rotation(keys[0], x, max_degrees=rotation_degrees)
  if not host_cropped:
    x = random_resized_crop(keys[1], x, out_size=out_size, scale=crop_scale, ratio=crop_ratio)
    x = random_flip(keys[2], x, prob=flip_prob)
  x = color_jitter(keys[3], x, brightness=brightness, contrast=contrast, saturation=saturation,
                   hue=hue, prob=jitter_prob)
  x = random_grayscale(keys[4], x, prob=grayscale_prob)
  x = gaussian_blur(keys[5], x, prob=blur_prob, sigma=blur_sigma)
  x = solarize(keys[6], x, prob=solarize_prob)
  x = gaussian_noise(keys[7], x, std=noise_std)
  # Interpolation can overshoot [0, 1] by float rounding; callers rely on the range.
  return jnp.clip(x, 0.0, 1.0)


def simclr_views(key: Array, images_BxHxWxC: Array, *, num_views: int = 2,
                 **view_kwargs) -> list[Array]:
  """num_views augmented views [B, out_size, out_size, C] of a (global) batch.

  Example i's key is fold_in(key, i) with i its index in the global batch, so a view's random
  draws depend only on (key, i): not on the sharding, the device count or the other examples
  (pixels may differ by float rounding: XLA vectorises reductions per shard shape).

  Views cut on the host (variable-size sources, data/host_crops.py) arrive as
  [B, V, S, S, C] with V >= num_views: view v is the host's view v, and only the photometric
  ops run here.
  """
  _check_range('num_views', num_views, low=1, high=math.inf)
  host_cropped = images_BxHxWxC.ndim == 5
  if host_cropped and images_BxHxWxC.shape[1] < num_views:
    raise ValueError(f'{num_views} views asked of {images_BxHxWxC.shape[1]} host-cropped '
                     'ones; the method\'s host_crops must cut as many as its loss uses.')
  if images_BxHxWxC.ndim not in (4, 5):
    raise ValueError(f'images must be BxHxWxC, got shape {images_BxHxWxC.shape}.')
  batch = images_BxHxWxC.shape[0]
  keys_B = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(batch))
  keys_BxV = jax.vmap(lambda k: jax.random.split(k, num_views))(keys_B)
  # One flat batch of B*V (example-major) rather than nested vmaps: it compiles ~25% faster.
  keys_N = keys_BxV.reshape((batch * num_views,) + keys_BxV.shape[2:])  # raw uint32 keys too
  if host_cropped:
    images_NxHxWxC = images_BxHxWxC[:, :num_views].reshape(
        (batch * num_views,) + images_BxHxWxC.shape[2:])
  else:
    images_NxHxWxC = jnp.repeat(images_BxHxWxC, num_views, axis=0)
  views_NxOxOxC = jax.vmap(functools.partial(simclr_view, host_cropped=host_cropped,
                                             **view_kwargs))(keys_N, images_NxHxWxC)
  views_BxVxOxOxC = views_NxOxOxC.reshape((batch, num_views) + views_NxOxOxC.shape[1:])
  return [views_BxVxOxOxC[:, v] for v in range(num_views)]


# --- evaluation and model input -------------------------------------------------------------------

def eval_view(images_BxHxWxC: Array, out_size: int) -> Array:
  """Deterministic view for evaluation: the central square, resized to out_size², float [0, 1].

  Host-cropped training batches [B, V, S, S, C] (what a method's init sees) give view 0.
  Images already out_size² (eval views made on the host) are only converted.
  """
  if images_BxHxWxC.ndim == 5:
    images_BxHxWxC = images_BxHxWxC[:, 0]
  if images_BxHxWxC.ndim != 4:
    raise ValueError(f'images must be BxHxWxC, got shape {images_BxHxWxC.shape}.')
  height, width = images_BxHxWxC.shape[1:3]
  if height == width == out_size:
    return to_float(images_BxHxWxC)
  side = min(height, width)
  box = ((height - side) // 2, (width - side) // 2, side, side)
  view = lambda x: crop_and_resize(to_float(x), *box, out_size=out_size)
  return jnp.clip(jax.vmap(view)(images_BxHxWxC), 0.0, 1.0)


def normalize(images: Array, mean: Sequence[float] | Array, std: Sequence[float] | Array) -> Array:
  """(images - mean) / std over the last (channel) axis."""
  return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def to_model_range(images: Array) -> Array:
  """[0, 1] pixels -> [-1, 1], the zero-centred range the encoders take (as big_vision)."""
  return images * 2.0 - 1.0

