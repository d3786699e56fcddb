"""sslax vs PyTorch peers on this machine: four workloads, one table.

  python experiments/benchmarks/run.py [--quick] [--workloads simclr_resnet18,...] \
      [--no_peers] [--out experiments/benchmarks/results]

For each workload (workloads.py) it compiles sslax's own train step on a synthetic batch and
reports compile time, the median step time of `--repeats` steps after `--warmup`, examples/s,
FLOPs per step (XLA's cost analysis), achieved FLOP/s, peak memory (XLA buffer assignment)
and MFU against a measured float32 matmul peak. Unless --no_peers, it then creates a separate
virtual environment (experiments/benchmarks/.peer-venv, git-ignored; torch is never an sslax
dependency), installs `torch==2.13.0` there, runs the PyTorch peer of each workload
(peers/run_peer.py: same model, loss, batch, float32, the same number of threads) and
reports sslax step time / peer step time. Writes <out>/results.json and <out>/results.md and
prints the table.

--quick: smaller batches and fewer repeats (what fits a fresh clone in < 15 min with peers).
--tiny: tiny models (the harness test; numbers mean nothing).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import jax

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)
import bench_lib  # noqa: E402
import workloads  # noqa: E402
from sslax.models import resnet  # noqa: E402

PEER_VENV = os.path.join(HERE, '.peer-venv')
TORCH_PIN = 'torch==2.13.0'
# GNU OpenMP threads spin while they wait; on a CPU shared with other processes that made the
# 2-thread torch MAE step 16x slower (14.6 s vs 0.90 s, measured). Passive waiting costs
# nothing measurable when the CPU is free, so the peers always get it.
PEER_ENV = {'OMP_WAIT_POLICY': 'PASSIVE'}


def sslax_row(name: str, batch_size: int, warmup: int, repeats: int, tiny: bool,
              peak: float, conv_impl: str) -> dict:
  built = workloads.build(name, batch_size, tiny=tiny, conv_impl=conv_impl)
  row = bench_lib.bench_step(built.train_step(), built.state, built.batch,
                             warmup=warmup, repeats=repeats)
  row = bench_lib.derived(row, batch_size, peak)
  return {'workload': name, 'batch': batch_size, **row}


def peer_python() -> str:
  """The peer venv's python, creating the venv and installing torch on first use."""
  python = os.path.join(PEER_VENV, 'bin', 'python')
  if not os.path.exists(python):
    print(f'creating {PEER_VENV} and installing {TORCH_PIN} (once) ...', flush=True)
    subprocess.run([sys.executable, '-m', 'venv', PEER_VENV], check=True)
    subprocess.run([python, '-m', 'pip', 'install', '-q', TORCH_PIN, 'numpy'], check=True)
  return python


def peer_row(python: str, name: str, batch_size: int, warmup: int, repeats: int,
             threads: int, tiny: bool, extra: tuple[str, ...] = ()) -> dict:
  """peers/run_peer.py's JSON line; `extra`: more of its flags (e.g. --phases)."""
  out = subprocess.run(
      [python, os.path.join(HERE, 'peers', 'run_peer.py'), '--workload', name,
       '--batch_size', str(batch_size), '--warmup', str(warmup), '--repeats', str(repeats),
       '--threads', str(threads)] + (['--tiny'] if tiny else []) + list(extra),
      check=True, capture_output=True, text=True, env={**os.environ, **PEER_ENV})
  return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workloads', default=','.join(workloads.NAMES))
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--tiny', action='store_true', help='tiny models: the harness test')
  parser.add_argument('--warmup', type=int, default=0, help='0: 2 (1 with --quick)')
  parser.add_argument('--repeats', type=int, default=0, help='0: 10 (3 with --quick)')
  parser.add_argument('--no_peers', action='store_true')
  parser.add_argument('--conv_impl', default='auto',
                      help="the ResNet's config.model.conv_impl (sslax/models/resnet.py)")
  parser.add_argument('--exclusive', action='store_true',
                      help='say in the results that nothing else ran on the CPU meanwhile')
  parser.add_argument('--out', default=os.path.join(HERE, 'results'))
  args = parser.parse_args()
  warmup = args.warmup or (1 if args.quick or args.tiny else 2)
  repeats = args.repeats or (3 if args.quick or args.tiny else 10)
  threads = os.cpu_count() or 1   # XLA's CPU client uses every core; the peers get as many
  names = args.workloads.split(',')
  peak = bench_lib.measured_peak_flops(512 if args.tiny else 2048)
  rows = []
  for name in names:
    b = workloads.BATCH[name][1 if args.quick or args.tiny else 0]
    if args.tiny:
      b = 4
    start = time.perf_counter()
    row = sslax_row(name, b, warmup, repeats, args.tiny, peak, args.conv_impl)
    print(f'{name}: sslax {row["step_s"] * 1e3:.0f} ms/step '
          f'({time.perf_counter() - start:.0f} s incl. compile)', flush=True)
    rows.append(row)
  if not args.no_peers:
    python = peer_python()
    for row in rows:
      peer = peer_row(python, row['workload'], row['batch'], warmup, repeats, threads,
                      args.tiny)
      row.update({'peer_step_s': peer['step_s'], 'peer_flops_per_step': peer['flops_per_step'],
                  'peer_torch': peer['torch'], 'peer_threads': peer['threads'],
                  'ratio': row['step_s'] / peer['step_s']})
      print(f'{row["workload"]}: peer {peer["step_s"] * 1e3:.0f} ms/step', flush=True)
  meta = {'device': jax.devices()[0].device_kind, 'platform': platform.platform(),
          'processor': platform.processor(), 'cpu_count': os.cpu_count(),
          'threads': threads, 'jax': jax.__version__, 'peak_flops_per_s': peak,
          'peak_source': 'measured: float32 matmul (bench_lib.measured_peak_flops)',
          'cpu': 'exclusive' if args.exclusive else 'shared with other processes',
          'conv_impl': args.conv_impl, 'conv_impl_resolved': resnet.resolve(args.conv_impl),
          'peer_env': PEER_ENV, 'warmup': warmup, 'repeats': repeats, 'quick': args.quick, 'tiny': args.tiny,
          'time_utc': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'results.json'), 'w') as f:
    json.dump({'meta': meta, 'rows': rows}, f, indent=1)
  table = bench_lib.markdown_table(rows)
  with open(os.path.join(args.out, 'results.md'), 'w') as f:
    f.write(f'Measured peak {peak / 1e9:.1f} GFLOP/s (float32 matmul), {threads} threads, '
            f'median of {repeats} steps after {warmup} warm-up; CPU {meta["cpu"]}.\n\n'
            f'{table}\n')
  print(f'\nmeasured peak {peak / 1e9:.1f} GFLOP/s; {threads} threads\n{table}')


if __name__ == '__main__':
  main()
