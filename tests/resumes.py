"""Resumed runs against uninterrupted ones, at the cost of one extra half run.

A test trains its run to the end once (evaluating it as before), then `resume_copy` copies
that workdir without the checkpoints after `step`: the workdir a kill right after step
`step`'s save leaves behind (the trainer reads only config.json, the tokenizer and
checkpoints/ when it resumes; the kill itself is tests/test_train.py's). The copy trains to
the end again with its evaluators off, and `assert_same_final_state` compares the two final
checkpoints whole (params, opt_state, model_state, extra, rng, online probe), bit for bit:
DESIGN.md promises a resumed run continues bit for bit, and both runs execute the same
compiled step on the same devices, so any difference is a resume bug, not rounding.
"""
import pathlib
import shutil
from typing import Any

import chex
import jax
import ml_collections

from sslax import checkpoint
from sslax import sharding
from sslax import train
from sslax.data import tokenizers


def final_state(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> tuple[Any, dict]:
  """(TrainState on the host, metadata) of checkpoint config.total_steps in `workdir`; the
  step is named, so an unreadable one fails instead of falling back to an older step."""
  config = tokenizers.prepare(config, str(workdir), train_if_missing=False)
  parts = train.build(config, sharding.make_mesh(config.mesh), train.sample_batch(config))
  manager = checkpoint.Manager(str(workdir / 'checkpoints'),
                               max_to_keep=config.checkpoint.max_to_keep)
  try:
    state, meta = manager.restore(parts.abstract_state, parts.state_sharding,
                                  step=config.total_steps)
  finally:
    manager.close()
  return jax.device_get(state), meta


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


def assert_same_final_state(config: ml_collections.ConfigDict, straight: pathlib.Path,
                            resumed: pathlib.Path) -> None:
  """The two runs' final checkpoints hold equal train states, leaf for leaf and bit for bit."""
  (a, meta_a), (b, meta_b) = final_state(config, straight), final_state(config, resumed)
  assert meta_a['step'] == meta_b['step'] == config.total_steps, (meta_a, meta_b)
  assert int(a.step) == int(b.step) == config.total_steps
  chex.assert_trees_all_equal(a, b, strict=True)
