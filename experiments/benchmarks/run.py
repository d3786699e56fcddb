"""sslax vs PyTorch peers on this machine: one table of step times, FLOPs, MFU and memory.

  python experiments/benchmarks/run.py [--quick] [--workloads simclr_resnet18,...] \
      [--no_peers] [--peers torch,library,library+compile] [--peer_python PATH] \
      [--out experiments/benchmarks/results]

For each workload (workloads.py) it compiles sslax's own train step on a synthetic batch and
reports compile time, the median step time of `--repeats` steps after `--warmup`, examples/s,
FLOPs per step (XLA's cost analysis), achieved FLOP/s, peak memory (XLA buffer assignment)
and MFU against a measured float32 matmul peak. Unless --no_peers, it then runs up to three
PyTorch peers of each workload, each in its own process (peers/run_peer.py) in a separate
virtual environment (experiments/benchmarks/.peer-venv, git-ignored, created with PEER_PINS
on first use, or --peer_python's; torch is never an sslax dependency):
  torch            the home-made peer (peers/run_peer.py: plain torch, sslax's layers);
  library          the library peer (peers/library_peers.py: lightly for the image methods,
                   lightly + timm for MAE, transformers' BertForMaskedLM for MLM), channels-last
                   for convolutions;
  library+compile  the same with torch.compile of its loss function.
All float32, AdamW, the same number of threads as sslax, OMP_WAIT_POLICY=PASSIVE. It reports
each peer's step time, FLOPs (torch's FlopCounterMode), MFU and peak memory, and sslax's step
time / the best (fastest) peer's. Writes <out>/results.json and <out>/results.md and prints
both tables.

--quick: smaller batches and fewer repeats.
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
# What the peer venv gets: matching torch / torchvision (lightly imports torchvision), and the
# library versions the peers were written against.
PEER_PINS = ('torch==2.14.1', 'torchvision==0.29.1', 'lightly==1.5.26', 'timm==1.0.31',
             'transformers==5.24.0', 'numpy')
# Peers per workload (peers/run_peer.py --impl torch has the home-made ones; library_peers.py
# the rest; CPC has no library peer).
HOMEMADE = ('simclr_resnet18', 'mae_vits4', 'bert_small_mlm', 'cpc_audio_1s')
LIBRARY = {'simclr_resnet18': 'lightly', 'byol_resnet18': 'lightly', 'mocov3_resnet18': 'lightly',
           'dino_resnet18': 'lightly', 'mae_vits4': 'lightly+timm',
           'bert_small_mlm': 'transformers'}
PEER_KINDS = ('torch', 'library', 'library+compile')
# The row keys of each kind's step time (markdown columns).
KIND_KEY = {'torch': 'homemade_step_s', 'library': 'library_step_s',
            'library+compile': 'library_compile_step_s'}
# GNU OpenMP threads spin while they wait; on a CPU shared with other processes that made the
# 2-thread torch MAE step 16x slower (14.6 s vs 0.90 s, measured). Passive waiting costs
# nothing measurable when the CPU is free, so the peers always get it.
PEER_ENV = {'OMP_WAIT_POLICY': 'PASSIVE'}


def sslax_row(name: str, batch_size: int, warmup: int, repeats: int, tiny: bool,
              peak: float, conv_impl: str) -> dict:
  built = workloads.build(name, batch_size, tiny=tiny, conv_impl=conv_impl)
  row = bench_lib.bench_step(built.train_step(), built.state, built.batch,
                             warmup=warmup, repeats=repeats)
  if built.config.model.name == 'resnet' and resnet.resolve(conv_impl) != 'xla':
    # wgrad_gemm's weight gradients are a lax.scan over the kernel offsets, and XLA's cost
    # analysis counts a loop's body once: it misses 8/9 of them (SimCLR at batch 2: 8.6 vs
    # 12.3 GFLOP). The same step with XLA's convolutions does the same arithmetic, unrolled.
    ref = workloads.build(name, batch_size, tiny=tiny, conv_impl='xla')
    compiled = jax.jit(ref.train_step(), donate_argnums=0).lower(ref.state, ref.batch).compile()
    row['flops_per_step_as_compiled'] = row['flops_per_step']
    row['flops_per_step'] = bench_lib.cost_flops(compiled)
    row['flops_source'] = "XLA cost analysis of the conv_impl='xla' step"
  row = bench_lib.derived(row, batch_size, peak)
  return {'workload': name, 'batch': batch_size, **row}


def peer_python(python: str = '') -> str:
  """The peer venv's python: `python` if given, else .peer-venv's, created (or refreshed when
  its pins differ from PEER_PINS) on first use."""
  if python:
    return python
  python = os.path.join(PEER_VENV, 'bin', 'python')
  marker = os.path.join(PEER_VENV, 'sslax-peer-pins.txt')
  pins = '\n'.join(PEER_PINS)
  current = open(marker).read() if os.path.exists(marker) else None
  if current != pins:
    print(f'installing {" ".join(PEER_PINS)} into {PEER_VENV} (once) ...', flush=True)
    if not os.path.exists(python):
      subprocess.run([sys.executable, '-m', 'venv', PEER_VENV], check=True)
    subprocess.run([python, '-m', 'pip', 'install', '-q', *PEER_PINS], check=True)
    with open(marker, 'w') as f:
      f.write(pins)
  return python


def peer_kinds(name: str, wanted: tuple[str, ...] = PEER_KINDS) -> list[str]:
  """The peers workload `name` has, of `wanted`."""
  have = (('torch',) if name in HOMEMADE else ()) + (
      ('library', 'library+compile') if name in LIBRARY else ())
  return [k for k in wanted if k in have]


def peer_row(python: str, name: str, batch_size: int, warmup: int, repeats: int,
             threads: int, tiny: bool, extra: tuple[str, ...] = (),
             timeout: float | None = None) -> dict:
  """peers/run_peer.py's JSON line; `extra`: more of its flags (e.g. --phases, --impl)."""
  out = subprocess.run(
      [python, os.path.join(HERE, 'peers', 'run_peer.py'), '--workload', name,
       '--batch_size', str(batch_size), '--warmup', str(warmup), '--repeats', str(repeats),
       '--threads', str(threads)] + (['--tiny'] if tiny else []) + list(extra),
      check=True, capture_output=True, text=True, env={**os.environ, **PEER_ENV},
      timeout=timeout)
  return json.loads(out.stdout.strip().splitlines()[-1])


