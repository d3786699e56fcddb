"""Where each workload's step time goes, in sslax and in its PyTorch peer, phase by phase.

  python experiments/benchmarks/breakdown.py [--workloads simclr_resnet18,...] [--quick] \
      [--repeats 5] [--no_peers] [--conv_layers] [--conv_impl xla] [--out DIR]

Phases, each compiled (sslax) or run (peer) alone on the same synthetic batch:
  forward   the loss: sslax's `method.loss` (on-device augmentation / masking / log-mel
            included), the peer's loss function (masking and log-mel included; images come
            already augmented, as from a DataLoader);
  grad      forward + backward (`jax.value_and_grad` of the loss; `loss.backward()`);
  step      the whole train step (+ gradient norm, AdamW, for sslax also the logged metrics);
  augment   (image workloads, sslax only) the on-device augmentation alone.
So backward = grad - forward and optimiser = step - grad, and the ratio per phase says which
part of the step makes sslax slower or faster than its peer. --conv_layers adds ResNet-18's
3x3 convolutions one by one (forward + input and weight gradients, on the SimCLR step's
2 x batch images): XLA's against torch's. Writes <out>/breakdown.{json,md}.
"""
import argparse
import json
import os
import statistics
import sys

import jax
import jax.numpy as jnp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)
import bench_lib  # noqa: E402
import conv_impl  # noqa: E402
import run as bench_run  # noqa: E402
import workloads  # noqa: E402
from sslax.augment import image as image_aug  # noqa: E402

PHASES = ('augment', 'forward', 'grad', 'step')


def sslax_phases(name: str, batch_size: int, warmup: int, repeats: int,
                 tiny: bool = False, conv_impl_name: str = 'auto') -> dict[str, float]:
  """Median seconds of each phase of sslax's step for workload `name`."""
  built = workloads.build(name, batch_size, tiny=tiny, conv_impl=conv_impl_name)
  config, batch, state = built.config, built.batch, built.state
  key = jax.random.PRNGKey(1)

  def loss(params):
    return built.method.loss(params, state.model_state, state.extra, batch, key)

  fns = {'forward': jax.jit(lambda p: loss(p)[0]),
         'grad': jax.jit(jax.value_and_grad(lambda p: loss(p)[0]))}
  if name in ('simclr_resnet18', 'mae_vits4'):
    views = 2 if name == 'simclr_resnet18' else 1
    fns['augment'] = jax.jit(lambda x: image_aug.to_model_range(jnp.concatenate(
        image_aug.simclr_views(key, x, num_views=views, out_size=config.data.image_size,
                               **config.augment), 0)))
  out = {}
  for phase, fn in fns.items():
    arg = batch['image'] if phase == 'augment' else state.params
    out[phase] = statistics.median(bench_lib.time_calls(
        lambda f=fn, a=arg: jax.block_until_ready(f(a)), warmup, repeats))
  out['step'] = bench_lib.bench_step(built.train_step(), state, batch,
                                     warmup=warmup, repeats=repeats)['step_s']
  return out


def conv_rows(batch_size: int, warmup: int, repeats: int, python: str | None,
              threads: int) -> list[dict]:
  """Per 3x3 layer of ResNet-18: forward + both gradients with each conv_impl.IMPLS and torch, s."""
  images = 2 * batch_size   # SimCLR's two views
  mine = conv_impl.round_robin(conv_impl.layer_fns(images), repeats)
  peer = {}
  if python:
    spec = ';'.join(','.join(map(str, layer)) for layer in conv_impl.LAYERS)
    peer = bench_run.peer_row(python, 'simclr_resnet18', images, warmup, repeats, threads,
                              False, ('--conv_layers', spec))
  rows = []
  for layer in conv_impl.LAYERS:
    row = {'layer': '{}x{} {}->{} /{}'.format(layer[0], layer[0], *layer[1:]),
           **{f'{impl}_s': mine[(*layer, impl)] for impl in conv_impl.IMPLS}}
    if peer:
      row['peer_s'] = peer[','.join(map(str, layer))]
    rows.append(row)
  return rows


