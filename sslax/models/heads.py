"""Heads on top of encoders: projectors and predictors.

`dtype` is the compute dtype (config.model.dtype: the methods pass the encoder's); parameters
stay float32, and the losses cast the heads' outputs to float32 before any softmax.
"""
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
  """Dense layers with BatchNorm + ReLU between them (SimCLR's projector, g(.)).

  The last layer has no norm or activation (SimCLR v1 / v2 practice).
  """
  hidden_dims: Sequence[int]
  out_dim: int
  use_bn: bool = True
  dtype: Any = jnp.float32   # compute dtype; parameters stay float32

  @nn.compact
  def __call__(self, x_BxD: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = x_BxD
    for i, width in enumerate(self.hidden_dims):
      x = nn.Dense(width, use_bias=not self.use_bn, dtype=self.dtype, name=f'hidden{i}')(x)
      if self.use_bn:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
      x = nn.relu(x)
    return nn.Dense(self.out_dim, dtype=self.dtype, name='out')(x)



class DINOHead(nn.Module):
  """DINO's projection head (Caron et al. 2021, sec. 3.1 / appendix): an MLP without
  BatchNorm to a bottleneck, L2 normalisation, then a bias-free linear layer to K logits.

  DINO weight-normalises that last layer; a plain Dense keeps the head simple (the L2-
  normalised bottleneck already bounds the logits' scale up to the weights).
  """
  hidden_dims: Sequence[int]
  bottleneck_dim: int
  out_dim: int
  dtype: Any = jnp.float32   # compute dtype; parameters stay float32

  @nn.compact
  def __call__(self, x_BxD: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = x_BxD
    for i, width in enumerate(self.hidden_dims):
      x = nn.gelu(nn.Dense(width, dtype=self.dtype, name=f'hidden{i}')(x))
    x = nn.Dense(self.bottleneck_dim, dtype=self.dtype, name='bottleneck')(x)
    # The normalisation and the last layer run in float32 whatever the compute dtype: the
    # logits are divided by temperatures as low as 0.04, which would amplify bfloat16's
    # rounding ~25x, and a [bottleneck, K] layer costs little next to the encoder.
    x = x.astype(jnp.float32)
    x = x * jnp.reciprocal(jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12))
    return nn.Dense(self.out_dim, use_bias=False, dtype=jnp.float32, name='last')(x)
