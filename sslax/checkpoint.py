"""Orbax checkpoints of the whole train state plus a small JSON of metadata.

Restores always pass an abstract target carrying the shardings the current run
wants, so a checkpoint written on one device count restores on another
(STACK.md: without a target Orbax fails with "Topology mismatch").
"""
import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Manager:
  """<workdir>/checkpoints: periodic and final saves, keep the newest N."""

  def __init__(self, directory: str, *, max_to_keep: int):
    self.directory = os.path.abspath(directory)
    self._mngr = ocp.CheckpointManager(
        self.directory,
        item_handlers={'state': ocp.StandardCheckpointHandler(),
                       'meta': ocp.JsonCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=True))

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    """Starts an async save; the caller decides when a save is due."""
    self._mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def restore(self, abstract_state: Any, shardings: Any,
              step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Restores `step` (default: latest) into arrays laid out as `shardings`."""
    step = self._mngr.latest_step() if step is None else step
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings)
    restored = self._mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    return restored.state, restored.meta

  def mismatches(self, abstract_state: Any, step: int | None = None) -> list[str]:
    """Leaves of `abstract_state` that the checkpoint lacks or stores with another shape/dtype.

    Checked before restoring, so an incompatible workdir gets a clear message instead of
    an error from deep inside Orbax.
    """
    step = self._mngr.latest_step() if step is None else step
    saved = {_path(p): leaf for p, leaf in
             jax.tree_util.tree_leaves_with_path(self._mngr.item_metadata(step)['state'])}
    wanted = {_path(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(abstract_state)}
    problems = [f'{k}: not in checkpoint' for k in sorted(set(wanted) - set(saved))]
    problems += [f'{k}: in checkpoint only' for k in sorted(set(saved) - set(wanted))]
    for k in sorted(set(saved) & set(wanted)):
      if tuple(saved[k].shape) != tuple(wanted[k].shape) or saved[k].dtype != wanted[k].dtype:
        problems.append(f'{k}: checkpoint {saved[k].dtype}{list(saved[k].shape)} vs '
                        f'config {wanted[k].dtype}{list(wanted[k].shape)}')
    return problems

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()


def _path(path: tuple[Any, ...]) -> str:
  """'params.encoder.Conv_0.kernel' for a pytree key path of dict keys or attributes."""
  return '.'.join(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k)))) for k in path)
