"""Input pipeline headroom for SimCLR ResNet-18 on CIFAR-10 (../shared/data/cifar10).

  python experiments/benchmarks/headroom.py [--batch_size 32] [--steps 10] \
      [--data_dir /tmp/tfds_perf]

Two numbers the performance issue asks for:
  1. on-device augmentation throughput (SimCLR's two views: random resized crop, flip, colour
     jitter, grayscale; jitted alone on a batch of `--aug_batch` images) against the train
     step's examples/s; the target is >= 10x, so augmentation is never the bottleneck;
  2. the train step fed by the real input pipeline (pipeline.make_train: grain over the
     CIFAR-10 records, batched and put on the mesh, as train.run does) against the same step
     on one fixed synthetic batch; the target is real / synthetic <= 1.05.
Both step loops block on every step (what a step costs end to end). Prints one JSON line.
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
import bench_lib  # noqa: E402
import workloads  # noqa: E402
from sslax import methods  # noqa: E402
from sslax import optim  # noqa: E402
from sslax import sharding  # noqa: E402
from sslax import train  # noqa: E402
from sslax.augment import image as image_aug  # noqa: E402
from sslax.data import pipeline  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--aug_batch', type=int, default=256)
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--data_dir', default='/tmp/tfds_perf')
  parser.add_argument('--tiny', action='store_true', help='tiny ResNet (a quick check)')
  args = parser.parse_args()
  config = workloads.config_for('simclr_resnet18', args.batch_size, tiny=args.tiny)
  config.data.data_dir = args.data_dir

  # 1. Augmentation alone, on device.
  images = workloads.synthetic_batch('simclr_resnet18',
                                     workloads.config_for('simclr_resnet18', args.aug_batch))
  aug = jax.jit(lambda key, x: image_aug.to_model_range(
      jax.numpy.concatenate(image_aug.simclr_views(key, x, num_views=2, out_size=32,
                                                   **config.augment), 0)))
  key = jax.random.PRNGKey(0)
  aug_times = bench_lib.time_calls(lambda: aug(key, images['image']).block_until_ready(), 1,
                                   args.steps)
  aug_per_s = args.aug_batch / statistics.median(aug_times)

  # 2. The real train step, on synthetic then on real batches, each step blocked on.
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  mesh = sharding.make_mesh(config.mesh)
  real = pipeline.make_train(config, mesh)
  first = next(real)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), first)
  state = jax.jit(train.make_init(method, tx, abstract, config.seed))()
  step = jax.jit(train.make_train_step(method, tx, lr), donate_argnums=0)
  holder = [step(state, first)[0]]
  jax.block_until_ready(holder[0])

  def run(get_batch):
    def one():
      holder[0], m = step(holder[0], get_batch())
      jax.block_until_ready(m)
    return statistics.median(bench_lib.time_calls(one, 1, args.steps))

  # Alternate the two, so load from other processes on a shared CPU hits both alike.
  synthetic_s, real_s = [], []
  for _ in range(2):
    synthetic_s.append(run(lambda: first))
    real_s.append(run(lambda: next(real)))
  synthetic, real_t = statistics.median(synthetic_s), statistics.median(real_s)
  step_per_s = args.batch_size / synthetic
  print(json.dumps({
      'workload': 'simclr_resnet18', 'batch': args.batch_size, 'tiny': args.tiny,
      'augment_images_per_s': round(aug_per_s, 1), 'step_examples_per_s': round(step_per_s, 1),
      'augment_over_step': round(aug_per_s / step_per_s, 1),
      'synthetic_step_s': round(synthetic, 4), 'real_step_s': round(real_t, 4),
      'real_over_synthetic': round(real_t / synthetic, 3)}))


if __name__ == '__main__':
  main()
