"""Input-side cost per workload: the train step fed by the real input pipeline vs the same step
on a device-resident batch, and (image workloads) on-device augmentation throughput.

  python experiments/benchmarks/headroom.py [--workloads simclr_resnet18,...] \
      [--batch_size 0] [--steps 8] [--rounds 3] [--data_dir /tmp/tfds_perf] [--out FILE]

For each workload of workloads.py, on its config's own real data (CIFAR-10 JPEG folder for the
image workloads, the stdlib `email` text for BERT-small, FSDD WAVs resampled to 16 kHz for
CPC; built once into `--data_dir`, not timed):
  synthetic  `--steps` train steps on one batch already on the device (the first real
             batch, so both loops run the same shapes and the same compiled step);
  real       `--steps` train steps, each batch taken from train_batches.make_train, as train.run
             does: grain reads and (for folders of WAVs) resamples on the host while the
             previous step runs, then the batch goes onto the mesh.
Neither loop blocks between steps (train.run doesn't): each round is dispatched in full, then
waited on. Rounds alternate, so other load on a shared CPU hits both alike; the medians are
reported, and `real_speed` = synthetic / real step time (1.0: the input side costs nothing;
the goal is >= 0.95). On a CPU-only machine the host pipeline shares the cores with the XLA
step, so this is the hard case; on an accelerator the step runs elsewhere.

Image workloads also report on-device augmentation (the method's views of `--aug_batch`
images, jitted alone) against the step's examples/s: the goal is >= 10x.
"""
import argparse
import json
import os
import statistics
import sys
import time

import jax

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)
import workloads  # noqa: E402
from sslax import methods  # noqa: E402
from sslax import optim  # noqa: E402
from sslax import sharding  # noqa: E402
from sslax import train  # noqa: E402
from sslax.augment import image as image_aug  # noqa: E402
from sslax.data import train_batches  # noqa: E402


def augment_per_s(name: str, aug_batch: int, steps: int) -> float:
  """Images/s of SimCLR-style two-view augmentation at the workload's image size, on device."""
  config = workloads.config_for(name, aug_batch)
  images = workloads.synthetic_batch(name, config)['image']
  size = config.data.image_size
  aug = jax.jit(lambda key, x: image_aug.to_model_range(
      jax.numpy.concatenate(image_aug.simclr_views(key, x, num_views=2, out_size=size,
                                                   **config.augment), 0)))
  key = jax.random.PRNGKey(0)
  aug(key, images).block_until_ready()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    aug(key, images).block_until_ready()
    times.append(time.perf_counter() - start)
  return aug_batch / statistics.median(times)


def real_vs_synthetic(name: str, batch_size: int, steps: int, rounds: int,
                      data_dir: str, tiny: bool = False) -> dict:
  """Median step seconds on a resident batch and on the real pipeline's batches."""
  config = workloads.config_for(name, batch_size, tiny=tiny)
  config.data.data_dir = data_dir
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  mesh = sharding.make_mesh(config.mesh)
  real = train_batches.make_train(config, mesh, crops=methods.train_crops(config))
  first = next(real)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), first)
  state = jax.jit(train.make_init(method, tx, abstract, config.seed))()
  step = jax.jit(train.make_train_step(method, tx, lr), donate_argnums=0)
  holder = [step(state, first)[0]]
  jax.block_until_ready(holder[0])

  def run(get_batch) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      holder[0], metrics = step(holder[0], get_batch())
    jax.block_until_ready((holder[0], metrics))
    return (time.perf_counter() - start) / steps

  run(lambda: next(real))   # fills grain's prefetch buffers before anything is timed
  synthetic_s, real_s = [], []
  for _ in range(rounds):
    synthetic_s.append(run(lambda: first))
    real_s.append(run(lambda: next(real)))
  synthetic, real_t = statistics.median(synthetic_s), statistics.median(real_s)
  return {'workload': name, 'batch': config.batch_size, 'source': config.data.source,
          'synthetic_step_s': round(synthetic, 6), 'real_step_s': round(real_t, 6),
          'real_speed': round(synthetic / real_t, 3),
          'rounds_synthetic_s': [round(t, 4) for t in synthetic_s],
          'rounds_real_s': [round(t, 4) for t in real_s]}


def table(rows: list[dict]) -> str:
  lines = ['| workload | batch | real data | synthetic step ms | real step ms | real speed '
           '(goal >= 0.95) | augmentation / step examples/s |', '|' + '---|' * 7]
  for r in rows:
    aug = f'{r["augment_over_step"]:.0f}x' if 'augment_over_step' in r else '-'
    lines.append(f'| {r["workload"]} | {r["batch"]} | `{r["source"]}` | '
                 f'{r["synthetic_step_s"] * 1e3:.0f} | {r["real_step_s"] * 1e3:.0f} | '
                 f'{r["real_speed"]:.3f} | {aug} |')
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workloads', default=','.join(workloads.NAMES))
  parser.add_argument('--batch_size', type=int, default=0, help="0: each workload's own")
  parser.add_argument('--aug_batch', type=int, default=256)
  parser.add_argument('--steps', type=int, default=8, help='train steps per timed round')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--data_dir', default='/tmp/tfds_perf')
  parser.add_argument('--out', default='', help='also write the rows here as JSON')
  parser.add_argument('--tiny', action='store_true', help='tiny models: the harness test')
  args = parser.parse_args()
  rows = []
  for name in args.workloads.split(','):
    batch = args.batch_size or workloads.BATCH[name][0]
    row = real_vs_synthetic(name, batch, args.steps, args.rounds, args.data_dir, args.tiny)
    if name in workloads.IMAGE:
      aug = augment_per_s(name, args.aug_batch, args.steps)
      row.update(augment_images_per_s=round(aug, 1),
                 augment_over_step=round(aug / (batch / row['synthetic_step_s']), 1))
    print(json.dumps(row), flush=True)
    rows.append(row)
  print(table(rows))
  if args.out:
    with open(args.out, 'w') as f:
      json.dump({'rows': rows, 'argv': sys.argv[1:], 'devices': str(jax.devices())}, f,
                indent=1)


if __name__ == '__main__':
  main()
