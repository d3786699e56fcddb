"""MAE (He et al. 2021, "Masked Autoencoders Are Scalable Vision Learners").

Each image (one random-resized-crop + flip view) is cut into L patches; a random
`mae.mask_ratio` of them is masked per example, on device. The ViT encoder sees only the K
visible patches; a light transformer decoder gets their encodings back in place, a shared
learned mask token everywhere else, and position embeddings, and predicts every patch's
pixels. The loss is the mean squared error on the masked patches only, against per-patch-
normalised pixels (`mae.norm_pix_loss`). Evaluators use the encoder's pooled features on all
patches of the unmasked image.

`mae.encoder_sees_all` is a benchmark baseline, not a training variant: the encoder then
runs on all L tokens, the masked ones with their patch embedding zeroed (no pixels leak),
which costs what encoding with [M] tokens would.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import errors
from sslax import losses
from sslax import methods
from sslax import models
from sslax.augment import image as image_aug
from sslax.augment import masking
from sslax.data import host_crops as host_crops_lib
from sslax.models import vit


class MAEModel(nn.Module):
  encoder: vit.ViT
  decoder_width: int
  decoder_depth: int
  decoder_heads: int
  encoder_sees_all: bool = False

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array, keep_BxK: jax.Array,
               mask_BxL: jax.Array) -> jax.Array:
    """Predicted pixels of every patch, [B, L, p*p*C]."""
    b, h, w, c = x_BxHxWxC.shape
    p = self.encoder.patch_size
    num_patches = (h // p) * (w // p)
    if self.encoder_sees_all:
      visible_x = x_BxHxWxC * _pixel_mask(1.0 - mask_BxL, h, w, p)[..., None]
      _, tokens_BxLxD = self.encoder.encode(visible_x)
      visible_BxKxD = vit.gather_tokens(tokens_BxLxD, keep_BxK)
    else:
      _, visible_BxKxD = self.encoder.encode(x_BxHxWxC, keep_BxK)
    # The decoder computes in the encoder's dtype; masked_mse casts its output to float32.
    dtype = self.encoder.dtype
    y_BxKxE = nn.Dense(self.decoder_width, dtype=dtype, name='decoder_embed')(visible_BxKxD)
    mask_token = self.param('mask_token', nn.initializers.normal(0.02), (self.decoder_width,))
    full_BxLxE = jnp.broadcast_to(mask_token.astype(dtype), (b, num_patches, self.decoder_width))
    full_BxLxE = jax.vmap(lambda f, idx, v: f.at[idx].set(v))(full_BxLxE, keep_BxK, y_BxKxE)
    full_BxLxE = full_BxLxE + jnp.asarray(vit.sincos_2d(h // p, self.decoder_width), dtype)
    out_BxLxE = vit.Transformer(self.decoder_depth, self.decoder_heads,
                                4 * self.decoder_width, dtype, name='decoder')(full_BxLxE)
    return nn.Dense(p * p * c, dtype=dtype, name='decoder_pred')(out_BxLxE)


def _pixel_mask(keep_BxL: jax.Array, h: int, w: int, p: int) -> jax.Array:
  """Per-patch values [B, L] spread to pixels [B, H, W]."""
  grid_BxGxG = keep_BxL.reshape(keep_BxL.shape[0], h // p, w // p)
  return jnp.repeat(jnp.repeat(grid_BxGxG, p, axis=1), p, axis=2)


def host_crops(config: ml_collections.ConfigDict) -> list[host_crops_lib.CropSpec]:
  """One view per image (methods.host_crops): MAE's crop and flip."""
  a = config.augment
  return [host_crops_lib.CropSpec('image', 1, config.data.image_size, tuple(a.crop_scale),
                                  tuple(a.crop_ratio), float(a.flip_prob))]


def make(config: ml_collections.ConfigDict) -> methods.Method:
  cfg = config.mae
  if config.model.name != 'vit':
    raise errors.ConfigError(
        f"config.model.name={config.model.name!r}: MAE needs config.model.name="
        "'vit' (the encoder must accept a subset of patch tokens).")
  encoder = models.make_encoder(config.model)
  model = MAEModel(encoder=encoder, decoder_width=cfg.decoder_width,
                   decoder_depth=cfg.decoder_depth, decoder_heads=cfg.decoder_heads,
                   encoder_sees_all=cfg.get('encoder_sees_all', False))
  size, patch = config.data.image_size, config.model.patch_size
  if size % patch:
    raise errors.ConfigError(f'config.data.image_size={size} is not divisible by '
                             f'config.model.patch_size={patch}.')
  num_patches = (size // patch) ** 2
  num_kept = masking.num_kept(num_patches, cfg.mask_ratio)

  def init(rng, batch):
    x = image_aug.to_model_range(image_aug.eval_view(batch['image'][:1], size))
    keep, mask = masking.random_patch_mask(rng, 1, num_patches, cfg.mask_ratio)
    variables = model.init(rng, x, keep, mask)
    return variables['params'], {}, {}

  def loss(params, model_state, extra, batch, rng):
    del extra
    view_key, mask_key = jax.random.split(rng)
    (view,) = image_aug.simclr_views(view_key, batch['image'], num_views=1, out_size=size,
                                     **config.augment)
    x_BxSxSxC = image_aug.to_model_range(view)
    keep_BxK, mask_BxL = masking.random_patch_mask(mask_key, x_BxSxSxC.shape[0], num_patches,
                                                   cfg.mask_ratio)
    pred_BxLxP = model.apply({'params': params}, x_BxSxSxC, keep_BxK, mask_BxL)
    target_BxLxP = vit.patchify(x_BxSxSxC, patch)
    if cfg.norm_pix_loss:
      target_BxLxP = losses.normalize_patches(target_BxLxP)
    value = losses.masked_mse(pred_BxLxP, target_BxLxP, mask_BxL)
    return value, (model_state, {'visible_patches': jnp.asarray(num_kept, jnp.float32)})

  def embed(params, model_state, batch):
    del model_state
    x = image_aug.to_model_range(image_aug.eval_view(batch['image'], size))
    return encoder.apply({'params': params['encoder']}, x).astype(jnp.float32)

  return methods.Method(init=init, loss=loss, update_extra=methods.no_extra, embed=embed)
