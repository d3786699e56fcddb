"""Accelerator check: each paper-scale config (configs/paper/) for N steps on the devices present.

  python experiments/accelerator_check.py --out accelerator_check.json \
      [--configs simclr_r50,mae_vitb16] [--variant smoke] [--steps 20] [--batch_size N] \
      [--data_dir gs://BUCKET/tfds] [--mock_data]

For every config it builds the train step exactly as sslax.main does (mesh, shardings, donated
state) and reports, per config, one JSON row:
  step_s               median wall time of `--steps` steps on one fixed batch (after warm-up);
  examples_per_s       batch_size / step_s (an example is an image, a sequence or a clip; the
                       method's views of it are all inside the step);
  flops_per_device     XLA's cost analysis of the compiled step (experiments/benchmarks/
                       bench_lib.py): the model's forward and backward plus augmentation and
                       the optimiser, as compiled; an SPMD program is the per-device program,
                       so this is one device's share (tests/test_compile_check.py checks it
                       on fake devices); hence "model FLOP/s" is an upper bound;
  flops_per_step       flops_per_device x devices;
  flops_per_s, mfu     flops_per_step / step_s, and flops_per_device / step_s over one
                       device's peak: the datasheet dense bf16 peak from PEAK_BF16 (a measured
                       float32 matmul on CPUs);
  pipeline_examples_per_s, headroom
                       examples/s the real input pipeline (train_batches.make_train: records, host
                       decoding, transfer to the mesh) delivers alone, and that over
                       examples_per_s: > 1 means the step, not the input, is the bottleneck.
`--mock_data` reads TFDS sources from `tfds.testing.mock_data` (one image size), so the smoke
variants run anywhere without the data sets; rows then say `"mock_data": true`.
Process 0 writes `--out` (a local path or gs://).
"""
import argparse
import contextlib
import importlib
import json
import os
import platform
import sys
import time

import jax

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, 'benchmarks'))
import bench_lib  # noqa: E402
from sslax import methods  # noqa: E402
from sslax import sharding  # noqa: E402
from sslax import storage  # noqa: E402
from sslax import train  # noqa: E402
from sslax.data import mock_catalog  # noqa: E402
from sslax.data import tokenizers  # noqa: E402
from sslax.data import train_batches  # noqa: E402

PAPER_CONFIGS = ('simclr_r50', 'byol_r50', 'mocov3_vits16', 'dino_vits16', 'mae_vitb16',
                 'bert_base', 'cpc_librispeech')

# Dense bf16 peak FLOP/s per device (datasheets; sparsity excluded), by jax device_kind prefix.
# Longer prefixes first: 'TPU v5 lite' (v5e) must match before 'TPU v5' (v5p).
PEAK_BF16 = (
    ('NVIDIA H200', 989e12), ('NVIDIA H100', 989e12),   # SXM; the PCIe H100 is 756e12
    ('NVIDIA A100', 312e12), ('NVIDIA L4', 121e12),
    ('TPU v6 lite', 918e12), ('TPU v5 lite', 197e12), ('TPU v5p', 459e12), ('TPU v5', 459e12),
    ('TPU v4', 275e12), ('TPU v3', 123e12),
)


def device_peak() -> tuple[float, str]:
  """(peak FLOP/s of one device, where the number comes from)."""
  kind = jax.devices()[0].device_kind
  for prefix, peak in PEAK_BF16:
    if kind.startswith(prefix):
      return peak, f'datasheet bf16 ({prefix})'
  # CPUs (and unknown chips): what a large float32 matmul reaches here.
  return bench_lib.measured_peak_flops(), 'measured float32 matmul'


def load_config(name: str, variant: str, args):
  config = importlib.import_module(f'sslax.configs.paper.{name}').get_config(variant)
  config.progress_bar = False
  if args.batch_size:
    config.batch_size = args.batch_size
  if args.data_dir:
    config.data.data_dir = args.data_dir
  return config


def check(config, steps: int, workdir: str) -> dict:
  """One row: compiles the train step, times it, times the input pipeline alone."""
  config = tokenizers.prepare(config, workdir)
  mesh = sharding.make_mesh(config.mesh)
  # The step train.run runs: shardings, donated state and the online probe if configured.
  parts = train.build(config, mesh, train.sample_batch(config))
  (state,) = parts.init.states([config.seed])
  batches = train_batches.make_train(config, mesh, crops=methods.train_crops(config),
                                     start_step=0)
  timed = bench_lib.bench_step(parts.step_fn, state, next(batches), warmup=2, repeats=steps)
  step_s = timed['step_s']

  # The input pipeline alone: batches as train.run receives them, on the mesh.
  jax.block_until_ready(next(batches))
  start = time.perf_counter()
  for _ in range(steps):
    jax.block_until_ready(next(batches))
  pipeline_s = (time.perf_counter() - start) / steps

  # XLA's cost analysis of an SPMD program counts one device's share.
  flops_per_device = timed['flops_per_step']
  flops = flops_per_device * jax.device_count()
  params = sum(x.size for x in jax.tree.leaves(parts.abstract_state.params))
  return {'batch_size': config.batch_size, 'params': int(params),
          **{k: timed[k] for k in ('compile_s', 'step_s', 'step_s_min', 'step_s_max',
                                   'peak_bytes')},
          'flops_per_device': flops_per_device, 'flops_per_step': flops,
          'examples_per_s': config.batch_size / step_s, 'flops_per_s': flops / step_s,
          'pipeline_examples_per_s': config.batch_size / pipeline_s,
          'headroom': step_s / pipeline_s}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--configs', default=','.join(PAPER_CONFIGS))
  parser.add_argument('--variant', default='', choices=('', 'smoke'))
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--batch_size', type=int, default=0, help='0: the config\'s')
  parser.add_argument('--data_dir', default='')
  parser.add_argument('--mock_data', action='store_true')
  parser.add_argument('--workdir', default='/tmp/sslax_accelerator_check',
                      help='where a SentencePiece vocabulary is trained, if a config needs one')
  parser.add_argument('--out', default='accelerator_check.json')
  args = parser.parse_args()

  peak, peak_source = device_peak()
  n = jax.device_count()
  header = {'device_kind': jax.devices()[0].device_kind, 'platform': jax.default_backend(),
            'devices': n, 'processes': jax.process_count(), 'peak_flops_per_device': peak,
            'peak_source': peak_source, 'jax': jax.__version__, 'host': platform.node(),
            'variant': args.variant or 'full', 'mock_data': args.mock_data, 'steps': args.steps}
  rows = []
  for name in args.configs.split(','):
    config = load_config(name, args.variant, args)
    uses_tfds = config.data.source.startswith('tfds:')
    with mock_catalog.catalog_mock(64) if args.mock_data and uses_tfds else \
        contextlib.nullcontext():
      try:
        row = check(config, args.steps, os.path.join(args.workdir, name))
        row['mfu'] = row['flops_per_device'] / row['step_s'] / peak
      except Exception as e:   # one config's failure (memory, missing data) is a row, not the end
        row = {'error': f'{type(e).__name__}: {str(e).splitlines()[0][:300]}'}
    rows.append({'config': f'configs/paper/{name}.py' + (f':{args.variant}' if args.variant
                                                          else ''), **row})
    print(json.dumps(rows[-1]), flush=True)
  if jax.process_index() == 0:
    out = storage.path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**header, 'rows': rows}, indent=2) + '\n')
    print(f'Wrote {out}.')


if __name__ == '__main__':
  main()
