"""Resumed runs against uninterrupted ones, at the cost of one extra half run.

A test records every checkpoint save (`record_saves`), trains its run to the end once
(evaluating it as before), then `resume_copy` copies that workdir without the checkpoints
after `step`: the workdir a kill right after step `step`'s save leaves behind (the trainer
reads only config.json, the tokenizer and checkpoints/ when it resumes; the kill itself is
tests/test_train.py's). The copy trains to the end again with its evaluators off, and
`assert_same_final_state` compares the two runs' final saved train states whole (params,
opt_state, model_state, extra, rng, online probe), bit for bit: DESIGN.md promises a resumed
run continues bit for bit, and both runs execute the same compiled step on the same devices,
so any difference is a resume bug, not rounding.
"""
import pathlib
import shutil
from typing import Any

import chex
import jax
import ml_collections

from sslax import checkpoint
from sslax import train


def record_saves(monkeypatch) -> dict[tuple[pathlib.Path, int], Any]:
  """{(workdir, step): the TrainState on the host} of every checkpoint save from now on, taken
  as the trainer hands it to Orbax (no restore, no second build of the model)."""
  saves = {}
  real = checkpoint.Manager.save

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    saves[pathlib.Path(str(self.directory)).parent, step] = jax.device_get(state)
    real(self, step, state, meta)
  monkeypatch.setattr(checkpoint.Manager, 'save', save)
  return saves


def resume_copy(config: ml_collections.ConfigDict, straight: pathlib.Path,
                resumed: pathlib.Path, step: int) -> dict[str, float]:
  """Copies finished run `straight` to `resumed` as a kill after step `step`'s save leaves it,
  and resumes `config` there to the end with every evaluator off (the straight run's
  evaluation is the test's); train.run's results."""
  def later_steps(folder: str, names: list[str]) -> list[str]:
    if pathlib.Path(folder).name == 'checkpoints':
      return [n for n in names if n.isdigit() and int(n) > step]
    return [n for n in names if n == '.sslax.lock']
  shutil.copytree(straight, resumed, ignore=later_steps)
  assert sorted(p.name for p in (resumed / 'checkpoints').iterdir()) == [str(step)]
  quiet = ml_collections.ConfigDict(config.to_dict())
  for ev in quiet.evals.values():
    ev.enabled = False
  quiet.eval.raw_input = False
  return train.run(quiet, str(resumed))


def assert_same_final_state(saves: dict[tuple[pathlib.Path, int], Any], straight: pathlib.Path,
                            resumed: pathlib.Path, step: int) -> None:
  """Both runs saved step `step`, and the two train states are equal leaf for leaf, bit for
  bit (dtypes and shapes included)."""
  a, b = saves[straight, step], saves[resumed, step]
  assert int(a.step) == int(b.step) == step
  chex.assert_trees_all_equal(a, b, strict=True)
