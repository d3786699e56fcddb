"""One writer per workdir: a lock a run takes before it writes anything (issue 35).

Two runs on one workdir would interleave metrics.jsonl, delete each other's Orbax steps and
race for results.json; the second is refused instead with `errors.WorkdirLockedError` (one
line, exit 2) that names the holder and how to take over.

- Local and shared filesystems: a POSIX record lock (`fcntl.lockf`) on WORKDIR/.sslax.lock,
  held on an open descriptor for the run's life. NFSv4 and Lustre honour these across hosts
  (flock is only emulated there), and the kernel drops them when the holder dies however it
  dies, so a killed or preempted run's successor acquires at once. The file names the holder
  while held. It is never unlinked: a process that had opened the old inode could then lock
  it while another locks a new file of the same name.
- gs://: object stores have no locks, but writes take preconditions. WORKDIR/.sslax.lock is
  created with ifGenerationMatch=0 (only if absent) and names the holder and a lease expiry;
  a thread renews it every third of the lease with ifGenerationMatch=<its generation>. A dead
  holder's successor rewrites it with ifGenerationMatch=<the stale generation> once the lease
  has expired, so exactly one successor wins. Expiry is the holder's clock read by another
  host's: hosts must agree to well under a lease (NTP does).
- A requeue of the same job (same SSLAX_RUN_ID, else SLURM_JOB_ID, PBS_JOBID or LSB_JOBID)
  takes a gs:// lock back at once: a scheduler requeues a job once its processes are gone,
  but their lease may still run.
- Multi-process runs: process 0 takes the lock and broadcasts the outcome, so that no process
  writes (checkpoint shards) on a workdir process 0 was refused.
"""
from collections.abc import Iterator
import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from typing import Any
from urllib.parse import quote
import uuid

import fsspec
import jax
from jax.experimental import multihost_utils
import numpy as np

from sslax import errors
from sslax import storage

LOCK_NAME = '.sslax.lock'
ENV_RUN_ID = 'SSLAX_RUN_ID'
# Variables that name one job across its requeues, first found wins.
JOB_ID_VARS = (ENV_RUN_ID, 'SLURM_JOB_ID', 'PBS_JOBID', 'LSB_JOBID')
ENV_LEASE = 'SSLAX_LOCK_LEASE_SECONDS'
# How long a crashed gs:// holder blocks a different job: long enough that renewals (every
# third of it) survive a slow request or two, short enough to wait out by hand.
DEFAULT_LEASE_S = 60.0
# A holder record is a few hundred bytes; a longer file is not one of ours.
_MAX_RECORD_BYTES = 1 << 16
# Refusals are broadcast from process 0 as fixed-size byte arrays (all processes must pass
# the same shape); longer messages are cut.
_BROADCAST_BYTES = 2048
# Lost races for a gs:// lock before giving up: each loser re-reads who won.
_ATTEMPTS = 3

Record = dict[str, Any]
# Workdirs this process holds: POSIX locks belong to a process, so a second lockf on the same
# file from this process would succeed, and closing either descriptor would drop both.
_HELD: set[str] = set()


def identity() -> Record:
  """This process as a lock names its holder; `token` tells its writes from anyone else's."""
  var = next((v for v in JOB_ID_VARS if os.environ.get(v)), None)
  return {'host': socket.gethostname(), 'pid': os.getpid(),
          'job': f'{var}={os.environ[var]}' if var else None,
          'started': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
          'token': uuid.uuid4().hex}


def lease_seconds() -> float:
  """SSLAX_LOCK_LEASE_SECONDS, else DEFAULT_LEASE_S."""
  text = os.environ.get(ENV_LEASE, '')
  try:
    lease_s = float(text) if text else DEFAULT_LEASE_S
  except ValueError:
    lease_s = -1.0
  if not lease_s > 0:
    raise errors.ConfigError(f'{ENV_LEASE}={text!r}: give the gs:// lock lease in seconds (> 0), '
                             f'or unset it for {DEFAULT_LEASE_S:g}.')
  return lease_s


def describe(holder: Record | None) -> str:
  if not holder:
    return 'a run that has not written its name yet'
  job = f", {holder['job']}" if holder.get('job') else ''
  return (f"host {holder.get('host')}, pid {holder.get('pid')}{job}, "
          f"started {holder.get('started')}")


def _parse(data: bytes) -> Record | None:
  try:
    record = json.loads(data.decode())
  except (UnicodeDecodeError, ValueError):
    return None
  return record if isinstance(record, dict) else None


