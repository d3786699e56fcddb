"""MAE: the encoder on visible patches only vs the same model encoding all patches.

  python -m experiments.benchmarks.mae_visible_vs_all [--batch_size=128] [--iters=10]

Times one jitted training step (augment, mask, forward, backward, AdamW) of
`configs/mae_images.py` at 75% masking, with `mae.encoder_sees_all` False (the encoder runs on
the 16 visible of 64 patches, He et al. 2021) and True (it runs on all 64 tokens, masked ones
zeroed: the cost of encoding with [M] tokens). The MAE paper reports >= 2.8x for ViT-L;
the ratio is smaller for a tiny ViT, whose decoder and augmentation weigh relatively more.
The two variants are timed alternately, so load from other processes hits both alike.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from sslax import methods
from sslax import optim
from sslax import train
from sslax.configs import mae_images


def make_step(encoder_sees_all: bool, batch_size: int):
  config = mae_images.get_config()
  config.batch_size = batch_size
  config.mae.encoder_sees_all = encoder_sees_all
  method = methods.get('mae')(config)
  tx, lr = optim.make(config)
  batch = {'image': jnp.asarray(np.random.default_rng(0).integers(0, 256, (batch_size, 32, 32, 3)),
                                jnp.uint8),
           'label': jnp.zeros((batch_size,), jnp.int32)}
  abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch.items()}
  state = jax.jit(train.make_init(method, tx, abstract, config.seed))()
  step = jax.jit(train.make_train_step(method, tx, lr), donate_argnums=0)
  state, _ = step(state, batch)  # compile
  jax.block_until_ready(state)
  return step, state, batch


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--iters', type=int, default=10)
  args = parser.parse_args()
  variants = {name: list(make_step(all_, args.batch_size))
              for name, all_ in (('visible', False), ('all', True))}
  times = {name: [] for name in variants}
  for _ in range(args.iters):
    for name, v in variants.items():
      step, state, batch = v
      start = time.perf_counter()
      state, _ = step(state, batch)
      jax.block_until_ready(state)
      times[name].append(time.perf_counter() - start)
      v[1] = state
  median = {name: float(np.median(t)) for name, t in times.items()}
  print(f'device: {jax.devices()[0].platform} x{jax.device_count()}, batch {args.batch_size}, '
        f'{args.iters} steps each (median)')
  for name, t in median.items():
    print(f'  encoder on {name:7s} patches: {t * 1e3:8.1f} ms/step')
  print(f'  speed-up (all / visible): {median["all"] / median["visible"]:.2f}x')


if __name__ == '__main__':
  main()
