"""Config checks that run before anything compiles or any data is built.

Each failure names the config key and the fix, so a typo costs seconds, not a
compile and a data-set build.
"""
import math

import ml_collections

from sslax import errors
from sslax import methods
from sslax import optim
from sslax import sharding
from sslax.data import packing
from sslax.data import sources
from sslax.evaluators import options

REQUIRED = ('method', 'seed', 'total_steps', 'batch_size', 'mesh', 'data.source', 'eval.source')


def _get(config: ml_collections.ConfigDict, dotted: str):
  node = config
  for part in dotted.split('.'):
    if part not in node:
      raise errors.ConfigError(f'config.{dotted} is missing; every config must set it '
                               '(see README, "Config contract").')
    node = node[part]
  return node


def check(config: ml_collections.ConfigDict, *, num_devices: int, num_processes: int) -> None:
  for key in REQUIRED:
    _get(config, key)
  methods.get(config.method)   # raises on an unknown method, listing the known ones
  if config.optim.name not in optim.OPTIMIZERS:
    raise errors.ConfigError(f'config.optim.name={config.optim.name!r} is unknown; '
                             f'choose one of {optim.OPTIMIZERS}.')
  if config.get('nan_policy', 'stop') not in ('stop', 'skip'):
    raise errors.ConfigError(
        f"config.nan_policy={config.nan_policy!r} is unknown; choose 'stop' or 'skip'.")
  accum = int(config.get('grad_accum_steps', 1))
  if accum < 1 or config.batch_size % accum:
    raise errors.ConfigError(f'config.grad_accum_steps={accum} must be >= 1 and divide '
                             f'config.batch_size={config.batch_size}.')
  for section, name in methods.CHUNKED_LOSS.items():
    if section in config and config[section].get('chunked_loss', False) and (
        config.method != section):
      raise errors.ConfigError(f'config.{section}.chunked_loss=True only applies to {name}, but '
                               f'config.method={config.method!r}; remove it or set it to False.')
  if accum > 1 and config.get('model', {}).get('drop_path_rate', 0.0):
    raise errors.ConfigError(
        f'config.model.drop_path_rate={config.model.drop_path_rate} with '
        f'config.grad_accum_steps={accum}: GradCache recomputes each micro-batch, and drop path '
        'would drop different blocks the second time; set one of them off (drop_path_rate=0 '
        'or grad_accum_steps=1).')
  for key in ('total_steps', 'batch_size'):
    if int(_get(config, key)) <= 0:
      raise errors.ConfigError(f'config.{key}={_get(config, key)} must be positive.')
  _check_ranges(config)
  shape = sharding.mesh_shape(config.mesh, num_devices)
  data_parallel = shape[sharding.MESH_AXES.index('data')] * shape[sharding.MESH_AXES.index('fsdp')]
  for key in ('batch_size', 'eval.batch_size'):
    value = _get(config, key)
    if value % data_parallel or value % num_processes:
      raise errors.ConfigError(
          f'config.{key}={value} is not divisible by the {data_parallel} data-parallel devices '
          f'(config.mesh={dict(config.mesh)}) and {num_processes} processes; use a multiple '
          f'of {math.lcm(data_parallel, num_processes)}.')
  if packing.check_pack(config.data) > 1 and config.get('online_probe', {}).get('enabled'):
    raise errors.ConfigError(
        f'config.data.pack_sequences={config.data.pack_sequences} packs several '
        'labelled records into one row, which then has no label for '
        'config.online_probe; set one of them off (pack_sequences=1 or '
        'online_probe.enabled=False).')
  if int(config.data.get('read_threads', 1)) < 1:
    raise errors.ConfigError(f'config.data.read_threads={config.data.read_threads} must be >= 1 '
                             '(threads per decoding process; 1: one batch at a time).')
  sources.check(config.data.source, key='data.source')
  sources.check(config.eval.source, key='eval.source')
  options.check(config)   # unknown evaluator types and options, before anything compiles


# (key, test, what it must be) of numbers with a range; a value outside trains without a word
# (a negative learning rate ascends the loss) or fails mid-run (log_every=0 divides by zero
# at the first step). optim.warmup_steps above total_steps is not here: the schedule caps it
# (optim.schedule), which smoke variants of long recipes rely on.
_RANGES = (
    ('optim.learning_rate', lambda v: v > 0, '> 0 (e.g. 1e-3 for adamw)'),
    ('optim.weight_decay', lambda v: v >= 0, '>= 0 (0: none)'),
    ('optim.warmup_steps', lambda v: v >= 0, '>= 0 (0: no warmup)'),
    ('optim.end_lr_fraction', lambda v: 0 <= v <= 1, 'in [0, 1] (of the peak rate)'),
    ('optim.grad_clip_norm', lambda v: v >= 0, '>= 0 (0: no clipping)'),
    ('optim.momentum', lambda v: 0 <= v < 1, 'in [0, 1) (0.9 is usual)'),
    ('optim.b1', lambda v: 0 <= v < 1, 'in [0, 1) (0.9 is usual)'),
    ('optim.b2', lambda v: 0 <= v < 1, 'in [0, 1) (0.999 is usual)'),
    ('log_every', lambda v: v >= 1, '>= 1 (steps between metric rows)'),
    ('checkpoint.every_steps', lambda v: v >= 1, '>= 1 (steps between checkpoints)'),
    ('checkpoint.max_to_keep', lambda v: v >= 1, '>= 1 (newest checkpoints kept)'),
    ('eval.batch_size', lambda v: v >= 1, '>= 1 (examples per evaluation batch)'),
    ('online_probe.learning_rate', lambda v: v > 0, '> 0'),
)


def _check_ranges(config: ml_collections.ConfigDict) -> None:
  """The ranges of _RANGES, and every temperature of the method's section and of kNN
  evaluators: a softmax divides by it, so 0 gives NaN and a negative one flips the loss."""
  checks = [(key, _value(config, key), test, want) for key, test, want in _RANGES]
  section = config.get(config.method)
  if isinstance(section, ml_collections.ConfigDict):
    checks += [(f'{config.method}.{k}', v, lambda v: v > 0, '> 0 (a softmax divides by it)')
               for k, v in section.items() if k.endswith('temperature')]
  checks += [(f'evals.{n}.temperature', ev.temperature, lambda v: v > 0,
              '> 0 (a softmax divides by it)')
             for n, ev in config.evals.items() if 'temperature' in ev]
  for key, value, test, want in checks:
    if value is not None and not test(value):
      raise errors.ConfigError(f'config.{key}={value} must be {want}; set --config.{key} '
                               'to such a value.')


def _value(config: ml_collections.ConfigDict, dotted: str):
  """The value at `dotted`, None when the config lacks it (old config.json files)."""
  node = config
  for part in dotted.split('.'):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return None
    node = node[part]
  return node