def _utc(seconds: float) -> str:
  return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(
      timespec='seconds')


class LocalLock:
  """fcntl.lockf on a local or shared filesystem's WORKDIR/.sslax.lock."""

  lost = False   # a POSIX lock is only lost with its process

  def __init__(self, workdir: str, holder: Record):
    root = storage.path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    self.path = os.fspath(root / LOCK_NAME)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
      fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      current = _parse(os.pread(fd, _MAX_RECORD_BYTES, 0))
      os.close(fd)
      if e.errno not in (errno.EACCES, errno.EAGAIN):
        raise
      raise errors.WorkdirLockedError(
          f'Workdir {workdir} is in use by another sslax run ({describe(current)}; lock file '
          f'{self.path}). Wait for it to end or pass another --workdir; its lock goes with its '
          'process, so once that run is killed a new one starts at once.') from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode() + b'\n', 0)
    os.fsync(fd)
    self._fd: int | None = fd

  def release(self) -> None:
    if self._fd is None:
      return
    try:
      # Emptied while still locked, so that it never erases a successor's record.
      os.ftruncate(self._fd, 0)
    finally:
      os.close(self._fd)   # drops the lock
      self._fd = None


class GcsLock:
  """A leased gs:// lock object written with generation preconditions (module docstring)."""

  def __init__(self, workdir: str, holder: Record, lease_s: float):
    self.url = f"{os.fspath(storage.path(workdir)).rstrip('/')}/{LOCK_NAME}"
    # The instance epath uses for gs:// (fsspec caches by arguments): its credentials and its
    # endpoint (STORAGE_EMULATOR_HOST); its generic authenticated `call` takes the query
    # parameters gcsfs's own writes do not expose.
    self._fs = fsspec.filesystem('gcs', finalize_on_close=True)
    self._bucket, self._key, _ = self._fs.split_path(self.url)
    self._holder, self._lease_s = holder, lease_s
    self.lost = False
    self._generation = self._acquire(workdir)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._renew, name='sslax-workdir-lock', daemon=True)
    self._thread.start()

  def read(self) -> tuple[int, Record | None] | None:
    """(generation, holder record) of the lock object, None when there is none."""
    try:
      headers, body = self._fs.call('GET', 'b/{}/o/{}', self._bucket, self._key, alt='media')
    except FileNotFoundError:
      return None
    return int(headers['X-Goog-Generation']), _parse(body)

  def _write(self, if_generation: int) -> int | None:
    """Writes our record, renewing the lease, if the object is at `if_generation` (0: absent).

    Returns the new generation, or None when another writer's generation is there."""
    record = {**self._holder, 'lease_s': self._lease_s,
              'expires': time.time() + self._lease_s}
    record['expires_utc'] = _utc(record['expires'])
    meta = json.dumps({'name': self._key, 'contentType': 'application/json'})
    body = (f'--==0==\nContent-Type: application/json; charset=UTF-8\n\n{meta}\n'
            '--==0==\nContent-Type: application/json\n\n').encode()
    body += json.dumps(record, indent=1).encode() + b'\n--==0==--'
    try:
      # A multipart upload: fake-gcs-server ignores preconditions on uploadType=media.
      out = self._fs.call(
          'POST', f'{self._fs._location}/upload/storage/v1/b/{quote(self._bucket)}/o',
          uploadType='multipart', ifGenerationMatch=str(if_generation), json_out=True,
          headers={'Content-Type': 'multipart/related; boundary="==0=="'}, data=body)
    except FileExistsError:   # gcsfs's name for 412 Precondition Failed
      # gcsfs retries failed requests: a first try that landed fails its own retry.
      current = self.read()
      if current and current[1] and current[1].get('token') == self._holder['token']:
        return current[0]
      return None
    return int(out['generation'])

  def _acquire(self, workdir: str) -> int:
    current = None
    for _ in range(_ATTEMPTS):
      current = self.read()
      if current is None:
        generation = self._write(0)
      elif self._may_take(current[1]):
        generation = self._write(current[0])
      else:
        break
      if generation is not None:
        return generation
    holder = current[1] if current else None
    expires = (f"its lease ({holder.get('lease_s', '?')} s, renewed while it runs) expires at "
               f"{holder.get('expires_utc', '?')}" if holder else 'it has no readable lease')
    raise errors.WorkdirLockedError(
        f'Workdir {workdir} is in use by another sslax run ({describe(holder)}; lock object '
        f'{self.url}). Wait for it to end or pass another --workdir. If that run is dead, '
        f'{expires}: rerun then, or delete {self.url}; a requeue of the same job (same '
        f'{ENV_RUN_ID} or SLURM_JOB_ID) takes it back at once.')

  def _may_take(self, holder: Record | None) -> bool:
    if holder is None:
      return False   # unreadable: only a person should delete what sslax cannot read
    job = self._holder.get('job')
    if job and holder.get('job') == job:
      return True   # our own job's earlier incarnation: it is gone, its lease may not be
    return time.time() > float(holder.get('expires', float('inf')))

  def _renew(self) -> None:
    while not self._stop.wait(self._lease_s / 3):
      try:
        generation = self._write(self._generation)
      except Exception as e:   # pylint: disable=broad-except
        # A failed request: the lease outlasts two more tries.
        print(f'sslax: warning: could not renew the lock {self.url} ({e!r}); retrying.',
              file=sys.stderr, flush=True)
        continue
      if generation is None:
        self.lost = True
        current = self.read()
        print(f'sslax: warning: lost the lock {self.url} to '
              f'{describe(current[1] if current else None)}: its lease had expired or the '
              'same job took it over. Two runs may now write this workdir.',
              file=sys.stderr, flush=True)
        return
      self._generation = generation

  def release(self) -> None:
    self._stop.set()
    self._thread.join()
    if self.lost:
      return
    try:
      current = self.read()
      if current and current[1] and current[1].get('token') == self._holder['token']:
        # The precondition makes this safe against a takeover since the read (on GCS; the
        # emulator ignores it on deletes, hence the read).
        self._fs.call('DELETE', 'b/{}/o/{}', self._bucket, self._key,
                      ifGenerationMatch=str(current[0]))
    except (FileNotFoundError, FileExistsError):
      pass   # gone or taken over: not ours to delete
    except Exception as e:   # pylint: disable=broad-except
      # Raised from a `finally`, this would hide the run's own outcome.
      print(f'sslax: warning: could not release the lock {self.url} ({e!r}); it expires with '
            'its lease.', file=sys.stderr, flush=True)


