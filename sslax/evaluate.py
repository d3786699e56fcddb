"""Evaluators on a saved checkpoint, for any method:

  python -m sslax.evaluate --workdir DIR [--step N] [--evals knn,fine_tune] [--config.evals.knn.k=10 ...]

Reads `DIR/config.json` (the run's resolved config), restores the checkpoint of step N
(default: the latest) into the current devices, runs every enabled `config.evals` evaluator (or
only those `--evals` names, switched on or not) on it and on the random-init encoder, and writes results.json, results.md and the PNG plots (see
sslax/reports.py) to `--output_dir` (default: DIR). Any config value can be overridden like
in sslax.main, e.g. `--config.eval.num_seeds=3` or `--config.evals.linear_probe.steps=500`.
"""
import json
from typing import Any

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags

from sslax import checkpoint
from sslax import config_base
from sslax import cli
from sslax import errors
from sslax import methods
from sslax import optim
from sslax import reports
from sslax import sharding
from sslax import storage
from sslax import train
from sslax import validate
from sslax import workdir_lock
from sslax.data import tokenizers
from sslax.evaluators import online_probe
from sslax.evaluators import options
from sslax.evaluators import suite

def _tuples(node: Any) -> Any:
  """JSON turns the config's tuples into lists; modules and probes expect tuples back."""
  if isinstance(node, dict):
    return {k: _tuples(v) for k, v in node.items()}
  if isinstance(node, list):
    return tuple(_tuples(v) for v in node)
  return node


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run wrote to `workdir/config.json`."""
  root = storage.path(workdir)
  if root.exists() and not root.is_dir():
    raise errors.ConfigError(f'--workdir={workdir!r} is a file; pass the directory of a '
                             'sslax.main run (the one holding config.json and checkpoints/).')
  path = root / 'config.json'
  if not path.exists():
    raise errors.DataNotFoundError(
        f'--workdir={workdir!r} has no config.json; pass the directory of a sslax.main run.')
  config = _tuples(json.loads(path.read_text()))
  # Optional evaluator keys the run did not set get their defaults, so that the command line
  # can override them (e.g. --config.evals.fine_tune.warmup_steps=60).
  # Eval keys added since the run (e.g. eval.raw_input) get their defaults likewise.
  defaults = config_base.base().eval.to_dict()
  config.setdefault('eval', {}).update(
      {k: v for k, v in defaults.items() if k not in config.get('eval', {})})
  for ev in config.get('evals', {}).values():
    if isinstance(ev, dict) and ev.get('type') in options.OPTIONS:
      ev.update({k: v for k, v in options.optional(ev['type']).items() if k not in ev})
  return ml_collections.ConfigDict(config)


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
  method = methods.get(config.method)(config)
  tx, _ = optim.make(config)
  # The abstract state must have the saved tree's structure, online probe included.
  sample = train.sample_batch(config)
  init_fn = train.make_init(method, tx, sample, config.seed, online_probe.make(config, method))
  abstract = jax.eval_shape(init_fn)
  shardings = train.state_shardings(config, method, sample, abstract, mesh)
  ckpt = checkpoint.Manager(storage.path(workdir) / 'checkpoints',
                            max_to_keep=config.checkpoint.max_to_keep)
  try:
    if ckpt.latest_step() is None:
      raise errors.DataNotFoundError(f'--workdir={workdir!r} has no checkpoints to evaluate.')
    state, _ = ckpt.restore(abstract, shardings, step=step)
  finally:
    ckpt.close()
  encoders = train.random_init_encoders(config, method, tx, mesh) if random_init else None
  return config, method, mesh, state, encoders


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


def _workdir_from_argv(argv: list[str]) -> str | None:
  """--workdir's value, read before absl parses flags: the config flag's defaults need it."""
  for i, arg in enumerate(argv):
    if arg.startswith('--workdir='):
      return arg.split('=', 1)[1]
    if arg == '--workdir' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  run(f.config, f.workdir, step=f.step, output_dir=f.output_dir, evals=f.evals)


def define_config_flag(argv: list[str]) -> None:
  """--config: the run's config.json, which --workdir names, with its overrides checked."""
  workdir = _workdir_from_argv(argv)
  config = ml_collections.ConfigDict()
  if workdir:   # without one, absl reports the missing --workdir
    config = load_config(workdir)
    cli.check_overrides(config, argv)   # before DEFINE_config_dict, which parses them
  config_flags.DEFINE_config_dict(
      'config', config, 'Overrides of the run\'s config.json, e.g. --config.evals.knn.k=10.',
      lock_config=True)


if __name__ == '__main__':
  # Flags only when run as a command: sslax.load imports this module (load_config) from
  # sslax.embed / sslax.export, which have a --workdir of their own.
  flags.DEFINE_string('workdir', None, 'A training run\'s directory (config.json, checkpoints/).')
  flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate; default: the latest.')
  flags.DEFINE_string('output_dir', None, 'Where reports go; default: --workdir.')
  flags.DEFINE_list('evals', None, 'Run only these entries of config.evals (comma separated), '
                    'including ones the config switches off.')
  flags.mark_flags_as_required(['workdir'])
  cli.run(main, define_flags=define_config_flag)
