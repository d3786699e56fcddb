"""Encoder over log-mel frames: a convolutional front end, then transformer blocks.

The front end (two 1-D convolutions over time, GELU) turns each frame and its neighbours into
a local feature z_t at the frame rate; transformer blocks (the pre-LN `text.Block`, learned
positions) turn those into contextual features h_t. With `causal=True` the convolutions are
padded on the left only and attention is masked to the past, so h_t depends on frames <= t
only: what next-frame prediction (APC, CPC) needs. Padded frames are never attended to.

`dtype` (config.model.dtype) is the compute dtype of every layer and of the heads;
parameters stay float32, the attention softmax runs in float32 (see `text.Block`).

Shape suffixes: B = batch, F = frames, M = mel bins, D = width.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from sslax import errors
from sslax.models import precision
from sslax.models import text


class AudioTransformer(nn.Module):
  """(frames [B, F, M], mask [B, F]) → (contextual h [B, F, D], local z [B, F, D])."""
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  max_frames: int
  conv_kernel: int = 3
  causal: bool = False
  dtype: Any = jnp.float32   # compute dtype; parameters stay float32

  def _conv(self, x_BxFxC: jnp.ndarray, name: str) -> jnp.ndarray:
    k = self.conv_kernel
    padding = [(k - 1, 0)] if self.causal else [((k - 1) // 2, k // 2)]
    return nn.Conv(self.width, (k,), padding=padding, dtype=self.dtype, name=name)(x_BxFxC)

  @nn.compact
  def __call__(self, x_BxFxM: jnp.ndarray, mask_BxF: jnp.ndarray):
    length = x_BxFxM.shape[1]
    if length > self.max_frames:
      raise errors.ConfigError(f'{length} frames exceed config.model.max_frames={self.max_frames} '
                               'learned positions; raise it or shorten config.data.clip_seconds.')
    # The mask and position table are cast to the compute dtype: a float32 operand would
    # silently promote the activations back to float32.
    keep_BxFx1 = mask_BxF[..., None].astype(self.dtype)
    h_BxFxD = nn.gelu(self._conv(x_BxFxM * keep_BxFx1, 'conv0'))
    z_BxFxD = nn.gelu(self._conv(h_BxFxD, 'conv1')) * keep_BxFx1
    pos_FxD = self.param('pos_embed', nn.initializers.normal(0.02), (self.max_frames, self.width))
    x_BxFxD = (nn.LayerNorm(dtype=self.dtype, name='ln_in')(z_BxFxD)
               + pos_FxD[:length].astype(self.dtype))
    attend_Bx1xFxF = nn.make_attention_mask(mask_BxF, mask_BxF)
    if self.causal:
      attend_Bx1xFxF = nn.combine_masks(attend_Bx1xFxF, nn.make_causal_mask(mask_BxF))
    # A padded query has no key left; it attends to itself so no softmax row is empty.
    attend_Bx1xFxF = jnp.logical_or(attend_Bx1xFxF, jnp.eye(length, dtype=bool))
    for i in range(self.depth):
      x_BxFxD = text.Block(self.num_heads, self.mlp_dim, self.dtype,
                           name=f'block{i}')(x_BxFxD, attend_Bx1xFxF)
    return nn.LayerNorm(dtype=self.dtype, name='ln_final')(x_BxFxD), z_BxFxD


def masked_mean(h_BxFxD: jnp.ndarray, mask_BxF: jnp.ndarray) -> jnp.ndarray:
  """Mean over real frames, [B, D] (float32)."""
  w_BxFx1 = mask_BxF[..., None].astype(jnp.float32)
  return (h_BxFxD.astype(jnp.float32) * w_BxFx1).sum(1) / jnp.maximum(w_BxFx1.sum(1), 1.0)


def from_config(model_config: ml_collections.ConfigDict, *, causal: bool) -> AudioTransformer:
  m = model_config
  if m.width % m.num_heads:
    raise errors.ConfigError(
        f'config.model.width={m.width} is not divisible by config.model.num_heads='
        f'{m.num_heads}; pick a head count that divides the width.')
  return AudioTransformer(width=m.width, depth=m.depth, num_heads=m.num_heads,
                          mlp_dim=m.mlp_dim, max_frames=m.max_frames,
                          conv_kernel=m.get('conv_kernel', 3), causal=causal,
                          dtype=precision.compute_dtype(m))


class WithHeads(nn.Module):
  """An audio encoder plus `num_outputs` linear heads on its contextual features h: one per
  step ahead k (APC, CPC's W_k) or one reconstruction head (masked frames)."""
  encoder: nn.Module
  out_dim: int
  num_outputs: int
  zero_init: bool = False   # heads start at 0 (a residual prediction starts at its baseline)

  @nn.compact
  def __call__(self, x_BxFxM: jnp.ndarray, mask_BxF: jnp.ndarray):
    """→ (h [B, F, D], z [B, F, D], [num_outputs x [B, F, out_dim]])."""
    h_BxFxD, z_BxFxD = self.encoder(x_BxFxM, mask_BxF)
    init = nn.initializers.zeros if self.zero_init else nn.linear.default_kernel_init
    # The heads compute in the encoder's dtype; the losses cast their inputs to float32.
    dtype = getattr(self.encoder, 'dtype', jnp.float32)
    preds = [nn.Dense(self.out_dim, kernel_init=init, dtype=dtype, name=f'head{i}')(h_BxFxD)
             for i in range(self.num_outputs)]
    return h_BxFxD, z_BxFxD, preds
