"""Preemption notices (SIGTERM) turned into "save now and stop" at a step all processes share.

Cloud TPU maintenance, spot/preemptible VMs and SLURM (`--signal`, `scancel`) send SIGTERM
some seconds before killing a job. One process: a handler only sets a flag, and the loop
checks it after each step (doing work inside a signal handler would race the step). Several
processes: JAX's coordination service already catches SIGTERM and agrees on a step at which
every process saves (`multihost_utils.reached_preemption_sync_point`), so that no process
waits forever in a save collective the others never join.
"""
import signal
import threading
import types

import jax
from jax.experimental import multihost_utils


class Watcher:
  """`with Watcher() as w: ... if w.reached(step): save and stop`."""

  def __init__(self):
    self._requested = False
    self._previous = None

  def _handle(self, signum: int, frame: types.FrameType | None) -> None:
    del signum, frame
    self._requested = True

  @staticmethod
  def _multi_process() -> bool:
    # The sync point needs the coordination client that jax.distributed.initialize starts.
    return jax.distributed.is_initialized()

  def __enter__(self) -> 'Watcher':
    # Signal handlers can only be set from the main thread (a run driven from another
    # thread, e.g. a notebook worker, simply is not preemptible).
    if not self._multi_process() and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def reached(self, step: int) -> bool:
    """True once a preemption notice arrived; call it after every step, on every process."""
    if self._multi_process():
      return multihost_utils.reached_preemption_sync_point(step)
    return self._requested
