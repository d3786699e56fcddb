"""Device mesh and shardings: jit-only data parallelism over global arrays.

The mesh always has the axes ('data', 'fsdp', 'model') so that configs and
shardings keep one vocabulary as parallelism grows; the batch is split over
('data', 'fsdp'). Weights follow a shape rule (as MaxText/PaxML's FSDP does for
weights without logical names): every state leaf with at least `fsdp_min_size`
elements has its largest dimension divisible by the 'fsdp' size split over
'fsdp'; the rest is replicated. Because the rule looks at shapes, not names,
optimiser moments get exactly their parameter's sharding and any model is
covered. Under jit, XLA all-gathers a sharded weight where it is used and
reduce-scatters its gradient (ZeRO-3).

Tensor parallelism (mesh.model > 1) follows logical axis names instead: a model marks its
weights with `nn.with_logical_partitioning` (the Transformer's attention and MLP, see
models/text.py) and LOGICAL_AXIS_RULES maps those names to mesh axes, as flax's
`logical_axis_rules` and MaxText do: attention heads and MLP hidden units over 'model'
(Megatron's column-/row-parallel pairs), the model width over 'fsdp'. A named leaf (and every
optimiser array with the same dict-key path and rank, such as Adam's moments) uses the names;
every other leaf keeps the size rule above.
"""
from collections.abc import Iterator, Mapping
import contextlib
import math
from typing import Any

import flax.linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from sslax import errors

MESH_AXES = ('data', 'fsdp', 'model')
BATCH_AXES = ('data', 'fsdp')
# Logical axis name -> mesh axis (None: replicated). 'embed' goes over 'fsdp' only for leaves
# of at least fsdp_min_size elements, like the size rule.
LOGICAL_AXIS_RULES = (('embed', 'fsdp'), ('heads', 'model'), ('mlp', 'model'),
                      ('head_dim', None))

Names = tuple[str | None, ...]


