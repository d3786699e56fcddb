"""Compile-only fit check: the real sharded train step compiled for a TPU topology on any host.

  python -m sslax.preflight --config configs/paper/simclr_r50.py --topology v4-32 [--mock_data]

libtpu (requirements-dev.txt) compiles for TPUs that are not there: JAX describes the topology
(`jax.experimental.topologies.get_topology_desc`, as MaxText's train_compile.py does), sslax
builds the train step exactly as `train.run` does (train.build: mesh, shardings, donated
state) on those devices, and XLA's TPU compiler lowers and compiles it. The compiled program
says what a step needs of each chip before a slice is rented:
  - memory per device (`memory_analysis`: arguments + outputs - donated aliases + temporaries
    + code) against the chip's HBM; XLA refuses a program that does not fit (RESOURCE_EXHAUSTED),
    which is reported the same way;
  - FLOPs: `cost_analysis()['flops']` of an SPMD program counts one device's share
    (tests/test_compile_check.py checks this on fake devices), times the device count per step;
  - the step's floor at the datasheet bf16 peak (FLOPs per device / peak); XLA's cost-model
    `optimal_seconds` is left out: it came out negative for ResNet-50 on a v4-32;
  - the collectives in the compiled program, by kind.
"""
import contextlib
import dataclasses
import math
import os
import re
import tempfile
import time
from typing import Any

import jax
from jax.experimental import topologies
import ml_collections

from sslax import errors
from sslax import sharding
from sslax import train
from sslax import validate
from sslax.data import mock_catalog
from sslax.data import tokenizers

GIB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
  """A TPU generation: how Cloud TPU names its slices, and the chip's datasheet numbers."""
  topology_prefix: str     # libtpu's name: v5p slices are 'v5:AxBxC'
  cores_in_name: bool      # v4-32 and v5p-32 count TensorCores (2 per chip); v5e-16 counts chips
  dims: int                # 3-D torus (v4, v5p) or 2-D (v5e, v6e)
  chip_config: str         # 'megacore': one JAX device per chip, both cores under it
  hbm_bytes: int
  peak_bf16: float         # dense FLOP/s per chip


# Cloud TPU system architecture pages (v4, v5e, v5p, v6e): HBM per chip and bf16 peak.
CHIPS = {
    'v4': Chip('v4', True, 3, 'megacore', 32 * GIB, 275e12),
    'v5p': Chip('v5', True, 3, 'megacore', 95 * GIB, 459e12),
    'v5e': Chip('v5e', False, 2, 'default', 16 * GIB, 197e12),
    'v6e': Chip('v6e', False, 2, 'default', 32 * GIB, 918e12),
}
COLLECTIVES = ('all-reduce', 'all-gather', 'reduce-scatter', 'all-to-all', 'collective-permute')
# An op line of the compiled HLO: `%x = f32[...] all-gather-start(...)`; `-done` halves of async
# pairs are not counted again.
_COLLECTIVE_RE = re.compile(r'\s(' + '|'.join(COLLECTIVES) + r')(?:-start)?\(')


@dataclasses.dataclass(frozen=True)
class Topology:
  name: str                 # as the user wrote it, e.g. 'v4-32'
  chip: Chip
  chips: int
  grid: tuple[int, ...]     # chips per torus dimension

  @property
  def libtpu_name(self) -> str:
    return f"{self.chip.topology_prefix}:{'x'.join(map(str, self.grid))}"


def parse(name: str) -> Topology:
  """'v4-32', 'v5p-128', 'v5e-16' (or 'v5litepod-16'), 'v6e-64' -> its chip grid.

  Slices of a power-of-two size grow by doubling their smallest dimension, the last one
  first: v4-8 is 2x2x1, v4-16 2x2x2, v4-32 2x2x4, v4-64 2x4x4, v4-128 4x4x4; v5e-4 2x2,
  v5e-8 2x4, v5e-16 4x4 (the shapes Cloud TPU's accelerator types name).
  """
  match = re.fullmatch(r'(v4|v5p|v5e|v5litepod|v6e)-(\d+)', name.strip())
  if not match:
    raise errors.ConfigError(
        f'--topology={name!r} is not a TPU slice name; use one like v4-32, v5p-64, v5e-16 or '
        'v6e-8 (the accelerator type Cloud TPU creates).')
  family, count = match.group(1).replace('v5litepod', 'v5e'), int(match.group(2))
  chip = CHIPS[family]
  chips = count // 2 if chip.cores_in_name else count
  if chips == 1 and chip.dims == 2:
    return Topology(name, chip, 1, (1, 1))
  if chips < 4 or chips & (chips - 1) or (chip.cores_in_name and count % 2):
    smallest = 8 if chip.cores_in_name else 4
    also_one = '' if chip.cores_in_name else ', or 1'
    raise errors.ConfigError(
        f'--topology={name!r}: the fit check knows {family} slices of {smallest}, '
        f'{2 * smallest}, {4 * smallest}, ... (powers of two{also_one}).')
  grid = [2, 2] + [1] * (chip.dims - 2)
  while math.prod(grid) < chips:
    smallest = min(grid)
    grid[max(i for i, g in enumerate(grid) if g == smallest)] *= 2
  return Topology(name, chip, chips, tuple(grid))