def markdown(rows: list[dict], convs: list[dict]) -> str:
  lines = ['| workload | batch | phase | sslax ms | peer ms | sslax/peer |', '|---|---|---|---|---|---|']
  for row in rows:
    for phase in PHASES + ('backward', 'optimiser'):
      mine, peer = row['sslax'].get(phase), row.get('peer', {}).get(phase)
      if mine is None:
        continue
      ratio = f'{mine / peer:.2f}' if peer else '-'
      peer_ms = f'{peer * 1e3:.0f}' if peer else '-'
      lines.append(f'| {row["workload"]} | {row["batch"]} | {phase} | {mine * 1e3:.0f} | '
                   f'{peer_ms} | {ratio} |')
  if convs:
    impls = conv_impl.IMPLS
    lines += ['', '| ResNet-18 3x3 conv, fwd + both grads, ms (/ peer) | '
              + ' | '.join(f'conv_impl={i}' for i in impls) + ' | peer (torch) |',
              '|---|' + '---|' * (len(impls) + 1)]
    for c in convs:
      peer = c.get('peer_s')
      cells = [f'{c[f"{i}_s"] * 1e3:.1f}' + (f' ({c[f"{i}_s"] / peer:.2f})' if peer else '')
               for i in impls]
      lines.append(f'| {c["layer"]} | ' + ' | '.join(cells) +
                   f' | {f"{peer * 1e3:.1f}" if peer else "-"} |')
  return '\n'.join(lines)


def with_differences(phases: dict[str, float]) -> dict[str, float]:
  out = dict(phases)
  if 'grad' in out and 'forward' in out:
    out['backward'] = out['grad'] - out['forward']
  if 'step' in out and 'grad' in out:
    out['optimiser'] = out['step'] - out['grad']
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  # The workloads with a home-made peer (its --phases); run.py covers the library peers.
  parser.add_argument('--workloads', default=','.join(bench_run.HOMEMADE))
  parser.add_argument('--quick', action='store_true', help="run.py --quick's batch sizes")
  parser.add_argument('--tiny', action='store_true', help='tiny models: the harness test')
  parser.add_argument('--warmup', type=int, default=1)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--no_peers', action='store_true')
  parser.add_argument('--peer_python', default='',
                      help="a python with the peers' packages (default: run.py's .peer-venv)")
  parser.add_argument('--conv_layers', action='store_true')
  parser.add_argument('--conv_impl', default='auto', help="the ResNet's config.model.conv_impl")
  parser.add_argument('--out', default=os.path.join(HERE, 'results'))
  args = parser.parse_args()
  threads = os.cpu_count() or 1
  python = None if args.no_peers else bench_run.peer_python(args.peer_python)
  rows = []
  for name in args.workloads.split(','):
    b = 4 if args.tiny else workloads.BATCH[name][1 if args.quick else 0]
    row = {'workload': name, 'batch': b,
           'sslax': with_differences(sslax_phases(name, b, args.warmup, args.repeats,
                                                  args.tiny, args.conv_impl))}
    if python:
      peer = bench_run.peer_row(python, name, b, args.warmup, args.repeats, threads, args.tiny,
                                ('--phases',))
      row['peer'] = with_differences({'forward': peer['forward_s'], 'grad': peer['grad_s'],
                                      'step': peer['step_s']})
    rows.append(row)
    print(json.dumps(row), flush=True)
  convs = []
  if args.conv_layers:
    convs = conv_rows(4 if args.tiny else workloads.BATCH['simclr_resnet18'][1 if args.quick else 0],
                      args.warmup, args.repeats, python, threads)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'breakdown.json'), 'w') as f:
    json.dump({'threads': threads, 'jax': jax.__version__, 'warmup': args.warmup,
               'conv_impl': args.conv_impl,
               'repeats': args.repeats, 'rows': rows, 'conv_layers': convs}, f, indent=1)
  table = markdown(rows, convs)
  with open(os.path.join(args.out, 'breakdown.md'), 'w') as f:
    f.write(table + '\n')
  print(table)


if __name__ == '__main__':
  main()