def mesh_shape(mesh_config: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
  """Resolves a {'data': -1, 'fsdp': 1, 'model': 1} config to a concrete shape.

  At most one axis may be -1 ("all remaining devices").
  """
  unknown = set(mesh_config) - set(MESH_AXES)
  if unknown:
    raise errors.ConfigError(
        f'config.mesh has unknown axes {sorted(unknown)}; valid axes are {MESH_AXES}.')
  sizes = [int(mesh_config.get(a, 1)) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise errors.ConfigError('config.mesh: at most one axis may be -1 (use all remaining devices).')
  if any(s == 0 or s < -1 for s in sizes):
    raise errors.ConfigError(
        f'config.mesh sizes must be positive or -1, got {dict(zip(MESH_AXES, sizes))}.')
  fixed = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if num_devices % fixed:
      raise errors.ConfigError(
          f'config.mesh: the fixed axes multiply to {fixed}, which does not divide the '
          f'{num_devices} devices.')
    sizes[sizes.index(-1)] = num_devices // fixed
  if math.prod(sizes) != num_devices:
    raise errors.ConfigError(
        f'config.mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices but '
        f'{num_devices} are available; set one axis to -1.')
  return tuple(sizes)


# The devices meshes are made of when no caller names them: jax.devices(), except inside
# `target_devices` (compile_check's TPU slice on a CPU host).
_TARGET_DEVICES: list[Any] | None = None


@contextlib.contextmanager
def target_devices(devices: list[Any]) -> Iterator[None]:
  """Meshes made without explicit devices use `devices` inside this block, so that a method
  that makes its chunked loss's mesh itself (methods.chunked_loss_mesh) makes it of the same
  devices as the trainer's mesh."""
  global _TARGET_DEVICES
  saved, _TARGET_DEVICES = _TARGET_DEVICES, list(devices)
  try:
    yield
  finally:
    _TARGET_DEVICES = saved


def make_mesh(mesh_config: Mapping[str, int], devices: list[Any] | None = None) -> Mesh:
  if devices is None:
    devices = jax.devices() if _TARGET_DEVICES is None else _TARGET_DEVICES
  shape = mesh_shape(mesh_config, len(devices))
  return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def data_parallel_size(mesh: Mesh) -> int:
  return math.prod(mesh.shape[a] for a in BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the data-parallel axes, the rest replicated."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(value: np.ndarray, mesh: Mesh) -> jax.Array:
  """A host array, the same on every process, as a global array replicated over `mesh`."""
  return jax.make_array_from_callback(value.shape, replicated(mesh), lambda index: value[index])


def leaf_spec(shape: tuple[int, ...], mesh: Mesh, fsdp_min_size: int) -> P:
  """FSDP rule for one array: its largest 'fsdp'-divisible dim over 'fsdp', if big enough."""
  n = mesh.shape['fsdp']
  if n == 1 or math.prod(shape) < fsdp_min_size:
    return P()
  dims = [d for d in sorted(range(len(shape)), key=lambda d: -shape[d]) if shape[d] % n == 0]
  if not dims:
    return P()
  spec = [None] * len(shape)
  spec[dims[0]] = 'fsdp'
  return P(*spec)


def logical_spec(shape: tuple[int, ...], names: Names, mesh: Mesh, fsdp_min_size: int,
                 rules: tuple[tuple[str, str | None], ...] = LOGICAL_AXIS_RULES) -> P:
  """The mesh axes of one named array: each name through `rules`; a dimension the mesh axis
  does not divide (e.g. 2 heads over 4 devices), and 'fsdp' on an array under
  `fsdp_min_size` elements, stay replicated."""
  rules = dict(rules)
  spec, used = [], set()
  for dim, name in zip(shape, names):
    axis = rules.get(name) if name is not None else None
    if axis == 'fsdp' and math.prod(shape) < fsdp_min_size:
      axis = None
    if axis is None or axis in used or mesh.shape[axis] == 1 or dim % mesh.shape[axis]:
      axis = None
    used.add(axis)
    spec.append(axis)
  return P(*spec)


def _dict_path(path: tuple[Any, ...]) -> tuple[str, ...]:
  """The dict keys of a pytree path: equal for a parameter and its optimiser moments."""
  return tuple(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey))


def logical_axes(boxed_params: Any) -> dict[tuple[str, ...], Names]:
  """{dict-key path: logical names} of the leaves a flax model boxed with
  `nn.with_logical_partitioning` (concrete or abstract, e.g. from `jax.eval_shape`)."""
  is_box = lambda x: isinstance(x, nn.LogicallyPartitioned)
  return {_dict_path(p): tuple(leaf.names)
          for p, leaf in jax.tree_util.tree_leaves_with_path(boxed_params, is_leaf=is_box)
          if is_box(leaf)}


def state_shardings(abstract_state: Any, mesh: Mesh, fsdp_min_size: int = 2**14,
                    names: dict[tuple[str, ...], Names] | None = None) -> Any:
  """Shardings for every leaf of the train state: params, optimiser state, model state.

  `names` (from `logical_axes`) gives the leaves with logical axis names; the rest follow the
  size rule (`leaf_spec`).
  """
  names = names or {}
  def spec(path, a):
    leaf_names = names.get(_dict_path(path))
    if leaf_names is not None and len(leaf_names) == len(a.shape):
      return logical_spec(tuple(a.shape), leaf_names, mesh, fsdp_min_size)
    return leaf_spec(tuple(a.shape), mesh, fsdp_min_size)
  return jax.tree_util.tree_map_with_path(lambda p, a: NamedSharding(mesh, spec(p, a)),
                                          abstract_state)


def replicated_fraction(abstract_tree: Any, shardings: Any) -> float:
  """Share of the tree's elements that every device holds in full (0: all sharded)."""
  sizes = [math.prod(a.shape) for a in jax.tree.leaves(abstract_tree)]
  full = [math.prod(a.shape) for a, s in zip(jax.tree.leaves(abstract_tree),
                                                jax.tree.leaves(shardings))
          if s.is_fully_replicated]
  return sum(full) / max(sum(sizes), 1)


def axis_fraction(abstract_tree: Any, shardings: Any, axis: str) -> float:
  """Share of the tree's elements in arrays split over mesh `axis` (e.g. 'model')."""
  def over(s):
    return any(axis == e or (isinstance(e, tuple) and axis in e) for e in s.spec)
  sizes = [math.prod(a.shape) for a in jax.tree.leaves(abstract_tree)]
  split = [math.prod(a.shape) for a, s in zip(jax.tree.leaves(abstract_tree),
                                                 jax.tree.leaves(shardings)) if over(s)]
  return sum(split) / max(sum(sizes), 1)


def report(abstract_params: Any, shardings: Any, mesh: Mesh) -> str | None:
  """One line on how the parameters are laid out when FSDP or tensor parallelism is on.

  Raises if mesh.model > 1 but no parameter is split over 'model' (the model has no weights
  with tensor-parallel names, or none the 'model' size divides): those devices would only
  repeat the work.
  """
  fsdp, model = mesh.shape['fsdp'], mesh.shape['model']
  if fsdp == 1 and model == 1:
    return None
  line = (f'Mesh {dict(mesh.shape)}: '
          f'{replicated_fraction(abstract_params, shardings):.1%} of parameters replicated')
  if model > 1:
    tp = axis_fraction(abstract_params, shardings, 'model')
    if tp == 0:
      tp_names = [n for n, a in LOGICAL_AXIS_RULES if a == 'model']
      raise errors.ConfigError(
          f'config.mesh.model={model}, but no parameter is split over the model axis: only '
          f'weights with tensor-parallel logical names {tp_names} (the Transformer\'s '
          'attention and MLP, sslax/models/text.py) whose size the model axis divides are. '
          'Set config.mesh.model=1 (and config.mesh.fsdp for large weights).')
    line += f', {tp:.1%} split over \'model\' (tensor parallel)'
  if fsdp > 1:
    line += f', {axis_fraction(abstract_params, shardings, "fsdp"):.1%} over \'fsdp\''
  return line + '.'


def to_global(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles this process's rows of the global batch into global arrays."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}
