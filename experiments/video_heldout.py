"""Held-out next-frame MSE of a trained next_frame_video workdir, against copying the last frame.

  python experiments/video_heldout.py --workdir /tmp/sslax-video [--split test]

Reads the workdir's config.json and latest checkpoint, makes Moving-MNIST clips of every digit
of the held-out split (fixed keys, so numbers are reproducible), and prints the model's
next-frame MSE next to the copy-last-frame baseline's, both averaged over all clips.
"""
import argparse
import json
import os
import sys

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sslax import evaluate  # noqa: E402
from sslax.data import readers  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--split', default='test')
  args = parser.parse_args()
  config = evaluate.load_config(args.workdir)
  if config.method != 'next_frame_video':
    raise SystemExit(f'{args.workdir}: method {config.method!r} is not next_frame_video.')
  config, method, mesh, state, _ = evaluate.restore(config, args.workdir, random_init=False)

  d = config.data
  held_out = readers.Records(d.source, args.split, data_dir=d.data_dir or None, in_memory=True)

  @jax.jit
  def metrics(params, batch, key):
    value, (_, m) = method.loss(params, state.model_state, state.extra, batch, key)
    return value, m['copy_last_mse']
  key = jax.random.PRNGKey(1234)
  totals, weight = [0.0, 0.0], 0.0
  for i, batch in enumerate(readers.eval_batches(held_out, batch_size=config.batch_size,
                                                 mesh=mesh)):
    # Padded rows of the last batch repeat record 0; count each batch by its real rows.
    model_mse, copy_mse = jax.device_get(metrics(state.params, {'image': batch['image']},
                                                 jax.random.fold_in(key, i)))
    rows = float(readers.gather(batch['mask']).sum())
    totals = [totals[0] + float(model_mse) * rows, totals[1] + float(copy_mse) * rows]
    weight += rows
  print(json.dumps({'step': int(state.step), 'split': args.split, 'clips': len(held_out),
                    'next_frame_mse': totals[0] / weight,
                    'copy_last_frame_mse': totals[1] / weight}, indent=2))


if __name__ == '__main__':
  main()
