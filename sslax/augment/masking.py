"""Token masking on device, with per-example keys like the image augmentations.

Example i of a (global) batch draws from fold_in(key, i), so its mask depends only on
(key, i): not on the sharding, the device count or the other examples.
"""
import jax
import jax.numpy as jnp


def num_kept(num_patches: int, mask_ratio: float) -> int:
  """Visible patches per example at `mask_ratio` (at least one)."""
  if not 0.0 <= mask_ratio < 1.0:
    raise ValueError(f'config.mae.mask_ratio={mask_ratio} must be in [0, 1) (MAE uses 0.75).')
  return max(1, int(round(num_patches * (1.0 - mask_ratio))))


def random_patch_mask(key: jax.Array, batch_size: int, num_patches: int,
                      mask_ratio: float) -> tuple[jax.Array, jax.Array]:
  """MAE's per-example uniform random masking (He et al. 2021, sec. 3).

  Returns:
    keep_BxK: int32 indices of the K visible patches of each example, ascending.
    mask_BxL: float32, 1 where the patch is masked (hidden from the encoder), 0 where visible.
  """
  k = num_kept(num_patches, mask_ratio)
  def one(i):
    noise_L = jax.random.uniform(jax.random.fold_in(key, i), (num_patches,))
    # The K patches with the smallest noise are kept: a uniform random subset.
    return jnp.sort(jnp.argsort(noise_L)[:k]).astype(jnp.int32)
  keep_BxK = jax.vmap(one)(jnp.arange(batch_size))
  mask_BxL = jnp.ones((batch_size, num_patches), jnp.float32)
  mask_BxL = jax.vmap(lambda m, idx: m.at[idx].set(0.0))(mask_BxL, keep_BxK)
  return keep_BxK, mask_BxL