def kind_flags(kind: str) -> tuple[str, ...]:
  return {'torch': ('--impl', 'torch'), 'library': ('--impl', 'library'),
          'library+compile': ('--impl', 'library', '--compile')}[kind]


def add_peer(row: dict, kind: str, peer: dict, peak: float) -> None:
  """Records one peer's result in a workload's row, and which peer is now the fastest."""
  if 'step_s' in peer:
    peer = {**peer, 'mfu': peer['flops_per_step'] / peer['step_s'] / peak if peak else None,
            'ratio': row['step_s'] / peer['step_s']}
    row[KIND_KEY[kind]] = peer['step_s']
  row.setdefault('peers', {})[kind] = peer
  timed = {k: p['step_s'] for k, p in row['peers'].items() if 'step_s' in p}
  if timed:
    best = min(timed, key=timed.get)
    row.update({'best_peer': f'{best} ({peer_label(row["workload"], best)})',
                'best_peer_step_s': timed[best], 'ratio': row['step_s'] / timed[best]})


def peer_label(name: str, kind: str) -> str:
  """What a peer is, in words: 'home-made', 'lightly', 'transformers+compile'."""
  if kind == 'torch':
    return 'home-made'
  return LIBRARY[name] + ('+compile' if kind.endswith('+compile') else '')


