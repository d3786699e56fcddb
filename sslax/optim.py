"""Optimisers from config: optax chains with warmup + cosine and weight-decay masks."""
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
  if o.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(o.grad_clip_norm), tx)
  return tx, lr


def defaults() -> ml_collections.ConfigDict:
  """Every optimiser key a config may set, so overrides of any of them type-check."""
  return ml_collections.ConfigDict(dict(
      name='adamw', learning_rate=1e-3, lr_scales_with_batch=False, warmup_steps=0,
      end_lr_fraction=0.0, weight_decay=1e-4, momentum=0.9, b1=0.9, b2=0.999,
      grad_clip_norm=0.0))