def acquire(workdir: str, *, lease_s: float | None = None,
            holder: Record | None = None) -> LocalLock | GcsLock:
  """This process's lock on `workdir` (any process count); raises WorkdirLockedError."""
  holder = holder or identity()
  if storage.is_remote(workdir):
    if not os.fspath(workdir).startswith('gs://'):
      raise errors.ConfigError(f'Workdir {workdir}: sslax can lock local, shared and gs:// '
                               'workdirs only.')
    return GcsLock(workdir, holder, lease_s or lease_seconds())
  return LocalLock(workdir, holder)


def _broadcast(code: int, message: str) -> tuple[int, str]:
  """Process 0's (code, message) on every process."""
  data = np.zeros(_BROADCAST_BYTES, np.uint8)
  encoded = message.encode()[:_BROADCAST_BYTES - 1]
  data[0] = code
  data[1:1 + len(encoded)] = np.frombuffer(encoded, np.uint8)
  out = np.asarray(multihost_utils.broadcast_one_to_all(data))
  return int(out[0]), bytes(out[1:]).rstrip(b'\0').decode(errors='replace')


_OK, _LOCKED, _FAILED = 0, 1, 2


@contextlib.contextmanager
def hold(workdir: str, *, lease_s: float | None = None) -> Iterator[None]:
  """`with hold(workdir):` the run's writes. Process 0 locks; every process raises
  WorkdirLockedError when it was refused. Released however the block ends."""
  lock, failure, code, message = None, None, _OK, ''
  key = os.fspath(storage.path(workdir))
  if jax.process_index() == 0:
    try:
      if key in _HELD:
        raise errors.WorkdirLockedError(
            f'Workdir {workdir} is already in use by this process (pid {os.getpid()}).')
      lock = acquire(workdir, lease_s=lease_s)
    except errors.WorkdirLockedError as e:
      failure, code, message = e, _LOCKED, str(e)
    except Exception as e:   # pylint: disable=broad-except
      failure, code, message = e, _FAILED, repr(e)
  if jax.process_count() > 1:
    # Every process passes here before writing, so none waits on a refused process 0.
    code, message = _broadcast(code, message)
  if failure is not None:
    raise failure
  if code == _LOCKED:
    raise errors.WorkdirLockedError(f'{message} (process 0 was refused)')
  if code == _FAILED:
    raise RuntimeError(f'Process 0 could not lock workdir {workdir}: {message}')
  if lock is not None:
    _HELD.add(key)
  try:
    yield
  finally:
    if lock is not None:
      _HELD.discard(key)
      lock.release()
