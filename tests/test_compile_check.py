"""The compile-only fit check (sslax/compile_check.py): TPU topologies described on this CPU by
libtpu (requirements-dev.txt), the real train step compiled for them, and the FLOP count's
per-device meaning checked on fake CPU devices."""
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import compile_check
from sslax import errors
from sslax.configs import simclr_digits


@pytest.mark.parametrize('name,libtpu_name,chips', [
    ('v4-8', 'v4:2x2x1', 4), ('v4-16', 'v4:2x2x2', 8), ('v4-32', 'v4:2x2x4', 16),
    ('v4-64', 'v4:2x4x4', 32), ('v4-128', 'v4:4x4x4', 64), ('v4-256', 'v4:4x4x8', 128),
    ('v5p-8', 'v5:2x2x1', 4), ('v5p-256', 'v5:4x4x8', 128), ('v5e-1', 'v5e:1x1', 1),
    ('v5e-4', 'v5e:2x2', 4), ('v5e-8', 'v5e:2x4', 8), ('v5litepod-16', 'v5e:4x4', 16),
    ('v5e-256', 'v5e:16x16', 256), ('v6e-64', 'v6e:8x8', 64)])
def test_slice_names_map_to_cloud_tpu_shapes(name, libtpu_name, chips):
  topology = compile_check.parse(name)
  assert (topology.libtpu_name, topology.chips) == (libtpu_name, chips)


@pytest.mark.parametrize('name', ['v4-12', 'v3-8', 'v4-4', 'tpu', 'v5e-3'])
def test_unknown_slices_are_config_errors(name):
  with pytest.raises(errors.ConfigError, match='--topology'):
    compile_check.parse(name)


def test_libtpu_describes_a_pod_slice_on_this_cpu():
  devices = compile_check.devices(compile_check.parse('v4-32'))
  assert len(devices) == 16 and devices[0].device_kind == 'TPU v4'
  assert len({d.process_index for d in devices}) == 4   # 4 chips per v4 host
  assert jax.devices()[0].platform == 'cpu'             # the test process still runs on CPU


def _sharded_matmul_flops(devices) -> float:
  """cost_analysis FLOPs of a [1024, 512] @ [512, 256] matmul with rows over every device."""
  mesh = Mesh(np.asarray(devices), ('data',))
  rows, replicated = NamedSharding(mesh, P('data')), NamedSharding(mesh, P())
  f = jax.jit(lambda x, w: x @ w, in_shardings=(rows, replicated), out_shardings=rows)
  compiled = f.lower(jax.ShapeDtypeStruct((1024, 512), jnp.float32, sharding=rows),
                     jax.ShapeDtypeStruct((512, 256), jnp.float32, sharding=replicated)).compile()
  return compile_check.flops_of(compiled)


@pytest.mark.parametrize('where', ['8 fake CPU devices', 'v4-8'])
def test_cost_analysis_counts_one_devices_share(where):
  """Why MFU divides FLOPs per device by one device's peak (experiments/accelerator_check.py):
  the compiled SPMD program is the per-device program."""
  devices = jax.devices() if where.endswith('devices') else compile_check.devices(
      compile_check.parse(where))
  total = 2 * 1024 * 512 * 256
  assert _sharded_matmul_flops(devices) == pytest.approx(total / len(devices), rel=0.01)


@pytest.fixture(scope='module')
def digits_on_v4_8():
  return compile_check.check(simclr_digits.get_config('smoke'), 'v4-8', name='digits')


def test_the_train_step_compiles_for_a_tpu_topology(digits_on_v4_8):
  report = digits_on_v4_8
  assert report['fits'] and report['devices'] == 4 and report['device_kind'] == 'TPU v4'
  assert report['mesh'] == {'data': 4, 'fsdp': 1, 'model': 1}
  assert report['batch_per_device'] == simclr_digits.get_config('smoke').batch_size / 4
  # Data parallel: every device holds the whole state (float32 parameters, BatchNorm
  # statistics and Adam's two moments), and the donated state comes back aliased.
  assert report['argument_bytes'] >= 3 * 4 * report['params']
  assert report['alias_bytes'] >= 3 * 4 * report['params']
  assert report['bytes_per_device'] < report['hbm_bytes']
  assert report['flops_per_step'] == 4 * report['flops_per_device'] > 0
  assert report['collectives'].get('all-reduce', 0) >= 1   # the gradients' mean over 'data'
  text = compile_check.format_report(report)
  assert 'v4-8' in text and 'fits: yes' in text
  compile_check.assert_fits(report)


def test_fsdp_and_a_chunked_loss_compile_on_the_slice(digits_on_v4_8):
  """FSDP shards the state over the chips; the chunked InfoNCE's shard_map makes its mesh of
  the slice's devices too (sharding.target_devices), not of this host's CPUs."""
  config = simclr_digits.get_config('smoke')
  config.mesh.update(data=1, fsdp=4)
  config.fsdp_min_size = 1
  config.simclr.chunked_loss = True
  report = compile_check.check(config, 'v4-8')
  assert report['argument_bytes'] < digits_on_v4_8['argument_bytes'] / 2
  assert report['collectives'].get('all-gather', 0) > digits_on_v4_8['collectives'].get(
      'all-gather', 0)


def test_a_config_that_does_not_fit_fails_with_the_fixes():
  config = simclr_digits.get_config('smoke')
  config.batch_size = config.eval.batch_size = 2 ** 17   # ~40 GiB of activations on one chip
  report = compile_check.check(config, 'v5e-1')
  assert not report['fits']
  with pytest.raises(errors.ConfigError) as raised:
    compile_check.assert_fits(report)
  message = str(raised.value)
  assert '\n' not in message
  for fix in ('--config.model.dtype=bfloat16', '--config.batch_size=65536'):
    assert fix in message
  assert 'fits: NO' in compile_check.format_report(report)
