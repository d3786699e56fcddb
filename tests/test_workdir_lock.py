"""One writer per workdir (sslax/workdir_lock.py): refusals name the holder, dead holders do
not block, gs:// leases expire and requeues take them back. Cheap: no test compiles or trains;
the children only import the lock (and sslax.main parses its config)."""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from sslax import cli
from sslax import errors
from sslax import workdir_lock
from tests.test_gcs import BUCKET
from tests.test_gcs import gcs  # noqa: F401  (the emulator fixture)

REPO = pathlib.Path(__file__).resolve().parents[1]
# Holds the lock on $WORKDIR until its stdin closes.
HOLDER = '''
import os, sys
from sslax import workdir_lock
with workdir_lock.hold(os.environ['WORKDIR']):
  print('held', flush=True)
  sys.stdin.read()
'''
# A second run as a command line runs it: through cli.run, which reports user errors.
CONTENDER = '''
import os
from sslax import cli, workdir_lock
def main(argv):
  with workdir_lock.hold(os.environ['WORKDIR']):
    print('acquired', flush=True)
cli.run(main)
'''

# Process $PROCESS of a 2-process JAX run doing the same.
TWO_PROCESSES = '''
import os
import jax
from jax.experimental import multihost_utils
jax.distributed.initialize(coordinator_address=os.environ['COORDINATOR'], num_processes=2,
                           process_id=int(os.environ['PROCESS']), initialization_timeout=60)
from sslax import cli, workdir_lock
def main(argv):
  with workdir_lock.hold(os.environ['WORKDIR']):
    record = open(os.path.join(os.environ['WORKDIR'], workdir_lock.LOCK_NAME)).read()
    print('acquired', jax.process_index(), os.getpid(), record, flush=True)
    multihost_utils.sync_global_devices('read')   # process 0 releases after both have read
cli.run(main)
'''


@pytest.fixture(autouse=True)
def no_job_ids(monkeypatch):
  """Tests name jobs themselves: one run under SLURM must not look like a requeue."""
  for var in workdir_lock.JOB_ID_VARS:
    monkeypatch.delenv(var, raising=False)


def _env(workdir, **extra) -> dict[str, str]:
  return {**os.environ, 'WORKDIR': str(workdir), 'PYTHONPATH': str(REPO), **extra}


