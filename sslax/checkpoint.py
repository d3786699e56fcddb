"""Orbax checkpoints of the whole train state plus a small JSON of metadata.

Restores always pass an abstract target carrying the shardings the current run
wants, so a checkpoint written on one device count or mesh restores on another
(STACK.md: without a target Orbax fails with "Topology mismatch").

Faults: Orbax writes each save into `<step>.orbax-checkpoint-tmp-*` and renames
it only once every file is written, so a save torn by a kill is never listed as
a step (and `cleanup_tmp_directories` removes it on the next start). A listed
step that still fails to read (a disk error, a truncated file) is skipped with a
warning and the previous one restored; it is then renamed `<step>.corrupt` so
the resumed run can save that step again.

The directory may be gs:// (sslax/storage.py): Orbax reaches it through epath and TensorStore.
Every process writes its own shards; process 0 alone moves unreadable steps aside.

Replica-parallel saving (each replica of a replicated array writes a slice of it) is on only
when there are several processes, where it spreads the writing over the hosts. In one
process it has nothing to spread, and Orbax cuts every slice with its own small jitted
program: a smoke run's first save compiled hundreds of them (10.8 vs 15.6 CPU-s for
simclr_digits:smoke without evaluations, measured 2026-12-07).
"""
import logging
from typing import Any

import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from sslax import storage

CORRUPT_SUFFIX = '.corrupt'


def _all_processes(ok: bool) -> bool:
  """True only if `ok` on every process, so all of them restore the same step."""
  if jax.process_count() == 1:
    return ok
  return bool(np.all(multihost_utils.process_allgather(np.asarray(ok))))


def _state_handler() -> ocp.PyTreeCheckpointHandler:
  """The train state's handler: Orbax's defaults, replica-parallel saving only across processes."""
  replica_parallel = jax.process_count() > 1
  registry = ocp.type_handlers.create_type_handler_registry(*(
      (ty, ocp.type_handlers.ArrayHandler(use_replica_parallel=replica_parallel)
       if ty is jax.Array else ocp.type_handlers.get_type_handler(ty))
      for ty in ocp.type_handlers.supported_types()))
  return ocp.PyTreeCheckpointHandler(type_handler_registry=registry)


class Manager:
  """<workdir>/checkpoints: periodic and final saves, keep the newest N."""

  def __init__(self, directory: str, *, max_to_keep: int):
    self.directory = storage.path(directory)
    self._mngr = ocp.CheckpointManager(
        self.directory,
        item_handlers={'state': _state_handler(),
                       'meta': ocp.JsonCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=True,
            cleanup_tmp_directories=True))

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    """Starts an async save; the caller decides when a save is due."""
    self._mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def _restore_step(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
    restored = self._mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(
            target, restore_args=ocp.checkpoint_utils.construct_restore_args(target)),
        meta=ocp.args.JsonRestore()))
    return restored.state, restored.meta

  def mismatches(self, abstract_state: Any, step: int | None = None) -> list[str]:
    """Leaves of `abstract_state` that the checkpoint lacks or stores with another shape/dtype.

    Checked before restoring, so an incompatible workdir gets a clear message instead of
    an error from deep inside Orbax.
    """
    step = self._mngr.latest_step() if step is None else step
    try:
      metadata = self._mngr.item_metadata(step)['state']
    except Exception:   # An unreadable step is `restore`'s to skip, not a config mismatch.
      return []
    saved = {_path(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(metadata)}
    wanted = {_path(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(abstract_state)}
    problems = [f'{k}: not in checkpoint' for k in sorted(set(wanted) - set(saved))]
    problems += [f'{k}: in checkpoint only' for k in sorted(set(saved) - set(wanted))]
    for k in sorted(set(saved) & set(wanted)):
      if tuple(saved[k].shape) != tuple(wanted[k].shape) or saved[k].dtype != wanted[k].dtype:
        problems.append(f'{k}: checkpoint {saved[k].dtype}{list(saved[k].shape)} vs '
                        f'config {wanted[k].dtype}{list(wanted[k].shape)}')
    return problems

  def restore(self, abstract_state: Any, shardings: Any,
              step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Restores `step`, or else the newest readable step, into arrays laid out as `shardings`.

    Without `step`, unreadable newer steps are skipped with a warning and, once an
    older one restored, renamed `<step>.corrupt`. If no step is readable the newest
    error is raised and nothing is renamed (a changed model config fails on every
    step; its checkpoints are not corrupt).
    """
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings)
    if step is not None:
      return self._restore_step(step, target)
    skipped, first_error = [], None
    for candidate in sorted(self._mngr.all_steps(), reverse=True):
      try:
        state, meta = self._restore_step(candidate, target)
        error = None
      except Exception as e:   # Orbax/TensorStore raise many types for unreadable files.
        state, meta, error = None, None, e
      if _all_processes(error is None):
        self._quarantine(skipped)
        return state, meta
      logging.warning('Checkpoint step %d in %s is unreadable (%s: %s); trying the previous '
                      'one.', candidate, self.directory, type(error).__name__,
                      str(error).splitlines()[0][:200] if error else 'failed on another process')
      first_error = first_error or error
      skipped.append(candidate)
    raise RuntimeError(
        f'No checkpoint in {self.directory} could be restored (tried steps {skipped}). If the '
        f'config changed shapes (config.model, config.method), use a new --workdir.'
    ) from first_error

  def _quarantine(self, steps: list[int]) -> None:
    """Moves unreadable steps aside (kept for inspection), so those steps can be saved again."""
    if not steps:
      return
    if jax.process_index() == 0:
      for s in steps:
        path = self.directory / str(s)
        aside, n = path.with_name(path.name + CORRUPT_SUFFIX), 1
        while aside.exists():   # the same step may go bad twice
          aside, n = path.with_name(f'{path.name}{CORRUPT_SUFFIX}{n}'), n + 1
        path.rename(aside)
        logging.warning('Moved unreadable checkpoint %s to %s.', path, aside)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices('sslax_checkpoint_quarantine')
    self._mngr.reload()

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()


def _path(path: tuple[Any, ...]) -> str:
  """'params.encoder.Conv_0.kernel' for a pytree key path of dict keys or attributes."""
  return '.'.join(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k)))) for k in path)
