"""Device mesh and shardings: jit-only data parallelism over global arrays.

The mesh always has the axes ('data', 'fsdp', 'model') so that configs and
shardings keep one vocabulary as parallelism grows; the batch is split over
('data', 'fsdp') and, until logical-axis rules for weights land, parameters
are replicated.
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


def state_shardings(abstract_state: Any, mesh: Mesh) -> Any:
  """Shardings for every leaf of the train state (replicated for now)."""
  return jax.tree.map(lambda _: replicated(mesh), abstract_state)


def to_global(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles this process's rows of the global batch into global arrays."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}
