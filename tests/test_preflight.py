"""python -m sslax.preflight on the 8 fake CPU devices of conftest.py: every check passes on
a smoke config, and each kind of failure is a FAILED line with its fix and exit status 2.
Nothing here compiles or trains."""
import os
import pathlib
import socket
import subprocess
import sys

import pytest

from sslax import preflight
from sslax.configs import simclr_digits
from sslax.evaluators import data_check

REPO = pathlib.Path(__file__).resolve().parents[1]
# The workers' environment without SLURM's variables, which a CI job may run under.
ENV = {k: v for k, v in os.environ.items() if not k.startswith('SLURM_')}


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> pathlib.Path:
  """digits, built once here so the commands below only read it (and log no build)."""
  path = tmp_path_factory.mktemp('tfds')
  data_check.check_sources(_config(path))
  return path


def _config(data_dir: pathlib.Path):
  config = simclr_digits.get_config('smoke')
  config.data.data_dir = str(data_dir)
  return config


def _preflight(data_dir, *extra):
  return subprocess.run(
      [sys.executable, '-m', 'sslax.preflight', '--config', 'configs/simclr_digits.py:smoke',
       f'--config.data.data_dir={data_dir}', *extra],
      cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


def test_every_check_passes_on_a_smoke_config(data_dir, tmp_path):
  result = _preflight(data_dir, '--workdir', str(tmp_path / 'run'), '--expect_devices', '8',
                      '--expect_processes', '1')
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  names = [l.split(':')[0].split()[-1] for l in lines if l.startswith('ok ')]
  assert names == ['versions', 'devices', 'config', 'workdir', 'tensorstore', 'data', 'data',
                   'data'], result.stdout
  assert not any(l.startswith('FAILED') for l in lines)
  assert '8 cpu devices' in result.stdout and 'as expected' in result.stdout
  assert "config.eval.source='builtin:digits' split 'test'" in result.stdout
  assert lines[-1] == 'All 8 preflight checks passed.'
  assert list((tmp_path / 'run').iterdir()) == []   # the round trips cleaned up


def test_too_few_devices_fails_naming_the_slurm_fix(data_dir, tmp_path):
  result = _preflight(data_dir, '--workdir', str(tmp_path / 'run'), '--expect_devices', '16')
  assert result.returncode == 2, result.stdout + result.stderr[-3000:]
  failed = [l for l in result.stdout.splitlines() if l.startswith('FAILED')]
  assert len(failed) == 1 and failed[0].startswith('FAILED  devices: 8 cpu devices'), failed
  assert 'expected 16' in failed[0] and 'one task per GPU' in failed[0]
  assert 'JAX_LOCAL_DEVICE_IDS' in failed[0]
  errors = result.stderr.strip().splitlines()
  assert errors == ['sslax.preflight: error: 1 of 8 preflight checks failed (devices); the '
                    'FAILED lines on stdout say the fix.'], result.stderr[-3000:]


def test_devices_are_compared_with_slurm_when_no_flag_says():
  # One task per 8-GPU node on 2 nodes, as the classic misconfiguration has it.
  slurm = {'SLURM_GPUS_ON_NODE': '8', 'SLURM_JOB_NUM_NODES': '2', 'SLURM_NTASKS': '2'}
  check = preflight.check_devices(None, None, slurm)
  assert not check.ok
  assert '1 process(es), expected 2; 8 devices, expected 16' in check.detail
  assert 'SLURM_GPUS_ON_NODE=8 x 2 nodes, SLURM_NTASKS=2' in check.detail
  matching = {'SLURM_GPUS_ON_NODE': '8', 'SLURM_JOB_NUM_NODES': '1', 'SLURM_NTASKS': '1'}
  assert preflight.check_devices(None, None, matching).ok
  assert preflight.check_devices(8, None, slurm).ok is False   # the flag wins for devices only
  nothing = preflight.check_devices(None, None, {})
  assert nothing.ok and 'nothing to compare with' in nothing.detail


def test_an_unwritable_workdir_fails_the_round_trip(tmp_path):
  (tmp_path / 'a_file').write_text('x')
  checks = preflight.check_workdir(str(tmp_path / 'a_file' / 'run'))
  assert [(c.name, c.ok) for c in checks] == [('workdir', False)]
  assert 'Not a directory' in checks[0].detail and 'Fix: pass a --workdir' in checks[0].detail
  good = preflight.check_workdir(str(tmp_path / 'run'))
  assert [(c.name, c.ok) for c in good] == [('workdir', True), ('tensorstore', True)]
  assert list((tmp_path / 'run').iterdir()) == []


def test_a_bad_source_fails_the_record_check(data_dir, tmp_path):
  bad = tmp_path / 'eval.tsv'
  bad.write_bytes(b'sentence\tlabel\ngood\t1\n\xff broken\t0\n')
  config = _config(data_dir)
  config.evals.knn.source = f'tsv:{bad}'
  checks = preflight.check_data(config)
  assert [(c.name, c.ok) for c in checks] == [('data', False)]
  assert 'eval.tsv is not UTF-8' in checks[0].detail


def test_versions_against_the_pins(tmp_path):
  assert preflight.check_versions().ok   # this environment installs requirements.txt
  pinned = tmp_path / 'requirements.txt'
  pinned.write_text('flax==0.12.8\njax==0.0.1  # too old\njaxlib==0.0.1\n')
  assert preflight.pins(pinned) == {'jax': '0.0.1', 'jaxlib': '0.0.1'}
  check = preflight.check_versions(pinned)
  assert not check.ok and 'is not the pinned 0.0.1' in check.detail


def test_topology_compiles_and_refuses_what_does_not_fit():
  """--topology: the real compile for a v5e chip (16 GiB), no live checks; 2^17 digit pairs
  do not fit, so exit 2 with one line naming the fixes (tests/test_compile_check.py covers
  the report's numbers)."""
  result = subprocess.run(
      [sys.executable, '-m', 'sslax.preflight', '--config', 'configs/simclr_digits.py:smoke',
       '--topology', 'v5e-1', '--config.batch_size=131072', '--config.eval.batch_size=131072'],
      cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'configs/simclr_digits.py:smoke on v5e-1 (1 x TPU v5 lite' in result.stdout
  assert 'fits: NO' in result.stdout
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith('sslax.preflight: error: ') and '--config.batch_size=65536' in line


def test_two_processes_join_through_the_shared_distributed_flags(data_dir, tmp_path):
  """The flags sslax.main takes (cli.define_distributed_flags): 2 processes x 2 devices."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  env = {**ENV, 'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  procs = [subprocess.Popen(
      [sys.executable, '-m', 'sslax.preflight', '--config', 'configs/simclr_digits.py:smoke',
       f'--config.data.data_dir={data_dir}', '--workdir', str(tmp_path / 'run'),
       '--expect_devices=4', '--expect_processes=2', f'--coordinator_address=127.0.0.1:{port}',
       '--num_processes=2', f'--process_id={i}', '--initialization_timeout=60'],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for i, (p, (out, err)) in enumerate(zip(procs, outs)):
    assert p.returncode == 0, out + err[-3000:]
    assert f'4 cpu devices in 2 process(es) (2 on this one, process {i}), as expected' in out
  assert list((tmp_path / 'run').iterdir()) == []


def test_config_is_required():
  result = subprocess.run([sys.executable, '-m', 'sslax.preflight', '--workdir', '/tmp/x'],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert result.stderr.strip() == ('sslax.preflight: error: --config is required, e.g. '
                                   '--config configs/simclr_digits.py.')
