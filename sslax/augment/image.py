"""On-device SimCLR views (Chen et al. 2020, appendix A) of a batch, one PRNG key per example:
the geometric ops (geometry.py) then the photometric ones (photometric.py) in SimCLR's order;
the deterministic evaluation view and the encoders' input range.
"""
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from sslax.augment import geometry, photometric
from sslax.augment.arg_checks import check_pair, check_range

Array = jax.Array


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
  check_range('out_size', out_size, low=1, high=math.inf)
  check_pair('crop_scale', crop_scale, high=1.0)
  check_pair('crop_ratio', crop_ratio)
  check_pair('blur_sigma', blur_sigma)
  check_range('hue', hue, high=0.5)
  for name, value in dict(flip_prob=flip_prob, jitter_prob=jitter_prob, blur_prob=blur_prob,
                          grayscale_prob=grayscale_prob, solarize_prob=solarize_prob).items():
    check_range(name, value)
  for name, value in dict(rotation_degrees=rotation_degrees, noise_std=noise_std,
                          brightness=brightness, contrast=contrast, saturation=saturation).items():
    check_range(name, value, high=math.inf)
  keys = jax.random.split(key, 8)
  x = to_float(image_HxWxC)
  x = geometry.random_rotation(keys[0], x, max_degrees=rotation_degrees)
  if not host_cropped:
    x = geometry.random_resized_crop(keys[1], x, out_size=out_size, scale=crop_scale,
                                     ratio=crop_ratio)
    x = geometry.random_flip(keys[2], x, prob=flip_prob)
  x = photometric.color_jitter(keys[3], x, brightness=brightness, contrast=contrast,
                               saturation=saturation, hue=hue, prob=jitter_prob)
  x = photometric.random_grayscale(keys[4], x, prob=grayscale_prob)
  x = photometric.gaussian_blur(keys[5], x, prob=blur_prob, sigma=blur_sigma)
  x = photometric.solarize(keys[6], x, prob=solarize_prob)
  x = photometric.gaussian_noise(keys[7], x, std=noise_std)
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
  check_range('num_views', num_views, low=1, high=math.inf)
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
  view = lambda x: geometry.crop_and_resize(to_float(x), *box, out_size=out_size)
  return jnp.clip(jax.vmap(view)(images_BxHxWxC), 0.0, 1.0)


def normalize(images: Array, mean: Sequence[float] | Array, std: Sequence[float] | Array) -> Array:
  """(images - mean) / std over the last (channel) axis."""
  return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def to_model_range(images: Array) -> Array:
  """[0, 1] pixels -> [-1, 1], the zero-centred range the encoders take (as big_vision)."""
  return images * 2.0 - 1.0
