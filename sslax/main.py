"""Command line: `python -m sslax.main --config configs/NAME.py[:ARG] --workdir DIR`; a packaged
config also by its name alone, `--config NAME[:ARG]` (sslax.configs.list_configs()).

Rerunning the same command on the same workdir resumes from its last checkpoint;
`--config.key=value` overrides any config value. A config or data error prints one line and
exits 2 (`--verbose` or SSLAX_VERBOSE=1 adds the traceback; see sslax/cli.py).
"""
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from sslax import cli

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. configs/simclr_digits.py or '
    'configs/simclr_digits.py:smoke, or a packaged config by name, e.g. simclr_digits:smoke.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and results.')
cli.define_distributed_flags()
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  cli.start(argv)
  cli.fast_compile(_CONFIG.value)
  cli.initialize_distributed()   # multi-process runs: before any other JAX call
  logging.info('JAX %s: %d processes, %d devices (%s)', jax.__version__, jax.process_count(),
               jax.device_count(), jax.devices()[0].platform)
  # Deferred, not to dodge a cycle (nothing imports this module) but for start-up time: a
  # config error is reported after validate's imports (3.4 s from the command's start, idle;
  # 4.7 s when it came after the trainer's), the trainer's (evaluators, TFDS, matplotlib;
  # ~2 s more) come after it, and `--help` or a flag error needs neither.
  from sslax import validate  # deferred: start-up time
  validate.check(_CONFIG.value, num_devices=jax.device_count(),
                 num_processes=jax.process_count())
  from sslax import train  # deferred: start-up time
  train.run(_CONFIG.value, _WORKDIR.value)


def command() -> None:
  """`python -m sslax.main` and the `sslax-train` script."""
  cli.run(main)


if __name__ == '__main__':
  command()
