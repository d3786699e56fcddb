"""Multi-crop views on device (2 global + N local crops), built from `image.simclr_views`."""
from collections.abc import Sequence

import jax

from sslax import errors
from sslax.augment import image


def multi_crop_views(key: jax.Array, images_BxHxWxC: jax.Array, *,
                     local_images: jax.Array | None = None, num_global: int,
                     num_local: int, global_size: int, local_size: int,
                     global_scale: Sequence[float], local_scale: Sequence[float],
                     **view_kwargs) -> tuple[list[jax.Array], list[jax.Array]]:
  """Multi-crop (Caron et al. 2020, SwAV; DINO 2021): `num_global` views at global_size² with
  crop areas ~U(global_scale), and `num_local` smaller views at local_size² with crop areas
  ~U(local_scale), each with the rest of the SimCLR augmentation (`view_kwargs`).

  Global and local views draw from independent keys, per example as in `simclr_views`.
  Images cropped on the host (variable-size sources, data/host_crops.py) arrive as
  [B, num_global, S, S, C] global views and `local_images` [B, num_local, s, s, C]; only the
  photometric part runs here then.

  Returns:
    (global views, local views): lists of float32 [B, size, size, C] in [0, 1].
  """
  if 'crop_scale' in view_kwargs:
    raise ValueError('multi_crop_views takes global_scale and local_scale, not crop_scale.')
  if num_local < 0:
    raise errors.ConfigError(f'num_local={num_local} must be >= 0 (config.dino.num_local).')
  global_views = image.simclr_views(jax.random.fold_in(key, 0), images_BxHxWxC, num_views=num_global,
                              out_size=global_size, crop_scale=global_scale, **view_kwargs)
  local_views = []
  if num_local:
    local = images_BxHxWxC if local_images is None else local_images
    local_views = image.simclr_views(jax.random.fold_in(key, 1), local, num_views=num_local,
                               out_size=local_size, crop_scale=local_scale, **view_kwargs)
  return global_views, local_views
