"""Checks a worker before a long job, in seconds instead of a failed job hours later:

  python -m sslax.preflight --config configs/NAME.py[:ARG] --workdir DIR \\
      [--expect_devices N] [--expect_processes N] [--distributed ...] [--config.key=value ...]
  python -m sslax.preflight --config configs/NAME.py --topology v5e-16   # compile-only fit

Recipes run it on every worker with the same distributed flags as sslax.main. It prints one
line per check, `ok` or `FAILED` with the fix, and exits 0 when all pass, 2 otherwise:
- Python >= 3.11, and jax/jaxlib equal to the pins of requirements.txt;
- jax.device_count() / process_count() against --expect_devices / --expect_processes, else
  against SLURM's allocation (SLURM_NTASKS; SLURM_GPUS_ON_NODE x SLURM_JOB_NUM_NODES), and
  the config's mesh and batch sizes against them (validate.check);
- a write/read round trip in the workdir through etils.epath (every file sslax writes) and
  TensorStore (Orbax's checkpoint arrays), its files removed afterwards;
- the first record of the training source and of every evaluation source and split
  (evaluators/data_check.py, which sslax.train.run also calls before compiling).
With --topology the live checks give way to compile_check's report for that TPU topology.
"""
import dataclasses
import importlib.metadata
import os
import pathlib
import re
import sys
import uuid
from collections.abc import Mapping

from absl import flags
from etils import epath
import jax
import ml_collections
from ml_collections import config_flags
import tensorstore as ts

from sslax import cli
from sslax import compile_check
from sslax import errors
from sslax import storage
from sslax import validate
from sslax.evaluators import data_check


MIN_PYTHON = (3, 11)
REQUIREMENTS = pathlib.Path(__file__).resolve().parents[1] / 'requirements.txt'
PINNED = ('jax', 'jaxlib')


@dataclasses.dataclass(frozen=True)
class Check:
  name: str
  ok: bool
  detail: str

  def line(self) -> str:
    return f'{"ok" if self.ok else "FAILED":<7} {self.name}: {self.detail}'


def pins(requirements: pathlib.Path = REQUIREMENTS) -> dict[str, str]:
  """{package: pinned version} of PINNED from requirements.txt, else from the installed
  sslax's metadata ({} when neither pins them)."""
  lines = (requirements.read_text().splitlines() if requirements.is_file()
           else importlib.metadata.requires('sslax') or [])
  found = (re.match(r'^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)', l) for l in lines)
  return {m.group(1).lower(): m.group(2) for m in found if m and m.group(1).lower() in PINNED}


def check_versions(requirements: pathlib.Path = REQUIREMENTS) -> Check:
  python = '.'.join(map(str, sys.version_info[:3]))
  have = {p: importlib.metadata.version(p) for p in PINNED}
  found = f'Python {python}, ' + ', '.join(f'{p} {v}' for p, v in have.items())
  problems = [f'Python >= {".".join(map(str, MIN_PYTHON))} is needed'] if (
      sys.version_info[:2] < MIN_PYTHON) else []
  pinned = pins(requirements)
  problems += [f'{p} {have[p]} is not the pinned {v}' for p, v in pinned.items() if have[p] != v]
  if problems:
    return Check('versions', False, f'{found}: {"; ".join(problems)}. Fix: install the pins '
                 f'(pip install -r requirements.txt) in a Python >= 3.11 environment.')
  return Check('versions', True, found + (' (as pinned)' if pinned else ' (no pins found)'))


def expected(expect_devices: int | None, expect_processes: int | None,
             environ: Mapping[str, str]) -> tuple[int | None, int | None, str]:
  """(devices, processes, where the numbers came from): the flags, else SLURM's variables."""
  where = []
  if expect_devices is None and environ.get('SLURM_GPUS_ON_NODE'):
    nodes = int(environ.get('SLURM_JOB_NUM_NODES') or environ.get('SLURM_NNODES') or 1)
    expect_devices = int(environ['SLURM_GPUS_ON_NODE']) * nodes
    where.append(f'SLURM_GPUS_ON_NODE={environ["SLURM_GPUS_ON_NODE"]} x {nodes} nodes')
  elif expect_devices is not None:
    where.append('--expect_devices')
  if expect_processes is None and environ.get('SLURM_NTASKS'):
    expect_processes = int(environ['SLURM_NTASKS'])
    where.append(f'SLURM_NTASKS={expect_processes}')
  elif expect_processes is not None:
    where.append('--expect_processes')
  return expect_devices, expect_processes, ', '.join(where)


