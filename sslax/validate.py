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
from sslax.data import pipeline
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
  shape = sharding.mesh_shape(config.mesh, num_devices)
  data_parallel = shape[sharding.MESH_AXES.index('data')] * shape[sharding.MESH_AXES.index('fsdp')]
  for key in ('batch_size', 'eval.batch_size'):
    value = _get(config, key)
    if value % data_parallel or value % num_processes:
      raise errors.ConfigError(
          f'config.{key}={value} is not divisible by the {data_parallel} data-parallel devices '
          f'(config.mesh={dict(config.mesh)}) and {num_processes} processes; use a multiple '
          f'of {math.lcm(data_parallel, num_processes)}.')
  if pipeline.check_pack(config.data) > 1 and config.get('online_probe', {}).get('enabled'):
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
