"""Feature maps of any image method's encoder, and the light heads the dense evaluators train.

Every image method keeps its encoder's parameters under an `encoder` module, at the top of
its params (SimCLR, VICReg, Barlow Twins, MAE) or under `net` (BYOL, MoCo v3, DINO), with its
BatchNorm statistics at the same place under `batch_stats` (`encoder_variables`). The dense
evaluators rebuild the encoder from `config.model` and read its maps
(`feature_maps`): a ResNet's stage outputs (strides 1, 2, 4, ... after the stem), or a ViT's
patch tokens laid back on their grid (stride = patch size). BatchNorm runs in inference mode
with the pretrained statistics, as fine_tune.py does.

Heads (all float32 in, logits at their own resolution; the caller resizes to the image):
- `LinearHead`: one linear map per position of the last feature map: the linear
  segmentation protocol of DINOv2 / MAE (a frozen encoder, logits bilinearly upsampled).
- `FPNHead`: a feature pyramid (Lin et al. 2017) on ResNet stages: 1x1 laterals to one width,
  top-down sums, a 3x3 conv on the finest level, then the classes (Semantic FPN, Kirillov et
  al. 2019, without its multi-level merge: the finest level already holds the sums).
- `UpsampleHead`: progressive upsampling of ViT tokens (SETR-PUP, Zheng et al. 2021): conv,
  GroupNorm, ReLU, 2x bilinear upsampling, until the map is at the image's resolution.
- Detection (evaluators/detection.py): `FPN` (the pyramid alone, one map per level) on ResNet
  stages, `SimplePyramid` (ViTDet) on ViT tokens, and `FCOSHead` on either.

Shape suffixes: B batch, H/W image, h/w feature map, C channels, K classes.
"""
from collections.abc import Sequence
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import errors
from sslax import models

def encoder_variables(params: Any, model_state: Any) -> tuple[Any, Any]:
  """(encoder params, encoder batch_stats or {}) out of a method's params and model state."""
  for prefix in ((), ('net',)):
    p, s = params, model_state
    for key in prefix:
      p = p.get(key, {}) if hasattr(p, 'get') else {}
      s = s.get(key, {}) if hasattr(s, 'get') else {}
    if hasattr(p, 'get') and 'encoder' in p:
      stats = s.get('batch_stats', {}) if hasattr(s, 'get') else {}
      return p['encoder'], (stats.get('encoder', {}) if hasattr(stats, 'get') else {})
  raise errors.ConfigError(
      'the dense evaluators (segmentation, detection) need an image method whose params hold '
      "an 'encoder' module (params['encoder'] or params['net']['encoder']); this method's "
      f'params have {sorted(params) if hasattr(params, "keys") else type(params).__name__}.')


