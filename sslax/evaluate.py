"""Evaluators on a saved checkpoint, for any method:

  python -m sslax.evaluate --workdir DIR [--step N] [--evals knn,fine_tune] [--config.evals.knn.k=10 ...]

Reads `DIR/config.json` (the run's resolved config), restores the checkpoint of step N
(default: the latest) into the current devices, runs every enabled `config.evals` evaluator (or
only those `--evals` names, switched on or not) on it and on the random-init encoder, and writes results.json, results.md and the PNG plots (see
sslax/reports.py) to `--output_dir` (default: DIR). Any config value can be overridden like
in sslax.main, e.g. `--config.eval.num_seeds=3` or `--config.evals.linear_probe.steps=500`.
"""
from collections.abc import Mapping, Sequence
from typing import Any

from absl import flags
import jax
import ml_collections
from ml_collections import config_flags

from sslax import artifacts
from sslax import callable_module
from sslax import checkpoint
from sslax import cli
from sslax import errors
from sslax import reports
from sslax import sharding
from sslax import storage
from sslax import train
from sslax import validate
from sslax import workdir_lock
from sslax.data import tokenizers
from sslax.evaluators import options
from sslax.evaluators import suite


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run wrote to `workdir/config.json`, with the optional keys of its
  evaluators that it did not set at their defaults, so that the command line can override
  them (e.g. --config.evals.fine_tune.warmup_steps=60)."""
  config = artifacts.read_config(workdir)
  for ev in config.get('evals', {}).values():
    if isinstance(ev, ml_collections.ConfigDict) and ev.get('type') in options.OPTIONS:
      ev.update({k: v for k, v in options.optional(ev['type']).items() if k not in ev})
  return config


def select(config: ml_collections.ConfigDict, names: list[str]) -> ml_collections.ConfigDict:
  """A copy of `config` whose `evals` are exactly `names`, each switched on.

  A config.json's evaluators may lack the optional `enabled` key, which a locked config cannot
  gain from the command line; choosing by name avoids it.
  """
  unknown = sorted(set(names) - set(config.evals.keys()))
  if unknown or not names:
    raise errors.ConfigError(f'--evals={",".join(names)!r} names {unknown or "nothing"}, which '
                             f'config.evals lacks; choose from {sorted(config.evals.keys())}.')
  picked = ml_collections.ConfigDict(config.to_dict())
  for name in list(picked.evals.keys()):
    if name in names:
      picked.evals[name].enabled = True
    else:
      del picked.evals[name]
  return picked


def restore(config: ml_collections.ConfigDict, workdir: str, step: int | None = None, *,
            random_init: bool = True):
  """(config with the run's tokenizer, method, mesh, train state of checkpoint `step` (default
  latest), random-init encoders for config.eval.num_seeds seeds or None when not
  `random_init`) of the run in `workdir`."""
  validate.check(config, num_devices=jax.device_count(), num_processes=jax.process_count())
  config = tokenizers.prepare(config, workdir, train_if_missing=False)   # the run's own vocabulary
  mesh = sharding.make_mesh(config.mesh)
  # The abstract state must have the saved tree's structure, online probe included.
  parts = train.build(config, mesh, train.sample_batch(config))
  ckpt = checkpoint.Manager(storage.path(workdir) / 'checkpoints',
                            max_to_keep=config.checkpoint.max_to_keep)
  try:
    if ckpt.latest_step() is None:
      raise errors.DataNotFoundError(f'--workdir={workdir!r} has no checkpoints to evaluate.')
    state, _ = ckpt.restore(parts.abstract_state, parts.state_sharding, step=step)
  finally:
    ckpt.close()
  encoders = train.random_init_encoders(config, parts.init) if random_init else None
  return config, parts.method, mesh, state, encoders


def run(config: ml_collections.ConfigDict, workdir: str, *, step: int | None = None,
        output_dir: str | None = None, evals: list[str] | None = None) -> dict[str, float]:
  """Evaluates checkpoint `step` (default latest) of `workdir`; returns results.json's content.

  `evals`: names of config.evals to run (default: the enabled ones).
  """
  if evals is not None:
    config = select(config, evals)
  output_dir = output_dir or workdir
  if jax.process_index() == 0:
    # Before restoring and evaluating, which take minutes: reports.write would only then
    # find that the directory cannot be made.
    storage.make_dir(output_dir, '--output_dir' if output_dir != workdir else '--workdir')
  # Reports replace the run's own when output_dir is its workdir: not while it trains there,
  # nor beside another evaluation writing the same files.
  with workdir_lock.hold(output_dir):
    config, method, mesh, state, random_init = restore(config, workdir, step)
    evaluators = suite.Suite(config, method.embed, mesh, embed_sequence=method.embed_sequence)
    results = train.evaluate(config, evaluators, state, random_init)
    if jax.process_index() == 0:
      # reports.write creates output_dir (local or gs://). The curves come from the run's
      # metrics.jsonl, so plot them from the workdir's.
      reports.write(output_dir, results, evaluators.test_features, metrics_dir=workdir,
                    samples=evaluators.samples,
                    pictures=evaluators.pictures)
      print(reports.table(results))
  return results


def evaluate(workdir: str, evals: Sequence[str] | None = None, *, step: int | None = None,
             output_dir: str | None = None, overrides: Mapping[str, Any] | None = None
             ) -> dict[str, float]:
  """`sslax.evaluate(workdir, evals=None)`: the run's evaluators on its checkpoint `step`
  (default the latest), its random init and the raw-input baseline, as
  `python -m sslax.evaluate` runs them; returns results.json's content.

  `evals`: names of the run's config.evals to run, switched on or not (default: the enabled
  ones); `overrides`: {dotted config key: value}, e.g. {'eval.num_seeds': 3}; reports go to
  `output_dir` (default: `workdir`).
  """
  config = load_config(workdir)
  if overrides:
    cli.check_overrides(config, [f'--config.{k}' for k in overrides])
    config.update_from_flattened_dict(dict(overrides))
  return run(config, workdir, step=step, output_dir=output_dir,
             evals=list(evals) if evals is not None else None)


callable_module.make_callable(__name__, evaluate)


def main(argv: list[str]) -> None:
  cli.start(argv)
  f = flags.FLAGS
  run(f.config, f.workdir, step=f.step, output_dir=f.output_dir, evals=f.evals)


def define_flags(argv: list[str]) -> None:
  """The command's flags, --config among them: the run's config.json, which --workdir names,
  with its overrides checked (the config flag's default needs argv, so it is made here)."""
  flags.DEFINE_string('workdir', None, 'A training run\'s directory (config.json, checkpoints/).')
  flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate; default: the latest.')
  flags.DEFINE_string('output_dir', None, 'Where reports go; default: --workdir.')
  flags.DEFINE_list('evals', None, 'Run only these entries of config.evals (comma separated), '
                    'including ones the config switches off.')
  flags.mark_flags_as_required(['workdir'])
  workdir = cli.flag_value(argv, 'workdir')
  config = ml_collections.ConfigDict()
  if workdir:   # without one, absl reports the missing --workdir
    config = load_config(workdir)
    cli.check_overrides(config, argv)   # before DEFINE_config_dict, which parses them
  config_flags.DEFINE_config_dict(
      'config', config, 'Overrides of the run\'s config.json, e.g. --config.evals.knn.k=10.',
      lock_config=True)


def command() -> None:
  """`python -m sslax.evaluate` and the `sslax-evaluate` script."""
  cli.run(main, define_flags=define_flags)


if __name__ == '__main__':
  command()
