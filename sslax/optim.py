"""Optimisers from config: optax chains with warmup + cosine, weight-decay masks and ViT
layer-wise learning-rate decay."""
import re
from typing import Any

import jax
import ml_collections
import optax

from sslax import errors

OPTIMIZERS = ('lars', 'adamw', 'sgd', 'lamb')


def schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warmup to `optim.learning_rate`, then cosine decay to `optim.end_lr_fraction`.

  With `optim.lr_scales_with_batch`, the peak is lr * batch_size / 256 (Goyal et
  al. 2017, as SimCLR does for LARS).
  """
  o = config.optim
  peak = o.learning_rate * (config.batch_size / 256 if o.lr_scales_with_batch else 1.0)
  warmup = min(int(o.warmup_steps), max(config.total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup,
      decay_steps=max(config.total_steps, warmup + 1), end_value=peak * o.end_lr_fraction)


def decay_mask(params: Any) -> Any:
  """True for weights that get weight decay (and LARS trust ratios): kernels and
  embeddings, not biases or normalisation scales (SimCLR / BYOL practice)."""
  def keep(path, leaf):
    name = str(getattr(path[-1], 'key', path[-1]))
    return leaf.ndim > 1 and name not in ('bias', 'scale')
  return jax.tree_util.tree_map_with_path(keep, params)


# The ViT's parameter names (models/vit.py): its patch and position embeddings and class token
# are the stem (layer 0); `transformer/block{i}` is layer i + 1.
_VIT_STEM = ('patch_embed', 'pos_embedding', 'cls')
_VIT_BLOCK = re.compile(r'block(\d+)$')


def _vit_layer(keys: tuple[str, ...]) -> int | None:
  """0 for the stem, i + 1 for transformer block i, None for anything else (final norm,
  heads, MAE's decoder: the top)."""
  for parent, key in zip(keys, keys[1:]):
    match = _VIT_BLOCK.match(key)
    if parent == 'transformer' and match:
      return int(match.group(1)) + 1
  return 0 if any(k in _VIT_STEM for k in keys) else None


def layer_decay_scales(params: Any, decay: float) -> Any:
  """Per-parameter learning-rate scales of layer-wise lr decay (BEiT, Bao et al. 2021; MAE
  fine-tuning, He et al. 2021 sec. A.2): with L ViT blocks, block i (from 0) gets
  decay^(L - i), the stem decay^(L + 1), everything above the last block 1."""
  keys = lambda path: tuple(str(getattr(k, 'key', k)) for k in path)
  layers = [_vit_layer(keys(p)) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
  depth = max((l for l in layers if l is not None), default=0)
  if depth == 0:
    raise errors.ConfigError('config.optim.layer_decay < 1 needs a ViT (transformer/block{i} '
                             "parameters); set it to 1.0 or use config.model.name='vit'.")
  def scale(path, leaf):
    layer = _vit_layer(keys(path))
    return decay ** (depth + 1 - (depth + 1 if layer is None else layer))
  return jax.tree_util.tree_map_with_path(scale, params)


def scale_by_layer_decay(decay: float) -> optax.GradientTransformation:
  """Multiplies each update by its `layer_decay_scales`: after the optimiser, that is the
  learning rate (and its decoupled weight decay) scaled per layer; no extra state."""
  def init(params):
    del params
    return optax.EmptyState()
  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, s: u * s, updates, layer_decay_scales(updates, decay)), state
  return optax.GradientTransformation(init, update)


def make(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, optax.Schedule]:
  o = config.optim
  lr = schedule(config)
  name = o.name
  if name == 'lars':
    tx = optax.lars(lr, weight_decay=o.weight_decay, weight_decay_mask=decay_mask,
                    trust_ratio_mask=decay_mask, momentum=o.momentum)
  elif name == 'adamw':
    tx = optax.adamw(lr, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay, mask=decay_mask)
  elif name == 'lamb':
    tx = optax.lamb(lr, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay, mask=decay_mask)
  elif name == 'sgd':
    tx = optax.chain(optax.add_decayed_weights(o.weight_decay, mask=decay_mask),
                     optax.sgd(lr, momentum=o.momentum, nesterov=True))
  else:
    raise errors.ConfigError(f'config.optim.name={name!r} is unknown; choose one of {OPTIMIZERS}.')
  decay = o.get('layer_decay', 1.0)
  if not 0.0 < decay <= 1.0:
    raise errors.ConfigError(f'config.optim.layer_decay={decay} must be in (0, 1] (1 = off; MAE '
                             'fine-tunes ViT-B with 0.65).')
  if decay < 1.0:
    tx = optax.chain(tx, scale_by_layer_decay(decay))
  if o.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(o.grad_clip_norm), tx)
  return tx, lr


def defaults() -> ml_collections.ConfigDict:
  """Every optimiser key a config may set, so overrides of any of them type-check."""
  return ml_collections.ConfigDict(dict(
      name='adamw', learning_rate=1e-3, lr_scales_with_batch=False, warmup_steps=0,
      end_lr_fraction=0.0, weight_decay=1e-4, momentum=0.9, b1=0.9, b2=0.999,
      grad_clip_norm=0.0, layer_decay=1.0))