def make_feature_maps(model_config: ml_collections.ConfigDict):
  """feature_maps(encoder_params, batch_stats, x_BxHxWxC in [-1, 1]) -> [maps [B, h, w, C]],
  float32, finest first."""
  if model_config.name not in ('resnet', 'vit'):
    raise errors.ConfigError(f'config.model.name={model_config.name!r}: the dense evaluators '
                             "take a 'resnet' or 'vit' image encoder.")
  encoder = models.make_encoder(model_config)

  def feature_maps(encoder_params, batch_stats, x_BxHxWxC):
    variables = {'params': encoder_params}
    if batch_stats:
      variables['batch_stats'] = batch_stats
    if model_config.name == 'resnet':
      maps = encoder.apply(variables, x_BxHxWxC, train=False, return_stages=True)
      return [m.astype(jnp.float32) for m in maps]
    _, tokens_BxLxD = encoder.apply(variables, x_BxHxWxC, method=encoder.encode)
    b, h, w, _ = x_BxHxWxC.shape
    p = model_config.patch_size
    return [tokens_BxLxD.astype(jnp.float32).reshape(b, h // p, w // p, -1)]

  return feature_maps


def resize(x_BxhxwxC: jax.Array, height: int, width: int) -> jax.Array:
  """Bilinear resize of maps (logits or features) to height x width."""
  b, _, _, c = x_BxhxwxC.shape
  return jax.image.resize(x_BxhxwxC, (b, height, width, c), method='bilinear')


class LinearHead(nn.Module):
  """A linear classifier per position of the last (coarsest) map."""
  num_classes: int

  @nn.compact
  def __call__(self, maps: Sequence[jax.Array]) -> jax.Array:
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros)(maps[-1])


def _norm(width: int) -> nn.Module:
  # GroupNorm: per example, so a sharded batch gives the same result as an unsharded one.
  return nn.GroupNorm(num_groups=min(8, width))


class FPNHead(nn.Module):
  """Top-down feature pyramid on stage maps (finest first) -> logits at the finest level."""
  num_classes: int
  width: int = 64

  @nn.compact
  def __call__(self, maps: Sequence[jax.Array]) -> jax.Array:
    laterals = [nn.Conv(self.width, (1, 1), name=f'lateral{i}')(m) for i, m in enumerate(maps)]
    top = laterals[-1]
    for lateral in reversed(laterals[:-1]):
      top = lateral + resize(top, lateral.shape[1], lateral.shape[2])
    y = nn.relu(_norm(self.width)(nn.Conv(self.width, (3, 3), name='smooth')(top)))
    return nn.Conv(self.num_classes, (1, 1), name='classes')(y)


class UpsampleHead(nn.Module):
  """SETR-PUP on the token grid: (conv 3x3, GroupNorm, ReLU, 2x up) per factor of 2 of the
  stride, so a patch-16 ViT gets 4 stages; logits at (about) the image's resolution."""
  num_classes: int
  stride: int
  width: int = 64

  @nn.compact
  def __call__(self, maps: Sequence[jax.Array]) -> jax.Array:
    y = maps[-1]
    stride = self.stride
    while stride > 1:
      y = nn.relu(_norm(self.width)(nn.Conv(self.width, (3, 3))(y)))
      y = resize(y, y.shape[1] * 2, y.shape[2] * 2)
      stride //= 2
    y = nn.relu(_norm(self.width)(nn.Conv(self.width, (3, 3))(y)))
    return nn.Conv(self.num_classes, (1, 1), name='classes')(y)


def make_head(mode: str, model_config: ml_collections.ConfigDict, num_classes: int,
              width: int) -> nn.Module:
  """mode 'linear': LinearHead; 'fine_tune': FPNHead on a ResNet, UpsampleHead on a ViT."""
  if mode == 'linear':
    return LinearHead(num_classes)
  if model_config.name == 'resnet':
    return FPNHead(num_classes, width)
  return UpsampleHead(num_classes, int(model_config.patch_size), width)


class SimplePyramid(nn.Module):
  """ViTDet's simple feature pyramid from one map of stride p: a 2x transposed conv (p/2),
  the map itself (p) and a 2x max-pool (2p), each to `width` channels."""
  width: int = 64

  @nn.compact
  def __call__(self, maps: Sequence[jax.Array]) -> list[jax.Array]:
    x = maps[-1]
    up = nn.ConvTranspose(self.width, (2, 2), strides=(2, 2), name='up')(x)
    same = nn.Conv(self.width, (1, 1), name='same')(x)
    down = nn.Conv(self.width, (1, 1), name='down')(nn.max_pool(x, (2, 2), (2, 2)))
    return [up, same, down]


class FPN(nn.Module):
  """The pyramid of FPNHead before its classes: 1x1 laterals + top-down sums + 3x3 smooth,
  one map per level (finest first)."""
  width: int = 64

  @nn.compact
  def __call__(self, maps: Sequence[jax.Array]) -> list[jax.Array]:
    laterals = [nn.Conv(self.width, (1, 1), name=f'lateral{i}')(m) for i, m in enumerate(maps)]
    out = [laterals[-1]]
    for lateral in reversed(laterals[:-1]):
      out.insert(0, lateral + resize(out[0], lateral.shape[1], lateral.shape[2]))
    return [nn.Conv(self.width, (3, 3), name=f'smooth{i}')(m) for i, m in enumerate(out)]


class FCOSHead(nn.Module):
  """FCOS (Tian et al. 2019) on a pyramid: a tower of 3x3 conv + GroupNorm + ReLU shared by
  all levels, then per position K class logits, 4 box distances (log scale, in strides) and a
  centre-ness logit. Returns [B, P, K], [B, P, 4], [B, P] over the levels' positions
  concatenated (row-major per level, finest first)."""
  num_classes: int
  width: int = 64
  tower: int = 2
  prior: float = 0.01   # initial foreground probability: the focal loss's stable start

  @nn.compact
  def __call__(self, levels: Sequence[jax.Array]):
    convs = [(nn.Conv(self.width, (3, 3), name=f'tower{i}'), _norm(self.width))
             for i in range(self.tower)]
    bias = -math.log((1 - self.prior) / self.prior)
    cls = nn.Conv(self.num_classes, (3, 3), bias_init=nn.initializers.constant(bias),
                  name='classes')
    box = nn.Conv(4, (3, 3), name='box')
    ctr = nn.Conv(1, (3, 3), name='centreness')
    outs = []
    for x in levels:
      for conv, norm in convs:
        x = nn.relu(norm(conv(x)))
      b = x.shape[0]
      outs.append((cls(x).reshape(b, -1, self.num_classes), box(x).reshape(b, -1, 4),
                   ctr(x).reshape(b, -1)))
    return tuple(jnp.concatenate(parts, axis=1) for parts in zip(*outs))
