"""Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words") for SSL.

Pre-norm transformer blocks on non-overlapping patches. It can encode a subset of the patch
tokens (`keep_BxK`, token indices into the L = (H/p)(W/p) patches): MAE's encoder sees only the
visible patches, so its cost scales with K, not L (He et al. 2021).

Weights carry logical axis names for tensor parallelism, the same Megatron split as the text
Transformer (`text.Block`): attention heads and MLP hidden units over 'model', the width
('embed') over 'fsdp' (sharding.LOGICAL_AXIS_RULES).

`dtype` (config.model.dtype) is the compute dtype of every layer; parameters stay float32 and
the attention softmax runs in float32.

Drop path (stochastic depth; Huang et al. 2016, as DeiT / MoCo v3 / DINO ViTs use it): in
training each block's residual branches are dropped per example with a rate rising linearly
from 0 at the first block to `drop_path_rate` at the last. It needs a 'dropout' rng; a pass
without one (eval, and the EMA target / teacher, which DINO runs without drop path) is
deterministic.

Shape suffixes: B batch, L patches, K kept patches, D width, P pixels per patch.
"""
from typing import Any

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


def _named(init, *names: str | None):
  """`init` whose parameter carries logical axis names (the trainer unboxes them)."""
  return nn.with_logical_partitioning(init, names)


class DropPath(nn.Module):
  """Zeroes a residual branch for a random `rate` of the examples, scaling the rest by
  1 / (1 - rate) so the expected output is unchanged; identity without a 'dropout' rng."""
  rate: float

  @nn.compact
  def __call__(self, y_BxTxD: jax.Array, train: bool) -> jax.Array:
    if not train or self.rate == 0.0 or not self.has_rng('dropout'):
      return y_BxTxD
    keep_Bx1x1 = jax.random.bernoulli(self.make_rng('dropout'), 1.0 - self.rate,
                                      (y_BxTxD.shape[0], 1, 1))
    return y_BxTxD * (keep_Bx1x1.astype(y_BxTxD.dtype) / (1.0 - self.rate))


class Block(nn.Module):
  """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32
  drop_path: float = 0.0

  @nn.compact
  def __call__(self, x_BxTxD: jax.Array, train: bool = False) -> jax.Array:
    width = x_BxTxD.shape[-1]
    dense_init = nn.initializers.xavier_uniform()  # MAE / timm practice
    zeros = nn.initializers.zeros_init()
    y = nn.LayerNorm(dtype=self.dtype)(x_BxTxD)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dtype=self.dtype, force_fp32_for_softmax=True,
        kernel_init=_named(dense_init, 'embed', 'heads', 'head_dim'),
        bias_init=_named(zeros, 'heads', 'head_dim'),
        out_kernel_init=_named(dense_init, 'heads', 'head_dim', 'embed'),
        out_bias_init=_named(zeros, 'embed'))(y, y)
    x_BxTxD = x_BxTxD + DropPath(self.drop_path)(y, train)
    y = nn.LayerNorm(dtype=self.dtype)(x_BxTxD)
    y = nn.Dense(self.mlp_dim, dtype=self.dtype, kernel_init=_named(dense_init, 'embed', 'mlp'),
                 bias_init=_named(zeros, 'mlp'))(y)
    y = nn.Dense(width, dtype=self.dtype, kernel_init=_named(dense_init, 'mlp', 'embed'),
                 bias_init=_named(zeros, 'embed'))(nn.gelu(y))
    return x_BxTxD + DropPath(self.drop_path)(y, train)


class Transformer(nn.Module):
  depth: int
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32
  drop_path_rate: float = 0.0   # the last block's rate; block i gets rate * i / (depth - 1)

  @nn.compact
  def __call__(self, x_BxTxD: jax.Array, train: bool = False) -> jax.Array:
    x_BxTxD = x_BxTxD.astype(self.dtype)
    for i in range(self.depth):
      rate = self.drop_path_rate * i / max(self.depth - 1, 1)
      x_BxTxD = Block(self.num_heads, self.mlp_dim, self.dtype, rate,
                      name=f'block{i}')(x_BxTxD, train)
    return nn.LayerNorm(dtype=self.dtype, name='final_norm')(x_BxTxD)


class ViT(nn.Module):
  """ViT encoder: `__call__(x, train)` -> pooled [B, D] (the encoder contract);
  `encode(x, keep_BxK)` -> (pooled [B, D], patch tokens [B, K, D]) on the kept patches.

  `pool`: 'cls' returns the class token's output (ViT, MoCo v3, DINO: the contrastive and
  distillation losses train that token as the image's summary); 'mean' the mean of the patch
  tokens (MAE, whose loss never reaches a class token)."""
  patch_size: int = 4
  width: int = 128
  depth: int = 4
  num_heads: int = 4
  mlp_ratio: int = 4
  pool: str = 'mean'
  pos_emb: str = 'sincos'
  dtype: Any = jnp.float32  # compute dtype; parameters stay float32
  drop_path_rate: float = 0.0

  @nn.compact
  def encode(self, x_BxHxWxC: jax.Array, keep_BxK: jax.Array | None = None,
             train: bool = False) -> tuple[jax.Array, jax.Array]:
    if self.pool not in POOLS:
      raise errors.ConfigError(
          f'config.model.pool={self.pool!r} is unknown; choose one of {POOLS}.')
    if self.pos_emb not in POS_EMBS:
      raise errors.ConfigError(f'config.model.pos_emb={self.pos_emb!r} is unknown; '
                               f'choose one of {POS_EMBS}.')
    patches_BxLxP = patchify(x_BxHxWxC, self.patch_size)
    num_patches = patches_BxLxP.shape[1]
    # A Dense on flattened patches is the strided patch convolution, without the reshapes.
    tokens_BxLxD = nn.Dense(
        self.width, dtype=self.dtype, name='patch_embed',
        kernel_init=_named(nn.initializers.xavier_uniform(), None, 'embed'),
        bias_init=_named(nn.initializers.zeros_init(), 'embed'))(patches_BxLxP)
    # Position tables are float32; cast, or they would promote the tokens back to float32.
    if self.pos_emb == 'sincos':
      pos_LxD = jnp.asarray(sincos_2d(int(round(num_patches ** 0.5)), self.width))
    else:
      pos_LxD = self.param('pos_embedding', _named(nn.initializers.normal(0.02), None, 'embed'),
                           (num_patches, self.width))
    tokens_BxLxD = tokens_BxLxD + pos_LxD.astype(self.dtype)
    # Position embeddings are added before the gather, so kept tokens keep their positions.
    if keep_BxK is not None:
      tokens_BxLxD = gather_tokens(tokens_BxLxD, keep_BxK)
    transformer = Transformer(self.depth, self.num_heads, self.mlp_ratio * self.width,
                              self.dtype, self.drop_path_rate, name='transformer')
    if self.pool == 'cls':
      cls = self.param('cls', _named(nn.initializers.normal(0.02), None, None, 'embed'),
                       (1, 1, self.width))
      cls_Bx1xD = jnp.broadcast_to(cls.astype(self.dtype), (tokens_BxLxD.shape[0], 1, self.width))
      out = transformer(jnp.concatenate([cls_Bx1xD, tokens_BxLxD], axis=1), train)
      return out[:, 0], out[:, 1:]
    out = transformer(tokens_BxLxD, train)
    return jnp.mean(out, axis=1), out

  def __call__(self, x_BxHxWxC: jax.Array, train: bool = False) -> jax.Array:
    # `train` only switches drop path on (with a 'dropout' rng); there are no batch statistics.
    return self.encode(x_BxHxWxC, train=train)[0]
