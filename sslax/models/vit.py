"""Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words") for SSL.

Pre-norm transformer blocks on non-overlapping patches. It can encode a subset of the patch
tokens (`keep_BxK`, token indices into the L = (H/p)(W/p) patches): MAE's encoder sees only the
visible patches, so its cost scales with K, not L (He et al. 2021).

Weights are plain (unboxed) arrays for now; logical axis names for FSDP/TP come with the
sharding rules (sharding.py replicates the whole state today).
Shape suffixes: B batch, L patches, K kept patches, D width, P pixels per patch.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sslax import errors

POOLS = ('cls', 'mean')
POS_EMBS = ('sincos', 'learned')


def patchify(images_BxHxWxC: jax.Array, patch_size: int) -> jax.Array:
  """[B, H, W, C] -> [B, L, p*p*C], patches in row-major order, pixels (row, col, channel)."""
  b, h, w, c = images_BxHxWxC.shape
  p = patch_size
  if h % p or w % p:
    raise errors.ConfigError(f'image size {h}x{w} is not divisible by config.model.patch_size={p}; '
                             'pick a patch size that divides config.data.image_size.')
  x = images_BxHxWxC.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (h // p) * (w // p), p * p * c)


def sincos_2d(grid_size: int, width: int) -> np.ndarray:
  """Fixed 2-D sine-cosine position embeddings (MAE, MoCo v3), [grid_size**2, width]."""
  if width % 4:
    raise errors.ConfigError(f'config.model.width={width} must be a multiple of 4 for sincos '
                             "position embeddings; or set config.model.pos_emb='learned'.")
  omega_F = 1.0 / 10000 ** (np.arange(width // 4, dtype=np.float64) / (width // 4))
  rows, cols = np.meshgrid(np.arange(grid_size), np.arange(grid_size), indexing='ij')
  out = [f(np.outer(axis.reshape(-1), omega_F)) for axis in (rows, cols) for f in (np.sin, np.cos)]
  return np.concatenate(out, axis=1).astype(np.float32)


def gather_tokens(tokens_BxLxD: jax.Array, keep_BxK: jax.Array) -> jax.Array:
  """tokens_BxLxD[b, keep_BxK[b]] -> [B, K, D]."""
  return jnp.take_along_axis(tokens_BxLxD, keep_BxK[..., None], axis=1)


class Block(nn.Module):
  """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""
  num_heads: int
  mlp_dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    width = x_BxTxD.shape[-1]
    dense_init = nn.initializers.xavier_uniform()  # MAE / timm practice
    y = nn.LayerNorm(dtype=self.dtype)(x_BxTxD)
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, kernel_init=dense_init,
                                        dtype=self.dtype)(y, y)
    x_BxTxD = x_BxTxD + y
    y = nn.LayerNorm(dtype=self.dtype)(x_BxTxD)
    y = nn.Dense(self.mlp_dim, kernel_init=dense_init, dtype=self.dtype)(y)
    y = nn.Dense(width, kernel_init=dense_init, dtype=self.dtype)(nn.gelu(y))
    return x_BxTxD + y


class Transformer(nn.Module):
  depth: int
  num_heads: int
  mlp_dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    for i in range(self.depth):
      x_BxTxD = Block(self.num_heads, self.mlp_dim, self.dtype, name=f'block{i}')(x_BxTxD)
    return nn.LayerNorm(dtype=self.dtype, name='final_norm')(x_BxTxD)


class ViT(nn.Module):
  """ViT encoder: `__call__(x, train)` -> pooled [B, D] (the encoder contract);
  `encode(x, keep_BxK)` -> (pooled [B, D], patch tokens [B, K, D]) on the kept patches."""
  patch_size: int = 4
  width: int = 128
  depth: int = 4
  num_heads: int = 4
  mlp_ratio: int = 4
  pool: str = 'mean'
  pos_emb: str = 'sincos'
  dtype: jnp.dtype = jnp.float32  # compute dtype; parameters stay float32

  @nn.compact
  def encode(self, x_BxHxWxC: jax.Array,
             keep_BxK: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    if self.pool not in POOLS:
      raise errors.ConfigError(
          f'config.model.pool={self.pool!r} is unknown; choose one of {POOLS}.')
    if self.pos_emb not in POS_EMBS:
      raise errors.ConfigError(f'config.model.pos_emb={self.pos_emb!r} is unknown; '
                               f'choose one of {POS_EMBS}.')
    patches_BxLxP = patchify(x_BxHxWxC, self.patch_size)
    num_patches = patches_BxLxP.shape[1]
    # A Dense on flattened patches is the strided patch convolution, without the reshapes.
    tokens_BxLxD = nn.Dense(self.width, kernel_init=nn.initializers.xavier_uniform(),
                            dtype=self.dtype, name='patch_embed')(patches_BxLxP)
    if self.pos_emb == 'sincos':
      tokens_BxLxD = tokens_BxLxD + sincos_2d(int(round(num_patches ** 0.5)), self.width)
    else:
      tokens_BxLxD = tokens_BxLxD + self.param('pos_embedding', nn.initializers.normal(0.02),
                                               (num_patches, self.width))
    # Position embeddings are added before the gather, so kept tokens keep their positions.
    if keep_BxK is not None:
      tokens_BxLxD = gather_tokens(tokens_BxLxD, keep_BxK)
    transformer = Transformer(self.depth, self.num_heads, self.mlp_ratio * self.width,
                              self.dtype, name='transformer')
    if self.pool == 'cls':
      cls = self.param('cls', nn.initializers.normal(0.02), (1, 1, self.width))
      cls_Bx1xD = jnp.broadcast_to(cls, (tokens_BxLxD.shape[0], 1, self.width))
      out = transformer(jnp.concatenate([cls_Bx1xD, tokens_BxLxD], axis=1))
      return out[:, 0], out[:, 1:]
    out = transformer(tokens_BxLxD)
    return jnp.mean(out, axis=1), out

  def __call__(self, x_BxHxWxC: jax.Array, train: bool = False) -> jax.Array:
    del train  # no dropout or batch statistics
    return self.encode(x_BxHxWxC)[0]
