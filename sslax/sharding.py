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
"""
from collections.abc import Mapping
import math
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

MESH_AXES = ('data', 'fsdp', 'model')
BATCH_AXES = ('data', 'fsdp')


def mesh_shape(mesh_config: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
  """Resolves a {'data': -1, 'fsdp': 1, 'model': 1} config to a concrete shape.

  At most one axis may be -1 ("all remaining devices").
  """
  unknown = set(mesh_config) - set(MESH_AXES)
  if unknown:
    raise ValueError(f'config.mesh has unknown axes {sorted(unknown)}; valid axes are {MESH_AXES}.')
  sizes = [int(mesh_config.get(a, 1)) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError('config.mesh: at most one axis may be -1 (use all remaining devices).')
  if any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f'config.mesh sizes must be positive or -1, got {dict(zip(MESH_AXES, sizes))}.')
  fixed = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if num_devices % fixed:
      raise ValueError(
          f'config.mesh: the fixed axes multiply to {fixed}, which does not divide the '
          f'{num_devices} devices.')
    sizes[sizes.index(-1)] = num_devices // fixed
  if math.prod(sizes) != num_devices:
    raise ValueError(
        f'config.mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices but '
        f'{num_devices} are available; set one axis to -1.')
  return tuple(sizes)


def make_mesh(mesh_config: Mapping[str, int], devices: list[Any] | None = None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  shape = mesh_shape(mesh_config, len(devices))
  return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def data_parallel_size(mesh: Mesh) -> int:
  return math.prod(mesh.shape[a] for a in BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the data-parallel axes, the rest replicated."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


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


def state_shardings(abstract_state: Any, mesh: Mesh, fsdp_min_size: int = 2**14) -> Any:
  """Shardings for every leaf of the train state: params, optimiser state, model state."""
  return jax.tree.map(
      lambda a: NamedSharding(mesh, leaf_spec(tuple(a.shape), mesh, fsdp_min_size)),
      abstract_state)


def replicated_fraction(abstract_tree: Any, shardings: Any) -> float:
  """Share of the tree's elements that every device holds in full (0: all sharded)."""
  sizes = [math.prod(a.shape) for a in jax.tree.leaves(abstract_tree)]
  full = [math.prod(a.shape) for a, s in zip(jax.tree.leaves(abstract_tree),
                                                jax.tree.leaves(shardings))
          if s.is_fully_replicated]
  return sum(full) / max(sum(sizes), 1)


def to_global(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles this process's rows of the global batch into global arrays."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}
