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

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()