@pytest.fixture
def holder(tmp_path):
  """A child process holding tmp_path/run's lock, started with SLURM_JOB_ID=77."""
  workdir = tmp_path / 'run'
  child = subprocess.Popen([sys.executable, '-c', HOLDER], cwd=REPO, text=True,
                           env=_env(workdir, SLURM_JOB_ID='77'),
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
  try:
    assert child.stdout.readline().strip() == 'held'
    yield workdir, child
  finally:
    if child.poll() is None:
      child.kill()
    child.wait(timeout=60)


def test_second_process_exits_2_naming_the_holder(holder):
  workdir, child = holder
  result = subprocess.run([sys.executable, '-c', CONTENDER], cwd=REPO, env=_env(workdir),
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
  assert 'acquired' not in result.stdout
  assert f'pid {child.pid}' in lines[0] and 'SLURM_JOB_ID=77' in lines[0], lines[0]
  assert str(workdir / workdir_lock.LOCK_NAME) in lines[0] and '--workdir' in lines[0]
  # The holder's record is in the file, for a person too.
  record = json.loads((workdir / workdir_lock.LOCK_NAME).read_text())
  assert record['pid'] == child.pid and record['job'] == 'SLURM_JOB_ID=77'

  # Once it ends normally the lock is free, and its record gone.
  child.stdin.close()
  assert child.wait(timeout=60) == 0
  assert (workdir / workdir_lock.LOCK_NAME).read_text() == ''
  result = subprocess.run([sys.executable, '-c', CONTENDER], cwd=REPO, env=_env(workdir),
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0 and 'acquired' in result.stdout, result.stderr[-3000:]


def test_a_killed_holder_does_not_block_its_successor(holder):
  workdir, child = holder
  with pytest.raises(errors.WorkdirLockedError, match=f'pid {child.pid}'):
    workdir_lock.acquire(str(workdir))
  child.send_signal(signal.SIGKILL)
  child.wait(timeout=60)
  lock = workdir_lock.acquire(str(workdir))   # at once: the kernel dropped the dead one's lock
  try:
    assert json.loads((workdir / workdir_lock.LOCK_NAME).read_text())['pid'] == os.getpid()
  finally:
    lock.release()


def test_one_process_cannot_hold_a_workdir_twice(tmp_path):
  # POSIX locks belong to a process: a second lockf would succeed, and its close drop both.
  with workdir_lock.hold(str(tmp_path)):
    with pytest.raises(errors.WorkdirLockedError, match='already in use by this process'):
      with workdir_lock.hold(str(tmp_path)):
        pass
    # The refused inner block left the outer lock in place.
    result = subprocess.run([sys.executable, '-c', CONTENDER], cwd=REPO, env=_env(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and f'pid {os.getpid()}' in result.stderr, result.stderr


def _holder(pid: int, job: str | None = None) -> workdir_lock.Record:
  return {**workdir_lock.identity(), 'pid': pid, 'job': job}


def _crash(lock: workdir_lock.GcsLock) -> None:
  """Stops renewing without releasing, as a killed process would."""
  lock._stop.set()   # pylint: disable=protected-access
  lock._thread.join()   # pylint: disable=protected-access


def test_gcs_second_writer_refused_while_the_lease_is_renewed(gcs):
  url = f'gs://{BUCKET}/two-writers'
  first = workdir_lock.acquire(url, lease_s=0.9, holder=_holder(101))
  generation = first.read()[0]
  time.sleep(1.5)   # past the first lease: only renewals keep it
  current = first.read()
  assert current[0] != generation and current[1]['pid'] == 101
  assert current[1]['expires'] > time.time()
  with pytest.raises(errors.WorkdirLockedError) as refused:
    workdir_lock.acquire(url, lease_s=0.9, holder=_holder(202))
  message = str(refused.value)
  assert 'pid 101' in message and f'{url}/{workdir_lock.LOCK_NAME}' in message
  assert 'expires at' in message and 'delete' in message
  first.release()
  assert first.read() is None   # released: the object is gone
  workdir_lock.acquire(url, lease_s=30, holder=_holder(202)).release()


def test_gcs_stale_lease_is_taken_over_by_exactly_one_successor(gcs):
  url = f'gs://{BUCKET}/stale'
  dead = workdir_lock.acquire(url, lease_s=1, holder=_holder(101, 'SLURM_JOB_ID=1'))
  _crash(dead)
  with pytest.raises(errors.WorkdirLockedError, match='pid 101'):   # its lease still runs
    workdir_lock.acquire(url, lease_s=30, holder=_holder(202, 'SLURM_JOB_ID=2'))
  time.sleep(max(0.0, dead.read()[1]['expires'] - time.time()) + 0.1)

  # Two successors race for the expired lease: the precondition lets one win.
  won, refused = [], []
  def contend(pid: int) -> None:
    try:
      won.append(workdir_lock.acquire(url, lease_s=30, holder=_holder(pid)))
    except errors.WorkdirLockedError as e:
      refused.append(str(e))
  threads = [threading.Thread(target=contend, args=(pid,)) for pid in (303, 404)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=60)
  assert len(won) == 1 and len(refused) == 1, (won, refused)
  winner = won[0]
  assert winner.read()[1]['token'] == winner._holder['token']   # pylint: disable=protected-access
  loser_pid = ({303, 404} - {winner._holder['pid']}).pop()   # pylint: disable=protected-access
  assert f"pid {winner._holder['pid']}" in refused[0] and f'pid {loser_pid}' not in refused[0]

  # The dead holder's late renewal fails, and its release leaves the winner's object alone.
  assert dead._write(dead._generation) is None   # pylint: disable=protected-access
  dead.release()
  assert winner.read()[1]['token'] == winner._holder['token']   # pylint: disable=protected-access
  winner.release()
  assert winner.read() is None


def test_gcs_requeue_of_the_same_job_takes_the_lock_back_at_once(gcs, monkeypatch):
  url = f'gs://{BUCKET}/requeue'
  monkeypatch.setenv('SSLAX_RUN_ID', 'exp-7')
  preempted = workdir_lock.acquire(url, lease_s=60)
  _crash(preempted)
  assert preempted.read()[1]['job'] == 'SSLAX_RUN_ID=exp-7'
  with pytest.raises(errors.WorkdirLockedError, match='SSLAX_RUN_ID=exp-7'):   # another job
    workdir_lock.acquire(url, lease_s=60, holder=_holder(202, 'SSLAX_RUN_ID=exp-8'))
  # The requeue, long before the 60 s lease ends.
  with workdir_lock.hold(url, lease_s=60):
    current = preempted.read()
    assert current[1]['job'] == 'SSLAX_RUN_ID=exp-7'
    assert current[1]['token'] != preempted._holder['token']   # pylint: disable=protected-access
  assert preempted.read() is None


def test_gcs_lock_released_however_the_run_ends(gcs):
  url = f'gs://{BUCKET}/ends'
  with pytest.raises(RuntimeError, match='boom'):
    with workdir_lock.hold(url, lease_s=60):
      raise RuntimeError('boom')
  fresh = workdir_lock.acquire(url, lease_s=60)   # free at once, though the lease was 60 s
  assert fresh.read()[1]['pid'] == os.getpid()
  fresh.release()
  assert fresh.read() is None


def test_cli_refuses_a_locked_workdir_before_writing(tmp_path):
  workdir = tmp_path / 'run'
  with workdir_lock.hold(str(workdir)):
    result = subprocess.run(
        [sys.executable, '-m', 'sslax.main', '--config', 'configs/simclr_digits.py:smoke',
         '--workdir', str(workdir), f'--config.data.data_dir={tmp_path}/tfds'],
        cwd=REPO, env={**os.environ, 'XLA_FLAGS': ''}, capture_output=True, text=True,
        timeout=300)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
  assert lines[0].startswith('sslax.main: error: Workdir ') and f'pid {os.getpid()}' in lines[0]
  assert sorted(p.name for p in workdir.iterdir()) == [workdir_lock.LOCK_NAME]


def test_evaluate_refuses_a_locked_output_dir(tmp_path):
  # Refused before it restores anything: a config.json is all the command reads first.
  (tmp_path / 'config.json').write_text(json.dumps({'evals': {}}))
  with workdir_lock.hold(str(tmp_path)):
    result = subprocess.run([sys.executable, '-m', 'sslax.evaluate', '--workdir', str(tmp_path)],
                            cwd=REPO, env=os.environ, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('sslax.evaluate: error: Workdir '), lines
  assert f'pid {os.getpid()}' in lines[0]


def _two_processes(workdir) -> list[subprocess.CompletedProcess]:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  env = _env(workdir, COORDINATOR=f'127.0.0.1:{port}', XLA_FLAGS=(
      f'--xla_force_host_platform_device_count=2 {cli.FAST_COMPILE_FLAGS}'))
  children = [subprocess.Popen([sys.executable, '-c', TWO_PROCESSES], cwd=REPO,
                               env={**env, 'PROCESS': str(i)}, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for i in range(2)]
  results = []
  for child in children:
    out, err = child.communicate(timeout=240)
    results.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
  return results


def test_multi_process_run_is_refused_on_every_process(tmp_path):
  workdir = tmp_path / 'run'
  with workdir_lock.hold(str(workdir)):
    refused = _two_processes(workdir)
  for i, result in enumerate(refused):
    assert result.returncode == 2 and 'acquired' not in result.stdout, (i, result.stderr[-3000:])
    line = result.stderr.strip().splitlines()[-1]
    assert ': error: Workdir ' in line and f'pid {os.getpid()}' in line, (i, line)
  assert '(process 0 was refused)' in refused[1].stderr

  # Free: both run, and only process 0 holds (and names itself in) the lock.
  ran = _two_processes(workdir)
  assert [r.returncode for r in ran] == [0, 0], [r.stderr[-3000:] for r in ran]
  # Gloo (the CPU collectives) prints to stdout as well, from C++: its lines may land inside ours.
  found = [re.search(r'acquired (\d) (\d+) (\{.*\})', r.stdout) for r in ran]
  assert all(found), [r.stdout for r in ran]
  outputs = [['acquired', *m.groups()] for m in found]
  assert [o[:2] for o in outputs] == [['acquired', '0'], ['acquired', '1']], outputs
  assert all(json.loads(o[3])['pid'] == int(outputs[0][2]) for o in outputs), outputs
  assert (workdir / workdir_lock.LOCK_NAME).read_text() == ''   # released by process 0