@contextlib.contextmanager
def _compile_only_libtpu(accelerator_type: str):
  """Off a TPU VM, libtpu asks the environment for the accelerator type and worker hostnames
  and logs a screen of warnings when they are absent; a compile-only client needs neither.
  It also takes a machine-wide lock (/tmp/libtpu_lockfile) meant for the chips, which a
  compile-only client never opens: two checks at once (test workers) would refuse each other."""
  names = ('TPU_ACCELERATOR_TYPE', 'TPU_WORKER_HOSTNAMES', 'ALLOW_MULTIPLE_LIBTPU_LOAD')
  saved = {k: os.environ.get(k) for k in names}
  os.environ.setdefault('TPU_ACCELERATOR_TYPE', accelerator_type)
  os.environ.setdefault('TPU_WORKER_HOSTNAMES', 'localhost')
  os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
  try:
    yield
  finally:
    for key, value in saved.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value


def devices(topology: Topology) -> list[Any]:
  """Compile-only TPU devices of `topology` (no TPU needed; libtpu must be installed)."""
  try:
    with _compile_only_libtpu(topology.name):
      desc = topologies.get_topology_desc(
          platform='tpu', topology_name=topology.libtpu_name,
          chip_config_name=topology.chip.chip_config,
          chips_per_host_bounds=(2, 2, 1) if topology.chips >= 4 else (1, 1, 1),
          num_slices=1)
  except Exception as e:   # jax raises RuntimeError or JaxRuntimeError without libtpu
    if 'libtpu' in str(e).lower() or 'tpu' in str(e).lower():
      raise errors.UserError(
          f'compiling for --topology={topology.name} needs libtpu, the TPU compiler: '
          f'pip install -r requirements-dev.txt (or libtpu==0.0.42.1). ({str(e)[:200]})') from e
    raise
  return list(desc.devices)


def for_tpu(config: ml_collections.ConfigDict, mock_data: bool) -> ml_collections.ConfigDict:
  """The config as train.run would see it on a TPU host."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    if config.get('model', {}).get('conv_impl', 'auto') == 'auto':
      config.model.conv_impl = 'xla'     # what 'auto' resolves to on TPU (models/resnet.py)
    if mock_data:
      config.data.num_workers = 0        # TFDS's mocks live in this process only
  return config


def check(config: ml_collections.ConfigDict, topology: str, *, mock_data: bool = False,
          name: str = '') -> dict[str, Any]:
  """Compiles config's train step for `topology` and reports what one device needs.

  mock_data: `tfds:` sources read TFDS's mock records (sslax/data/mock_catalog.py): the
  shapes come from the config, so a catalog set need not be present to check a recipe.
  name: how the report names the config (its file).
  """
  topo = parse(topology)
  tpu_devices = devices(topo)
  hosts = len({d.process_index for d in tpu_devices})
  # Only the training split's first record is read: its shapes make the batch.
  mock_data = mock_data and config.data.source.startswith('tfds:')
  config = for_tpu(config, mock_data)
  validate.check(config, num_devices=len(tpu_devices), num_processes=hosts)
  mock = mock_catalog.catalog_mock() if mock_data else contextlib.nullcontext()
  with tempfile.TemporaryDirectory(prefix='sslax-compile-check-') as workdir, mock:
    config = tokenizers.prepare(config, workdir)   # a SentencePiece vocabulary, if any
    sample = train.sample_batch(config)
    with sharding.target_devices(tpu_devices):   # chunked losses make their own mesh
      mesh = sharding.make_mesh(config.mesh)
      parts = train.build(config, mesh, sample)
  state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                       parts.abstract_state, parts.state_sharding)
  batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=parts.batch_sharding)
           for k, v in sample.items()}
  data_parallel = sharding.data_parallel_size(mesh)
  report = {
      'config': name, 'topology': topo.name,
      'libtpu_topology': topo.libtpu_name, 'device_kind': tpu_devices[0].device_kind,
      'devices': len(tpu_devices), 'hosts': hosts, 'mesh': dict(mesh.shape),
      'batch_size': int(config.batch_size),
      'batch_per_device': config.batch_size / data_parallel,
      'dtype': config.get('model', {}).get('dtype', 'float32'),
      'params': int(sum(math.prod(x.shape) for x in jax.tree.leaves(parts.abstract_state.params))),
      'hbm_bytes': topo.chip.hbm_bytes, 'peak_flops_per_device': topo.chip.peak_bf16,
  }
  start = time.perf_counter()
  try:
    compiled = parts.step_fn.lower(state, batch).compile()
  except Exception as e:   # jax's JaxRuntimeError: XLA refuses what does not fit in HBM
    if 'RESOURCE_EXHAUSTED' not in str(e):
      raise
    report.update(compile_s=time.perf_counter() - start, fits=False,
                  error=' '.join(str(e).split())[:500])
    return report
  report['compile_s'] = time.perf_counter() - start
  report.update(memory(compiled))
  report['fits'] = report['bytes_per_device'] <= topo.chip.hbm_bytes
  flops = flops_of(compiled)
  report.update(flops_per_device=flops, flops_per_step=flops * len(tpu_devices),
                floor_s=flops / topo.chip.peak_bf16,
                collectives=collectives(compiled.as_text()))
  return report


def flops_of(compiled) -> float:
  """XLA's FLOP count of a compiled program (nan if absent): for an SPMD program, one
  device's share. The benchmarks count with it too (experiments/benchmarks/bench_lib.py)."""
  cost = compiled.cost_analysis()
  cost = (cost[0] if isinstance(cost, (list, tuple)) else cost) or {}
  return float(cost.get('flops', float('nan')))