def check_devices(expect_devices: int | None, expect_processes: int | None,
                  environ: Mapping[str, str] = os.environ) -> Check:
  devices, processes, where = expected(expect_devices, expect_processes, environ)
  n, p, local = jax.device_count(), jax.process_count(), jax.local_device_count()
  found = (f'{n} {jax.devices()[0].platform} devices in {p} process(es) ({local} on this one, '
           f'process {jax.process_index()})')
  if devices is None and processes is None:
    return Check('devices', True, f'{found}; nothing to compare with (pass --expect_devices '
                 'and --expect_processes, or run under SLURM)')
  problems = []
  if processes is not None and p != processes:
    problems.append(f'{p} process(es), expected {processes}')
  if devices is not None and n != devices:
    problems.append(f'{n} devices, expected {devices}')
  if problems:
    # One SLURM task per 8-GPU node whose processes each see one GPU is the classic case.
    return Check('devices', False, f'{found}: {"; ".join(problems)} ({where}). Fix: under SLURM '
                 'run one task per GPU (--ntasks-per-node=<GPUs per node>, every task seeing '
                 'its node\'s GPUs, as experiments/slurm_gpu.sbatch does; not --gpus-per-task=1, '
                 'which hides the GPU JAX picks), or one task per node with '
                 'JAX_LOCAL_DEVICE_IDS=0,1,...; pass --distributed (or --coordinator_address, '
                 '--num_processes, --process_id), as to sslax.main, so the processes join one '
                 'job.')
  return Check('devices', True, f'{found}, as expected ({where})')


def check_config(config: ml_collections.ConfigDict) -> Check:
  """The mesh and batch sizes against the live device and process counts."""
  try:
    validate.check(config, num_devices=jax.device_count(), num_processes=jax.process_count())
  except errors.UserError as e:
    return Check('config', False, str(e))
  return Check('config', True, f'mesh {dict(config.mesh)} and batch_size {config.batch_size} '
               f'fit {jax.device_count()} devices in {jax.process_count()} process(es)')


def _kvstore(root: epath.Path) -> dict | None:
  """TensorStore's key-value store spec for a workdir (what Orbax's arrays go through)."""
  text = os.fspath(root)
  if text.startswith('gs://'):
    bucket, _, prefix = text[len('gs://'):].partition('/')
    return {'driver': 'gcs', 'bucket': bucket, 'path': prefix.rstrip('/') + '/'}
  if storage.is_remote(text):
    return None
  return {'driver': 'file', 'path': text.rstrip('/') + '/'}


def check_workdir(workdir: str) -> list[Check]:
  """Writes, reads back and removes a file through epath and a key through TensorStore."""
  name = f'.sslax-preflight-{jax.process_index()}-{uuid.uuid4().hex[:8]}'
  payload = name.encode()
  checks = []
  try:
    root = storage.make_dir(workdir)
    file = root / name
    try:
      file.write_bytes(payload)
      if file.read_bytes() != payload:
        raise OSError(f'{file} read back other bytes than were written')
    finally:
      if file.exists():
        file.unlink()
    checks.append(Check('workdir', True, f'{root}: wrote, read and removed {name} (epath)'))
    spec = _kvstore(root)
    if spec is None:
      return checks + [Check('tensorstore', True, f'{root}: no TensorStore driver checked for '
                             'this scheme')]
    store = ts.KvStore.open(spec).result()
    try:
      store.write(name, payload).result()
      if store.read(name).result().value != payload:
        raise OSError(f'{root / name} read back other bytes than TensorStore wrote')
    finally:
      store.delete_range(ts.KvStore.KeyRange(name, name + '\0')).result()
    checks.append(Check('tensorstore', True, f'{root}: wrote, read and removed {name} '
                        f'({spec["driver"]} driver, as Orbax checkpoints)'))
  except (errors.UserError, OSError, ValueError) as e:   # TensorStore raises ValueError
    what = 'tensorstore' if checks else 'workdir'
    checks.append(Check(what, False, f'--workdir={workdir!r}: {" ".join(str(e).split())}. Fix: '
                        'pass a --workdir every worker can write (a local disk, a shared '
                        'filesystem or gs://BUCKET/DIR with credentials on this worker).'))
  return checks


