"""Where evaluation time goes: the encoder's forward pass vs feature extraction vs evaluators.

  python experiments/benchmarks/eval_throughput.py \
      [--config configs/simclr_digits.py] [--source 'npz:../shared/data/mnist/mnist_{split}.npz'] \
      [--repeats 20] [--out DIR]

The default SimCLR config (configs/simclr_digits.py, the README's main job) with a 60k / 10k
eval source of 28x28 images (MNIST), on whatever devices JAX sees, a randomly initialised
encoder (the cost of evaluation does not depend on the weights). Measured:
  (a) forward    the jitted `embed` on one device-resident batch of eval.batch_size, repeated;
  (b) features   Suite._features over both splits: records -> host batch -> device -> embed ->
                 the sharded bank (features.py) -> host copy (the splits fit max_host_bytes);
                 split into its parts: record reading (Records.take), host->device
                 (sharding.to_global), embed + write into the bank; and the pre-#16 path that
                 gathered every batch's features to the host, for comparison;
  (c) each evaluator on those features, in memory (L-BFGS probe, scikit-learn k-means) and
      streamed (eval.max_host_bytes=0: kNN on the sharded bank, mini-batch probe, device
      k-means).
Wall seconds and this process's CPU seconds are both printed, and the (b) / (a) ratio both
ways: on a shared machine wall time measures the other jobs too, CPU seconds less so. The load
average before and after is printed with them. Prints a Markdown table; --out also writes JSON.
"""
import argparse
import importlib.util
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from sslax import sharding, train  # noqa: E402
from sslax.data import readers  # noqa: E402
from sslax.evaluators import features as features_lib  # noqa: E402
from sslax.evaluators import suite  # noqa: E402


