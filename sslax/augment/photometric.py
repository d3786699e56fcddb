"""On-device photometric image ops: colour jitter, grayscale, blur, solarize and noise (SimCLR,
Chen et al. 2020, appendix A; strengths and sampling as torchvision's), with the colour-space
helpers they need; one PRNG key per example.

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
# ITU-R BT.601 luma, as in torchvision's rgb_to_grayscale and PIL's 'L' mode.
_LUMA_RGB = (0.299, 0.587, 0.114)


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


# --- random ops -----------------------------------------------------------------------------------

def color_jitter(key: Array, image_HxWxC: Array, *, brightness: float, contrast: float,
                 saturation: float, hue: float, prob: float = 0.8) -> Array:
  """torchvision's ColorJitter applied with probability prob, the four ops in a random order.

  brightness/contrast/saturation s draw a factor ~U[max(0, 1-s), 1+s]; hue h draws a shift
  ~U[-h, h] turns. Saturation and hue need colour, so C=1 images skip them.
  """
  for name, value in dict(brightness=brightness, contrast=contrast, saturation=saturation).items():
    check_range(name, value, high=math.inf)
  check_range('hue', hue, high=0.5)
  check_range('prob', prob)
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
  check_range('prob', prob)
  if prob == 0.0 or image_HxWxC.shape[-1] == 1:
    return image_HxWxC
  grey = jnp.broadcast_to(luma(image_HxWxC), image_HxWxC.shape)
  return jnp.where(jax.random.uniform(key) < prob, grey, image_HxWxC)


def gaussian_blur(key: Array, image_HxWxC: Array, *, prob: float = 0.5,
                  sigma: Sequence[float] = (0.1, 2.0), kernel_frac: float = 0.1) -> Array:
  """Separable Gaussian blur, sigma ~U(sigma), kernel ~kernel_frac of the short side (odd, >= 3)."""
  check_range('prob', prob)
  sigma = check_pair('sigma', sigma)
  check_range('kernel_frac', kernel_frac, low=1e-6)
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
  check_range('prob', prob)
  check_range('threshold', threshold)
  if prob == 0.0:
    return image_HxWxC
  inverted = jnp.where(image_HxWxC >= threshold, 1.0 - image_HxWxC, image_HxWxC)
  return jnp.where(jax.random.uniform(key) < prob, inverted, image_HxWxC)


def gaussian_noise(key: Array, image_HxWxC: Array, *, std: float = 0.0) -> Array:
  """Adds N(0, std²) pixel noise, clipped back to [0, 1]."""
  check_range('std', std, high=math.inf)
  if std == 0.0:
    return image_HxWxC
  noise = std * jax.random.normal(key, image_HxWxC.shape, image_HxWxC.dtype)
  return jnp.clip(image_HxWxC + noise, 0.0, 1.0)