def check_data(config: ml_collections.ConfigDict) -> list[Check]:
  """One record of each source and split the run reads (evaluators/data_check.py)."""
  try:
    return [Check('data', True, line) for line in data_check.check_sources(config)]
  except errors.UserError as e:
    return [Check('data', False, ' '.join(str(e).split()))]


def run_checks(config: ml_collections.ConfigDict, workdir: str, *,
               expect_devices: int | None = None, expect_processes: int | None = None,
               environ: Mapping[str, str] = os.environ) -> list[Check]:
  """Every live check, in the order a reader fixes them; each printed as it finishes."""
  checks = [check_versions(), check_devices(expect_devices, expect_processes, environ),
            check_config(config)]
  for c in checks:
    print(c.line(), flush=True)
  for more in (check_workdir(workdir), check_data(config)):
    for c in more:
      print(c.line(), flush=True)
    checks += more
  return checks


def define_flags(argv: list[str]) -> None:
  """The command's flags: defined when it runs, not on import (sslax.main, which a process may
  import beside this module, has a --config and a --workdir too)."""
  del argv
  config_flags.DEFINE_config_file(
      'config', None, 'Experiment config file, e.g. configs/simclr_digits.py:smoke.',
      lock_config=True)
  flags.DEFINE_string('workdir', None, 'The workdir the job will use.')
  flags.DEFINE_integer(
      'expect_devices', None, 'Devices the job must see in all; default: from SLURM, if any.')
  flags.DEFINE_integer(
      'expect_processes', None, 'Processes the job must have; default: SLURM_NTASKS, if set.')
  flags.DEFINE_string(
      'topology', None, 'A TPU slice (e.g. v4-32, v5e-16): compile the train step for it on '
      'this host (libtpu, no TPU needed) instead of the live checks (sslax/compile_check.py).')
  flags.DEFINE_bool(
      'mock_data', False, 'With --topology: tfds: sources read TFDS mock records of the '
      "config's shapes, so the catalog data set need not be on this host.")
  cli.define_distributed_flags()


def main(argv: list[str]) -> None:
  cli.start(argv)
  f = flags.FLAGS
  # Checked here, not with flags.mark_flags_as_required: that validator would run on every
  # parse of absl's global FLAGS in this process (grain workers parse them too,
  # data/host_views.py) and fail there without a --config.
  if f.config is None:
    raise errors.ConfigError('--config is required, e.g. --config configs/simclr_digits.py.')
  config = f.config
  if f.topology:
    # Compile-only: the host's own backend is the CPU, also on a TPU VM whose chips a job
    # may be using (jax_platforms is read when the first backend starts, i.e. later).
    jax.config.update('jax_platforms', 'cpu')
    report = compile_check.check(config, f.topology, mock_data=f.mock_data,
                                 name=f['config'].config_filename)
    print(compile_check.format_report(report), flush=True)
    compile_check.assert_fits(report)   # one line and exit 2, with the fixes
    return
  if not f.workdir:
    raise errors.ConfigError('--workdir is needed for the live checks (or pass --topology).')
  cli.initialize_distributed()   # before any other JAX call, as in sslax.main
  checks = run_checks(config, f.workdir, expect_devices=f.expect_devices,
                      expect_processes=f.expect_processes)
  failed = [c.name for c in checks if not c.ok]
  if failed:
    raise errors.ConfigError(f'{len(failed)} of {len(checks)} preflight checks failed '
                             f'({", ".join(dict.fromkeys(failed))}); the FAILED lines on '
                             'stdout say the fix.')
  print(f'All {len(checks)} preflight checks passed.', flush=True)


def command() -> None:
  """`python -m sslax.preflight` and the `sslax-preflight` script."""
  cli.run(main, define_flags=define_flags)


if __name__ == '__main__':
  command()
