"""Methods: each pretext task is a bundle of pure functions the shared trainer calls.

`train.py` never branches on the method; everything method-specific (views,
masking, targets, EMA, the loss) lives behind this interface.
"""
from collections.abc import Callable
import importlib
import pkgutil
from typing import Any, NamedTuple

import jax
import ml_collections

from sslax import errors
from sslax import sharding
from sslax.data import host_crops as host_crops_lib
from sslax.data import host_views

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class Method(NamedTuple):
  # init(rng, batch) -> (params, model_state, extra); `batch` may be abstract (shapes only).
  # params may be flax-boxed with logical axis names (nn.with_logical_partitioning): the
  # trainer stores them unboxed and shards them by those names (sharding.LOGICAL_AXIS_RULES).
  init: Callable[[jax.Array, Batch], tuple[Any, Any, Any]]
  # loss(params, model_state, extra, batch, rng) -> (scalar, (new_model_state, metrics))
  loss: Callable[[Any, Any, Any, Batch, jax.Array], tuple[jax.Array, tuple[Any, Metrics]]]
  # update_extra(extra, params, step) -> extra: EMA targets, queues, centres.
  update_extra: Callable[[Any, Any, jax.Array], Any]
  # embed(params, model_state, batch) -> [B, D] features for the evaluators.
  embed: Callable[[Any, Any, Batch], jax.Array]
  # Optional split of `loss` for GradCache (sslax/grad_cache.py, config.grad_accum_steps > 1):
  # embed_inputs(batch, rng) -> inputs, a pytree of [M, ...] (views, over the global batch);
  # forward(params, model_state, extra, inputs) -> (embeddings, a pytree of [M, ...] leaves,
  #   new_model_state); `extra` (EMA targets) is read, never differentiated;
  # loss_from_embeddings(embeddings) -> (scalar, metrics).
  embed_inputs: Callable[[Batch, jax.Array], Any] | None = None
  forward: Callable[[Any, Any, Any], tuple[jax.Array, Any]] | None = None
  loss_from_embeddings: Callable[[jax.Array], tuple[jax.Array, Metrics]] | None = None
  # Optional, for evaluators with a head per token or frame (qa, asr):
  # embed_sequence(params, model_state, batch) -> (features [B, L, D], mask [B, L] bool),
  # the encoder's last hidden states before pooling and which positions are real.
  embed_sequence: Callable[[Any, Any, Batch], tuple[jax.Array, jax.Array]] | None = None


# The methods whose contrastive loss has a chunked (shard_map) form, and the name validate.py
# uses for them: `config.<method>.chunked_loss=True` switches it on.
CHUNKED_LOSS = {'simclr': 'SimCLR', 'mocov3': 'MoCo v3', 'cpc': 'CPC',
                'clip_contrast': 'clip contrast'}


def chunked_loss_mesh(config: ml_collections.ConfigDict, section: str):
  """The mesh for `config.<section>.chunked_loss` (None when off): train.run builds config.mesh
  over all devices, and the chunked loss's shard_map must use the same one."""
  chunked = config[section].get('chunked_loss', False)
  if not isinstance(chunked, bool):
    raise errors.ConfigError(f'config.{section}.chunked_loss={chunked!r} must be True or False.')
  return sharding.make_mesh(config.mesh) if chunked else None


def no_extra(extra: Any, params: Any, step: jax.Array) -> Any:
  """The `update_extra` of methods with no EMA target, queue or centre to update."""
  del params, step
  return extra


def available() -> list[str]:
  """The names `config.method` accepts, sorted: one per module of sslax/methods.

  Example: `'simclr' in sslax.methods.available()`.
  """
  # Modules named `_x` hold parts shared by several methods, not methods.
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith('_'))


def get(name: str) -> Callable[[ml_collections.ConfigDict], Method]:
  """The `make(config) -> Method` of methods/<name>.py."""
  if name not in available():
    raise errors.ConfigError(f'config.method={name!r} is unknown; choose one of '
                             f'{", ".join(available())}.')
  return importlib.import_module(f'{__name__}.{name}').make


def host_crops(config: ml_collections.ConfigDict) -> list[host_crops_lib.CropSpec]:
  """The views a method wants cut on the host from variable-size images (data/host_crops.py):
  its module's `host_crops(config)`, else two views at data.image_size with config.augment's
  crop scale, ratio and flip (SimCLR, BYOL, MoCo v3, VICReg, Barlow Twins). The trainer hands
  them to the data layer (data/train_batches.py), which cuts them."""
  module = importlib.import_module(f'{__name__}.{config.method}')
  if hasattr(module, 'host_crops'):
    return module.host_crops(config)
  a = config.augment
  return [host_crops_lib.CropSpec('image', 2, config.data.image_size, tuple(a.crop_scale),
                                  tuple(a.crop_ratio), float(a.flip_prob))]


def train_crops(config: ml_collections.ConfigDict) -> list[host_crops_lib.CropSpec] | None:
  """`host_crops(config)` when the training images vary in size and are cut on the host
  (data/host_views.py); None when batches stack the images as stored. What the trainer and
  sslax.load hand the data layer, which knows nothing of methods."""
  d = config.data
  if not host_views.host_channels(d.source, d.data_dir or None, d.get('bad_files', 'error')):
    return None
  return host_crops(config)
