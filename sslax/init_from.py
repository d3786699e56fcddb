"""`config.init_from=PATH`: start a run from the weights of a workdir or an export.

The fresh state at step 0 is built as usual (sslax/train.py), then every array of its
`params` and `model_state` whose name (the '/'-joined path, sslax/artifacts.py's convention) is
in PATH's weights takes PATH's value; arrays PATH lacks (a new head, another method's
predictor) keep their initialisation, and PATH's arrays the method has no place for are
ignored. An array with no exact match takes PATH's array of the same path from the
`encoder` module on, when there is exactly one (SimCLR's 'params/encoder/...' feeds BYOL's
'params/net/encoder/...'), so one method's encoder can start another's. A shape or dtype
mismatch is an error naming the array. Method state that the
method's init made as a copy of a parameter (BYOL's and MoCo v3's EMA target, DINO's
teacher, their BatchNorm statistics) is found by that equality at init and follows the
loaded value, so a continued BYOL run starts with target == online, as the paper's does.
The optimiser state and the step start fresh: this is a new run, not a resume.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from sslax import artifacts
from sslax import errors


def _suffix(name: str) -> str:
  """A name without its first two components ('extra/target/x' -> 'x')."""
  return name.split('/', 2)[-1]


def _encoder_key(name: str) -> tuple[str, str] | None:
  """(group, path from the 'encoder' module on): the name of an encoder array across methods
  that nest it differently ('params/encoder/x' of SimCLR, 'params/net/encoder/x' of BYOL)."""
  parts = name.split('/')
  if 'encoder' not in parts[1:]:
    return None
  return parts[0], '/'.join(parts[parts.index('encoder', 1):])


def apply(state, path: str) -> tuple[Any, str]:
  """(state with PATH's weights, a one-line summary). `state` is a TrainState (any layout)."""
  params, model_state, step = artifacts.load_weights(path)
  loaded = {**artifacts.flatten(params, 'params'),
            **artifacts.flatten(model_state, 'model_state')}
  init = {**artifacts.flatten(state.params, 'params'),
          **artifacts.flatten(state.model_state, 'model_state'),
          **artifacts.flatten(state.extra, 'extra')}
  by_encoder: dict[tuple[str, str], list[str]] = {}
  for n in loaded:
    if _encoder_key(n):
      by_encoder.setdefault(_encoder_key(n), []).append(n)
  sources = {}
  for name in init:
    if name in loaded:
      sources[name] = name
    elif len(by_encoder.get(_encoder_key(name), ())) == 1:
      sources[name] = by_encoder[_encoder_key(name)][0]   # e.g. SimCLR's into BYOL's 'net'
  for name, value in init.items():
    if name in sources or name.startswith('params/'):
      continue
    # A copy made at init (EMA target / teacher, its BN statistics) of a loaded array.
    twins = [n for n in sources if _suffix(n) == _suffix(name)
             and init[n].shape == value.shape and np.array_equal(init[n], value)]
    if len(twins) == 1:
      sources[name] = sources[twins[0]]
  new = {}
  for name, source in sources.items():
    value = init[name]
    if loaded[source].shape != value.shape or loaded[source].dtype != value.dtype:
      raise errors.ConfigError(
          f'config.init_from={path!r}: {source} is {loaded[source].dtype}'
          f'{list(loaded[source].shape)} there but {value.dtype}{list(value.shape)} in this '
          f'config ({name}); the model config must match the one it was trained with '
          '(config.model, data.image_size, vocabulary).')
    new[name] = loaded[source]
  from_params = [n for n in new if n.startswith('params/')]
  if not from_params:
    raise errors.ConfigError(
        f'config.init_from={path!r} holds no parameter this method has (its names start '
        f'{sorted(loaded)[:3]}, this config\'s {sorted(init)[:3]}); use a workdir or export of '
        'the same method and model.')

  def replaced(tree: Any, prefix: str) -> Any:
    def leaf(key_path, value):
      name = '/'.join([prefix] + [str(getattr(k, 'key', k)) for k in key_path])
      if name not in new:
        return value
      sharding = getattr(value, 'sharding', None)
      return jax.device_put(new[name], sharding) if sharding is not None else new[name]
    return jax.tree_util.tree_map_with_path(leaf, tree)

  state = state.replace(params=replaced(state.params, 'params'),
                        model_state=replaced(state.model_state, 'model_state'),
                        extra=replaced(state.extra, 'extra'))
  fresh = sorted(n for n in init if n.startswith('params/') and n not in new)
  summary = (f'init_from {path} (step {step}): {len(new)} of {len(init)} arrays loaded'
             + (f'; initialised fresh: {", ".join(fresh[:5])}'
                + (f' and {len(fresh) - 5} more' if len(fresh) > 5 else '') if fresh else ''))
  return state, summary