def load_config(path: str, source: str):
  spec = importlib.util.spec_from_file_location('bench_config', ROOT / path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.eval.source = config.data.source = source
  config.progress_bar = False
  return config


class Clock:
  """Wall and CPU seconds of a block."""

  def __enter__(self):
    self.wall, self.cpu = time.perf_counter(), time.process_time()
    return self

  def __exit__(self, *exc):
    self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def load() -> str:
  return ', '.join(f'{x:.2f}' for x in os.getloadavg())


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/simclr_digits.py')
  parser.add_argument('--source', default='npz:../shared/data/mnist/mnist_{split}.npz')
  parser.add_argument('--repeats', type=int, default=20)
  parser.add_argument('--out', default='')
  args = parser.parse_args()
  kind, _, path = args.source.partition(':')
  if kind == 'npz' and not os.path.isabs(path):
    args.source = f'npz:{ROOT / path}'   # relative to the repository root, like the docs say
  config = load_config(args.config, args.source)
  load_before = load()
  rows, info = [], {'devices': jax.device_count(), 'batch_size': config.eval.batch_size,
                    'load_before': load_before}
  mesh = sharding.make_mesh(config.mesh)
  parts = train.build(config, mesh, train.sample_batch(config))
  encoder = train.random_init_encoders(config, parts.init)[0]
  evaluators = suite.Suite(config, parts.method.embed, mesh)
  e, b = config.eval, config.eval.batch_size

  # ---- Opening the splits: decoding every record into host memory (small splits). ----------
  with Clock() as c:
    records = evaluators._open(config.eval.source, 'config.eval.source')   # pylint: disable=protected-access
  n = {s: len(r) for s, r in records.items()}
  total = sum(n.values())
  rows.append(('open splits (decode records into memory, once)', c.wall, c.cpu, total, None))

  # ---- (a) The encoder's forward pass on a device-resident batch. --------------------------
  test = records[e.test_split]
  batch = next(readers.eval_batches(test, batch_size=b, mesh=mesh))
  embed_fn = evaluators._embed_fn   # pylint: disable=protected-access
  embed_fn(*encoder, batch).block_until_ready()   # compile
  with Clock() as c:
    for _ in range(args.repeats):
      out = embed_fn(*encoder, batch)
    out.block_until_ready()
  forward, forward_cpu = args.repeats * b / c.wall, args.repeats * b / c.cpu
  rows.append((f'(a) forward, device-resident batch of {b}', c.wall, c.cpu, args.repeats * b,
               None))

  # ---- The parts of a feature pass, each alone over the test split. ------------------------
  starts = range(0, len(test), b)
  with Clock() as c:
    locals_ = [test.take(np.minimum(np.arange(s, s + b), len(test) - 1)) for s in starts]
  rows.append(('  record reading (Records.take)', c.wall, c.cpu, len(test), None))
  with Clock() as c:
    globals_ = [sharding.to_global({**x, 'mask': np.ones(b, bool)}, mesh) for x in locals_]
    jax.block_until_ready(globals_)
  rows.append(('  host -> device (sharding.to_global)', c.wall, c.cpu, len(test), None))
  with Clock() as c:
    bank = features_lib.extract(embed_fn, *encoder, iter(globals_), num_examples=len(test),
                                batch_size=b, mesh=mesh)
    bank.feats_NxD.block_until_ready()
  rows.append(('  embed + write into the sharded bank', c.wall, c.cpu, len(test), None))
  with Clock() as c:
    bank.to_host()
  rows.append(('  bank -> host numpy (small splits)', c.wall, c.cpu, len(test), None))
  with Clock() as c:   # before #16: every batch's features gathered to the host, one by one
    feats = [readers.gather(embed_fn(*encoder, g))[readers.gather(g['mask'])]
             for g in readers.eval_batches(test, batch_size=b, mesh=mesh)]
    np.concatenate(feats)
  rows.append(('  old path: gather each batch to host', c.wall, c.cpu, len(test), None))
  del locals_, globals_, bank

  # ---- (b) Feature extraction through the Suite, both splits. ------------------------------
  with Clock() as c:
    host_feats = evaluators._features(config.eval.source, 'config.eval.source', encoder)   # pylint: disable=protected-access
  extraction, extraction_cpu = total / c.wall, total / c.cpu
  rows.append(('(b) features via Suite (train + test)', c.wall, c.cpu, total, None))

  # ---- (c) Evaluators, in memory and streamed. ---------------------------------------------
  names = [k for k in ('knn', 'linear_probe', 'clustering', 'ridge') if k in config.evals]
  for name in names:
    with Clock() as c:
      score = evaluators._score(name, encoder, host_feats, config.seed)   # pylint: disable=protected-access
    rows.append((f'(c) {name}, in memory', c.wall, c.cpu, None, score))
  config.eval.max_host_bytes = 0
  streamed = suite.Suite(config, method.embed, mesh)
  with Clock() as c:
    banks = streamed._features(config.eval.source, 'config.eval.source', encoder)   # pylint: disable=protected-access
  rows.append(('(b) features, streamed (records per batch, bank stays)', c.wall, c.cpu, total,
               None))
  for name in [k for k in names if k != 'ridge']:
    with Clock() as c:
      score = streamed._score(name, encoder, banks, config.seed)   # pylint: disable=protected-access
    rows.append((f'(c) {name}, streamed', c.wall, c.cpu, None, score))

  info.update(load_after=load(), forward_images_per_s=forward,
              extraction_images_per_s=extraction, extraction_over_forward=extraction / forward,
              extraction_over_forward_cpu=extraction_cpu / forward_cpu)
  lines = [f"eval throughput: {args.config} on {args.source} ({n}), {info['devices']} device(s), "
           f"eval.batch_size {b}; load average before {load_before}, after {info['load_after']}",
           '', '| what | wall s | CPU s | images/s | images/CPU-s | result |',
           '| --- | --- | --- | --- | --- | --- |']
  for what, wall, cpu, images, score in rows:
    rate = f'{images / wall:,.0f}' if images else '-'
    per_cpu = f'{images / cpu:,.0f}' if images and cpu > 0 else '-'
    result = ', '.join(f'{k} {v:.4g}' for k, v in score.items()) if score else ''
    lines.append(f'| {what} | {wall:.2f} | {cpu:.2f} | {rate} | {per_cpu} | {result} |')
  lines += ['', f'(b) / (a) = {extraction:,.0f} / {forward:,.0f} images/s = '
                f'{extraction / forward:.0%} of the forward throughput (wall); per CPU-second '
                f'{info["extraction_over_forward_cpu"]:.0%}']
  print('\n'.join(lines))
  if args.out:
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'eval_throughput.json').write_text(json.dumps(
        {'meta': info, 'rows': [dict(zip(('what', 'wall_s', 'cpu_s', 'images', 'result'), r))
                                for r in rows]}, indent=2))
    (out / 'eval_throughput.md').write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
  main()
