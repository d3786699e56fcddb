import jax
import numpy as np
import pytest

from sslax import sharding


def test_mesh_shape_fills_minus_one():
  assert sharding.mesh_shape({'data': -1, 'fsdp': 1, 'model': 1}, 8) == (8, 1, 1)
  assert sharding.mesh_shape({'data': 2, 'fsdp': -1}, 8) == (2, 4, 1)


@pytest.mark.parametrize('mesh, match', [
    ({'data': 3}, 'needs 3 devices'),
    ({'data': -1, 'fsdp': -1}, 'at most one axis'),
    ({'data': -1, 'fsdp': 3}, 'does not divide'),
    ({'batch': 8}, 'unknown axes'),
])
def test_bad_mesh_names_the_key(mesh, match):
  with pytest.raises(ValueError, match=match):
    sharding.mesh_shape(mesh, 8)


def test_to_global_splits_the_batch_over_data_axes():
  mesh = sharding.make_mesh({'data': 2, 'fsdp': 4})
  x = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
  g = sharding.to_global({'x': x}, mesh)['x']
  np.testing.assert_array_equal(np.asarray(g), x)
  assert len(g.addressable_shards) == 8
  assert {s.data.shape for s in g.addressable_shards} == {(2, 3)}
  assert jax.device_count() == 8
