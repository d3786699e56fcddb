"""What a run and an export leave behind, read without the trainer or the evaluators.

A `sslax.main` workdir holds `config.json` (the resolved config), `input_spec.json` (what one
example of each model input looks like) and `checkpoints/` (Orbax). A `sslax.export`
directory holds the same two JSON files, `weights.safetensors` and the MANIFEST. This module
names those files and reads them; `sslax.load` (encoder.py), `config.init_from`
(init_from.py), `sslax.export` and `sslax.evaluate` build on it, so none of them needs the
trainer, and this module needs nothing of sslax above storage and the config defaults.

Weights are named by their '/'-joined pytree path under 'params/' or 'model_state/' (for
example 'params/encoder/Conv_0/kernel'): the safetensors names, and the names
`config.init_from` matches.
"""
from __future__ import annotations

from collections.abc import Mapping
import json
import logging as py_logging
from typing import Any

from etils import epath
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from safetensors import numpy as safetensors_numpy

from sslax import config_base
from sslax import errors
from sslax import storage

CONFIG = 'config.json'
INPUT_SPEC = 'input_spec.json'
CHECKPOINTS = 'checkpoints'
# The export format (sslax/export.py writes it).
MANIFEST = 'sslax_export.json'
FORMAT = 'sslax-encoder'
FORMAT_VERSION = 1
WEIGHTS = 'weights.safetensors'
FUNCTION = 'embed.jax_export'
# What a method's embed reads, by modality; other batch keys (label, mask) are not inputs.
INPUT_KEYS = {'image': ('image',), 'video': ('image',), 'text': ('tokens',),
              'audio': ('audio', 'audio_len')}


# ---- the resolved config ---------------------------------------------------------------------

def _tuples(node: Any) -> Any:
  """JSON turns the config's tuples into lists; modules and probes expect tuples back."""
  if isinstance(node, dict):
    return {k: _tuples(v) for k, v in node.items()}
  if isinstance(node, list):
    return tuple(_tuples(v) for v in node)
  return node


def read_config(path: str) -> ml_collections.ConfigDict:
  """The resolved config a run (or an export) wrote to `path/config.json`.

  `eval` keys added to sslax since the run (e.g. eval.raw_input) get today's defaults.
  """
  root = storage.path(path)
  if root.exists() and not root.is_dir():
    raise errors.ConfigError(f'--workdir={path!r} is a file; pass the directory of a '
                             'sslax.main run (the one holding config.json and checkpoints/).')
  file = root / CONFIG
  if not file.exists():
    raise errors.DataNotFoundError(
        f'--workdir={path!r} has no {CONFIG}; pass the directory of a sslax.main run.')
  config = _tuples(json.loads(file.read_text()))
  defaults = config_base.base().eval.to_dict()
  config.setdefault('eval', {}).update(
      {k: v for k, v in defaults.items() if k not in config.get('eval', {})})
  return ml_collections.ConfigDict(config)


# ---- the input spec --------------------------------------------------------------------------

