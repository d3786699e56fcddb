"""Resumed runs against uninterrupted ones, for the cost of a kill run and its resume.

A test records every checkpoint save (`record_saves`), trains its run to the end once
(evaluating it as before), then `resume_copy` copies that workdir without the checkpoints
after `step`: the workdir a kill right after step `step`'s save leaves behind (the trainer
reads only config.json, the tokenizer and checkpoints/ when it resumes; the kill itself is
tests/test_train.py's). The same config resumes the copy and is stopped right after its
final save, before it evaluates (the straight run's evaluation is the test's); then
`assert_same_final_state` compares the two runs' final saved train states whole (params,
opt_state, model_state, extra, rng, online probe), bit for bit: DESIGN.md promises a resumed
run continues bit for bit, and both runs execute the same compiled step on the same devices,
so any difference is a resume bug, not rounding. With 3 steps and saves at 2 and 3, the two
runs train 4 steps in all, as a kill after step 2 and a resume to step 4 do.
"""
import pathlib
import shutil
from typing import Any

import chex
import jax
import ml_collections

from sslax import checkpoint
from sslax import train


class Saves:
  """What `record_saves` keeps: {(workdir, step): TrainState on the host}, and the saves after
  which the run stops."""

  def __init__(self):
    self.states: dict[tuple[pathlib.Path, int], Any] = {}
    self.stop_after: set[tuple[pathlib.Path, int]] = set()


class _Stopped(Exception):
  pass


def record_saves(monkeypatch) -> Saves:
  """Keeps every checkpoint save's state from now on, as the trainer hands it to Orbax (no
  restore, no second build of the model)."""
  saves = Saves()
  real = checkpoint.Manager.save

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    workdir = pathlib.Path(str(self.directory)).parent
    saves.states[workdir, step] = jax.device_get(state)
    real(self, step, state, meta)
    if (workdir, step) in saves.stop_after:
      raise _Stopped()   # train.run's `finally` lands the save in flight
  monkeypatch.setattr(checkpoint.Manager, 'save', save)
  return saves


def resume_copy(saves: Saves, config: ml_collections.ConfigDict, straight: pathlib.Path,
                resumed: pathlib.Path, step: int) -> None:
  """Copies finished run `straight` to `resumed` as a kill after step `step`'s save leaves it,
  and resumes `config` there up to its final save."""
  def later_steps(folder: str, names: list[str]) -> list[str]:
    if pathlib.Path(folder).name == 'checkpoints':
      return [n for n in names if n.isdigit() and int(n) > step]
    return [n for n in names if n == '.sslax.lock']
  shutil.copytree(straight, resumed, ignore=later_steps)
  assert sorted(p.name for p in (resumed / 'checkpoints').iterdir()) == [str(step)]
  saves.stop_after.add((resumed, config.total_steps))
  try:
    train.run(config, str(resumed))
  except _Stopped:
    return
  raise AssertionError(f'{resumed} did not save step {config.total_steps}')


def assert_same_final_state(saves: Saves, straight: pathlib.Path, resumed: pathlib.Path,
                            step: int) -> None:
  """Both runs saved step `step`, and the two train states are equal leaf for leaf, bit for
  bit (dtypes and shapes included)."""
  a, b = saves.states[straight, step], saves.states[resumed, step]
  assert int(a.step) == int(b.step) == step
  chex.assert_trees_all_equal(a, b, strict=True)
