"""Throughput of one MLM (or LM) train step: tokens/s and FLOP/s from XLA's cost analysis.

  python experiments/benchmarks/mlm_step.py [--config configs/mlm_text.py] [--steps 10] \
      [--batch_size 64] [--seq_len 128]

Builds the config's method and optimiser, compiles the trainer's own train step on random
tokens (no data set needed), reads the step's FLOPs from
`jax.jit(...).lower(...).compile().cost_analysis()`, and times `--steps` steps after one
warm-up. Prints one JSON line.
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_lib  # noqa: E402
from sslax import methods  # noqa: E402
from sslax import optim  # noqa: E402
from sslax import train  # noqa: E402
from sslax.data import tokenizers  # noqa: E402


def load_config(path: str, arg: str):
  spec = importlib.util.spec_from_file_location('bench_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/mlm_text.py')
  parser.add_argument('--arg', default='')
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--batch_size', type=int, default=0, help='0: the config\'s')
  parser.add_argument('--seq_len', type=int, default=0, help='0: the config\'s')
  args = parser.parse_args()
  config = load_config(args.config, args.arg)
  if args.batch_size:
    config.batch_size = args.batch_size
  if args.seq_len:
    config.data.seq_len = args.seq_len
  b, l = config.batch_size, config.data.seq_len
  tok = tokenizers.make(config.data)
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  batch = {'tokens': jax.random.randint(jax.random.PRNGKey(0), (b, l), tok.NUM_SPECIAL,
                                        tok.vocab_size)}
  sample = {'tokens': jax.ShapeDtypeStruct((b, l), jnp.int32)}
  state = jax.jit(train.make_init(method, tx, sample, config.seed))()
  step = jax.jit(train.make_train_step(method, tx, lr), donate_argnums=0)
  compiled = step.lower(state, batch).compile()
  flops = bench_lib.cost_flops(compiled)
  state, m = compiled(state, batch)
  jax.block_until_ready(m['loss'])
  start = time.perf_counter()
  for _ in range(args.steps):
    state, m = compiled(state, batch)
  jax.block_until_ready(m['loss'])
  seconds = (time.perf_counter() - start) / args.steps
  print(json.dumps({
      'method': config.method, 'device': jax.devices()[0].device_kind,
      'num_devices': jax.device_count(), 'batch_size': b, 'seq_len': l,
      'params': int(sum(x.size for x in jax.tree.leaves(state.params))),
      'step_seconds': round(seconds, 4), 'tokens_per_sec': round(b * l / seconds, 1),
      'flops_per_step': flops, 'flops_per_sec': flops / seconds}))


if __name__ == '__main__':
  main()