def peers_table(rows: list[dict]) -> str:
  """One markdown row per (workload, peer)."""
  lines = ['| workload | batch | peer | step ms | compile s | GFLOP/step | peer/sslax GFLOP | '
           'MFU | peak RSS MiB | sslax/peer |', '|' + '---|' * 10]
  for row in rows:
    for kind, p in row.get('peers', {}).items():
      label = f'{kind} ({peer_label(row["workload"], kind)})'
      if 'step_s' not in p:
        lines.append(f'| {row["workload"]} | {row["batch"]} | {label} | failed: '
                     f'{p.get("error", "?")[-80:]} | | | | | | |'.replace('\n', ' '))
        continue
      fmt = lambda v, f: '-' if v is None else f.format(v)   # noqa: E731
      lines.append(
          f'| {row["workload"]} | {row["batch"]} | {label} | {p["step_s"] * 1e3:.0f} | '
          f'{fmt(p.get("compile_s"), "{:.1f}")} | {p["flops_per_step"] * 1e-9:.2f} | '
          f'{fmt(p["flops_per_step"] / row["flops_per_step"] if row.get("flops_per_step") else None, "{:.2f}")} | '
          f'{fmt(p.get("mfu"), "{:.1%}")} | {fmt(p.get("peak_rss_mib"), "{:.0f}")} | '
          f'{p["ratio"]:.2f} |')
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workloads', default=','.join(workloads.NAMES))
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--tiny', action='store_true', help='tiny models: the harness test')
  parser.add_argument('--warmup', type=int, default=0, help='0: 2 (1 with --quick)')
  parser.add_argument('--repeats', type=int, default=0, help='0: 10 (3 with --quick)')
  parser.add_argument('--no_peers', action='store_true')
  parser.add_argument('--peers', default=','.join(PEER_KINDS),
                      help=f'which peers to run, of {PEER_KINDS}')
  parser.add_argument('--peer_python', default='',
                      help='a python with the peers\' packages (default: create .peer-venv)')
  parser.add_argument('--peer_timeout', type=float, default=3600,
                      help='seconds before one peer run is given up (compiles included)')
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
  versions = {}
  if not args.no_peers:
    python = peer_python(args.peer_python)
    wanted = tuple(args.peers.split(','))
    for row in rows:
      for kind in peer_kinds(row['workload'], wanted):
        start = time.perf_counter()
        try:
          peer = peer_row(python, row['workload'], row['batch'], warmup, repeats, threads,
                          args.tiny, kind_flags(kind), timeout=args.peer_timeout)
          versions.update(peer.get('versions', {}))
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
          err = getattr(e, 'stderr', None) or str(e)
          peer = {'error': (err.decode(errors='replace') if isinstance(err, bytes) else err)[-2000:]}
        add_peer(row, kind, peer, peak)
        took = time.perf_counter() - start
        print(f'{row["workload"]}: {kind} peer ' + (
            f'{peer["step_s"] * 1e3:.0f} ms/step ({took:.0f} s incl. start and compile)'
            if 'step_s' in peer else f'FAILED: {peer["error"][-300:]}'), flush=True)
  meta = {'device': jax.devices()[0].device_kind, 'platform': platform.platform(),
          'processor': platform.processor(), 'cpu_count': os.cpu_count(),
          'threads': threads, 'jax': jax.__version__, 'peak_flops_per_s': peak,
          'peak_source': 'measured: float32 matmul (bench_lib.measured_peak_flops)',
          'cpu': 'exclusive' if args.exclusive else 'shared with other processes',
          'conv_impl': args.conv_impl, 'conv_impl_resolved': resnet.resolve(args.conv_impl),
          'peer_env': PEER_ENV, 'peer_versions': versions, 'warmup': warmup, 'repeats': repeats, 'quick': args.quick, 'tiny': args.tiny,
          'time_utc': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'results.json'), 'w') as f:
    json.dump({'meta': meta, 'rows': rows}, f, indent=1)
  table = bench_lib.markdown_table(rows)
  if any(row.get('peers') for row in rows):
    table += '\n\nPeers (' + ', '.join(f'{k} {v}' for k, v in sorted(versions.items())) + \
        '):\n\n' + peers_table(rows)
  with open(os.path.join(args.out, 'results.md'), 'w') as f:
    f.write(f'Measured peak {peak / 1e9:.1f} GFLOP/s (float32 matmul), {threads} threads, '
            f'median of {repeats} steps after {warmup} warm-up; CPU {meta["cpu"]}.\n\n'
            f'{table}\n')
  print(f'\nmeasured peak {peak / 1e9:.1f} GFLOP/s; {threads} threads\n{table}')


if __name__ == '__main__':
  main()