def memory(compiled) -> dict[str, int]:
  """Per-device bytes of a compiled program: donated inputs are counted once."""
  m = compiled.memory_analysis()
  parts = {'argument_bytes': m.argument_size_in_bytes, 'output_bytes': m.output_size_in_bytes,
           'alias_bytes': m.alias_size_in_bytes, 'temp_bytes': m.temp_size_in_bytes,
           'code_bytes': m.generated_code_size_in_bytes}
  total = (parts['argument_bytes'] + parts['output_bytes'] - parts['alias_bytes']
           + parts['temp_bytes'] + parts['code_bytes'])
  return {**{k: int(v) for k, v in parts.items()}, 'bytes_per_device': int(total)}


def collectives(hlo_text: str) -> dict[str, int]:
  """How many of each collective the compiled (per-device) HLO holds."""
  counts = dict.fromkeys(COLLECTIVES, 0)
  for match in _COLLECTIVE_RE.finditer(hlo_text):
    counts[match.group(1)] += 1
  return {k: v for k, v in counts.items() if v}


def fixes(report: dict[str, Any]) -> list[str]:
  """What would make a config that does not fit fit, most effective first."""
  out = []
  if report['dtype'] == 'float32':
    out.append("compute in bfloat16: --config.model.dtype=bfloat16 (activations halve)")
  out.append(f"a smaller per-chip batch: --config.batch_size={report['batch_size'] // 2} "
             f"({report['batch_per_device'] / 2:g} per device; the contrastive methods keep "
             'the global batch with --config.grad_accum_steps=2 instead)')
  if report['mesh'].get('fsdp', 1) == 1 and report['devices'] > 1:
    out.append(f"shard weights and optimiser state (FSDP): --config.mesh.fsdp={report['devices']} "
               '--config.mesh.data=1')
  out.append('rematerialisation is not a config option yet')
  return out


def assert_fits(report: dict[str, Any]) -> None:
  if not report['fits']:
    raise errors.ConfigError(
        f"{report['config'] or 'the config'} does not fit {report['topology']} "
        f"({_gib(report.get('bytes_per_device'))} of {_gib(report['hbm_bytes'])} HBM per "
        f"device); try: {'; '.join(fixes(report))}.")


def _gib(n) -> str:
  if n is None:
    return 'more than the HBM'
  return f'{n / GIB:.1f} GiB' if n >= GIB / 10 else f'{n / 2 ** 20:.1f} MiB'


def format_report(report: dict[str, Any]) -> str:
  """The report as a few lines for the terminal."""
  lines = [f"{report['config'] or 'config'} on {report['topology']} "
           f"({report['devices']} x {report['device_kind']}, {report['hosts']} hosts, "
           f"libtpu {report['libtpu_topology']}), mesh {report['mesh']}, batch "
           f"{report['batch_size']} ({report['batch_per_device']:g} per device), "
           f"{report['dtype']}, {report['params'] / 1e6:.1f}M parameters; compiled in "
           f"{report['compile_s']:.1f} s"]
  if 'error' in report:
    lines.append(f"  memory: does not fit; XLA: {report['error'][:300]}")
  else:
    lines.append(
        f"  memory per device: {_gib(report['bytes_per_device'])} of "
        f"{_gib(report['hbm_bytes'])} HBM ({report['bytes_per_device'] / report['hbm_bytes']:.0%}"
        f"): arguments {_gib(report['argument_bytes'])}, temporaries "
        f"{_gib(report['temp_bytes'])}, outputs not donated "
        f"{_gib(report['output_bytes'] - report['alias_bytes'])}")
    lines.append(
        f"  FLOPs per step: {report['flops_per_step'] / 1e12:.1f} T "
        f"({report['flops_per_device'] / 1e12:.2f} T per device); at the bf16 peak "
        f"{report['floor_s']:.3f} s per step, at 40% MFU {report['floor_s'] / 0.4:.3f} s")
    lines.append('  collectives: ' + (', '.join(f'{k} x{v}' for k, v in
                                                report['collectives'].items()) or 'none'))
  lines.append('  fits: yes' if report['fits'] else
               '  fits: NO; try: ' + '; '.join(fixes(report)))
  return '\n'.join(lines)
