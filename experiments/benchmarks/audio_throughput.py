"""Audio seconds processed per second of training, for each audio method, on this machine.

  python experiments/benchmarks/audio_throughput.py [--methods apc,cpc,masked_audio,clip_contrast] \
      [--steps 10] [--batch_size 0]

For each method, builds its config (configs/<method>_audio.py, or configs/masked_audio.py),
compiles the trainer's own train step on random clips of the config's length (no data set
needed), times `--steps` steps after one warm-up, and prints one JSON line: step time and
audio throughput, counted as seconds of audio the step's loss reads (batch x crop length;
clip_contrast reads two crops per clip). FLOPs come from XLA's cost analysis.
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import jax
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_lib  # noqa: E402
from sslax import methods  # noqa: E402
from sslax import optim  # noqa: E402
from sslax import train  # noqa: E402

CONFIGS = {'apc': 'apc_audio', 'cpc': 'cpc_audio', 'masked_audio': 'masked_audio',
           'clip_contrast': 'clip_contrast_audio'}


def load_config(name: str, arg: str):
  path = os.path.join(ROOT, 'configs', f'{CONFIGS[name]}.py')
  spec = importlib.util.spec_from_file_location(f'bench_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def measure(name: str, steps: int, batch_size: int, arg: str) -> dict:
  config = load_config(name, arg)
  if batch_size:
    config.batch_size = batch_size
  b = config.batch_size
  samples = round(config.data.sample_rate * config.data.clip_seconds)
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  batch = {'audio': 0.1 * jax.random.normal(jax.random.PRNGKey(0), (b, samples)),
           'audio_len': jnp.full((b,), samples, jnp.int32),
           'label': jnp.zeros((b,), jnp.int32)}
  sample = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)
  state = jax.jit(train.make_init(method, tx, sample, config.seed))()
  step = jax.jit(train.make_train_step(method, tx, lr), donate_argnums=0)
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  state, metrics = compiled(state, batch)   # warm-up
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - start) / steps
  views = 2 if config.method == 'clip_contrast' else 1
  audio_s = b * views * config.audio.crop_seconds
  return {'method': name, 'batch_size': b, 'crop_seconds': config.audio.crop_seconds,
          'step_seconds': round(step_s, 4), 'compile_seconds': round(compile_s, 1),
          'audio_seconds_per_second': round(audio_s / step_s, 1),
          'gflop_per_step': round(bench_lib.cost_flops(compiled) / 1e9, 3),
          'device': str(jax.devices()[0].platform)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--methods', default=','.join(CONFIGS))
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--batch_size', type=int, default=0, help="0: the config's")
  parser.add_argument('--arg', default='', help="config argument, e.g. 'smoke'")
  args = parser.parse_args()
  for name in args.methods.split(','):
    print(json.dumps(measure(name, args.steps, args.batch_size, args.arg)), flush=True)


if __name__ == '__main__':
  main()