def spec_of(sample_batch: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  """{key: {'shape': per-example shape, 'dtype': name}} of an abstract global batch."""
  return {k: {'shape': list(v.shape[1:]), 'dtype': np.dtype(v.dtype).name}
          for k, v in sample_batch.items()}


def modality(input_spec: Mapping[str, Any]) -> str:
  """'image', 'video', 'text' or 'audio' from the keys and ranks of an input spec."""
  if 'tokens' in input_spec:
    return 'text'
  if 'audio' in input_spec:
    return 'audio'
  if 'image' in input_spec:
    return 'video' if len(input_spec['image']['shape']) == 4 else 'image'
  raise errors.ConfigError(f'An input spec with keys {sorted(input_spec)} names no modality sslax '
                           'knows (image, tokens, audio).')


def read_input_spec(root: epath.Path) -> dict[str, Any] | None:
  """`root/input_spec.json`, or None when the run predates it."""
  path = root / INPUT_SPEC
  return json.loads(path.read_text()) if path.exists() else None


# ---- weight names ----------------------------------------------------------------------------

def flatten(tree: Any, prefix: str) -> dict[str, np.ndarray]:
  """{'prefix/a/b': leaf} of a nested dict (the safetensors naming convention)."""
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    name = '/'.join([prefix] + [str(getattr(k, 'key', k)) for k in path])
    out[name] = np.ascontiguousarray(np.asarray(leaf))
  return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
  """The nested dict of `flatten`'s names (inverse up to the prefix level)."""
  tree: dict[str, Any] = {}
  for name, leaf in flat.items():
    *parents, last = name.split('/')
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[last] = leaf
  return tree


def trees(flat: Mapping[str, Any]) -> tuple[Any, Any]:
  """(params, model_state) of a flat weights dict; absent (e.g. stateless models): {}."""
  tree = unflatten(flat)
  return tree.get('params', {}), tree.get('model_state', {})


# ---- exports ---------------------------------------------------------------------------------

def root(path: str) -> epath.Path:
  """`path` (local or gs://) after checking that it exists."""
  found = storage.path(path)
  if not found.exists():
    raise errors.DataNotFoundError(f'{path} does not exist; pass a sslax.main workdir or a '
                                   'sslax.export directory.')
  return found


def is_export(directory: epath.Path) -> bool:
  """Whether `directory` is a finished export (the manifest is written last)."""
  return (directory / MANIFEST).exists()


def manifest(directory: epath.Path) -> dict[str, Any]:
  """The export's manifest, after checking that this sslax reads its format version."""
  content = json.loads((directory / MANIFEST).read_text())
  if content.get('format') != FORMAT or content.get('format_version') != FORMAT_VERSION:
    raise errors.ConfigError(
        f'{directory / MANIFEST} is format {content.get("format")!r} version '
        f'{content.get("format_version")!r}; this sslax reads {FORMAT!r} version '
        f'{FORMAT_VERSION}. Re-export the workdir with this version of sslax.')
  return content


def read_export_weights(directory: epath.Path) -> tuple[Any, Any]:
  """(params, model_state) of an export directory, as numpy arrays."""
  manifest(directory)
  return trees(safetensors_numpy.load((directory / WEIGHTS).read_bytes()))


# ---- checkpoints -----------------------------------------------------------------------------

def checkpoint_steps(directory: epath.Path) -> list[int]:
  """Steps with a complete checkpoint in `directory` (Orbax renames a step dir only when
  the save finished; quarantined `.corrupt` dirs and temporaries have non-integer names)."""
  if not directory.exists():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def restore_weights(directory: epath.Path, step: int | None = None) -> tuple[Any, Any, int]:
  """(params, model_state, step) of checkpoint `step` (default latest) as host arrays.

  An Orbax partial restore: no optimiser state, EMA target or online probe is read.
  """
  steps = checkpoint_steps(directory)
  if not steps:
    raise errors.DataNotFoundError(
        f'{directory} holds no checkpoint; pass the workdir of a run that saved at least one '
        '(checkpoint.every_steps or the last step).')
  if step is None:
    step = steps[-1]
  elif step not in steps:
    raise errors.ConfigError(f'step={step} has no checkpoint in {directory}; it has steps {steps}.')
  path = directory / str(step) / 'state'
  checkpointer = ocp.PyTreeCheckpointer()
  # Orbax warns about a per-item metadata file that the trainer's saves never write.
  absl_logger = py_logging.getLogger('absl')
  level = absl_logger.level
  absl_logger.setLevel(py_logging.ERROR)
  try:
    saved = checkpointer.metadata(path).item_metadata.tree
    # A stateless model's empty model_state has no leaves to restore.
    wanted = {k: jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), saved[k])
              for k in ('params', 'model_state') if jax.tree.leaves(saved.get(k, {}))}
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    restored = checkpointer.restore(path, args=ocp.args.PyTreeRestore(
        item=wanted, partial_restore=True,
        restore_args=jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), wanted)))
  finally:
    absl_logger.setLevel(level)
  return restored['params'], restored.get('model_state', {}), step


def load_weights(path: str, step: int | None = None) -> tuple[Any, Any, int]:
  """(params, model_state, step) as host arrays, of a workdir's checkpoint or an export."""
  directory = root(path)
  if is_export(directory):
    params, model_state = read_export_weights(directory)
    return params, model_state, manifest(directory)['step']
  return restore_weights(directory / CHECKPOINTS, step)
