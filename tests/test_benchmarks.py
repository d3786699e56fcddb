"""The benchmark harness (experiments/benchmarks/run.py) on a tiny workload, sslax side only.

Keeps the harness from rotting: it must build the real train step of a workload, time it and
write JSON and markdown with positive step time, FLOPs and memory. No torch here: peers run
only from the benchmark script's own virtual environment.
"""
import importlib.util
import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name):
  spec = importlib.util.spec_from_file_location(
      f'bench_{name}', ROOT / 'experiments' / 'benchmarks' / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_harness_tiny_mlm(tmp_path, monkeypatch):
  run = _load('run')
  monkeypatch.setattr(sys, 'argv', ['run.py', '--tiny', '--no_peers', '--workloads',
                                    'bert_small_mlm', '--repeats', '2', '--out', str(tmp_path)])
  run.main()
  result = json.loads((tmp_path / 'results.json').read_text())
  (row,) = result['rows']
  assert row['workload'] == 'bert_small_mlm' and row['batch'] == 4
  assert row['step_s'] > 0 and row['compile_s'] > 0
  assert row['flops_per_step'] > 1e5           # a real transformer step, not an empty program
  assert row['peak_bytes'] > 0
  assert result['meta']['peak_flops_per_s'] > 0
  assert row['mfu'] == pytest.approx(row['flops_per_step'] / row['step_s']
                                     / result['meta']['peak_flops_per_s'])
  table = (tmp_path / 'results.md').read_text()
  assert '| bert_small_mlm | 4 |' in table


def test_markdown_table_formats_and_marks_missing():
  lib = _load('bench_lib')
  table = lib.markdown_table([{'workload': 'w', 'batch': 8, 'step_s': 0.25,
                               'flops_per_step': 3e9, 'peak_bytes': 2 ** 21}])
  row = table.splitlines()[2]
  assert row.startswith('| w | 8 | - | 250 | - | 3.00 | - | - | 2 |')


def test_breakdown_tiny_simclr_phases(tmp_path, monkeypatch):
  breakdown = _load('breakdown')
  monkeypatch.setattr(sys, 'argv', ['breakdown.py', '--tiny', '--no_peers', '--workloads',
                                    'simclr_resnet18', '--warmup', '1', '--repeats', '1',
                                    '--out', str(tmp_path)])
  breakdown.main()
  (row,) = json.loads((tmp_path / 'breakdown.json').read_text())['rows']
  phases = row['sslax']
  assert all(phases[p] > 0 for p in ('augment', 'forward', 'grad', 'step')), phases
  assert phases['backward'] == pytest.approx(phases['grad'] - phases['forward'])
  assert phases['optimiser'] == pytest.approx(phases['step'] - phases['grad'])
  assert '| simclr_resnet18 | 4 | step |' in (tmp_path / 'breakdown.md').read_text()


def test_breakdown_markdown_with_peer_and_conv_layers():
  breakdown = _load('breakdown')
  row = {'workload': 'w', 'batch': 2,
         'sslax': breakdown.with_differences({'forward': 0.1, 'grad': 0.3, 'step': 0.4}),
         'peer': breakdown.with_differences({'forward': 0.05, 'grad': 0.2, 'step': 0.25})}
  conv = {'layer': '4x4 8->8 /1', 'xla_s': 0.002, 'im2col_s': 0.0005, 'wgrad_gemm_s': 0.001,
          'peer_s': 0.001}
  table = breakdown.markdown([row], [conv])
  assert '| w | 2 | forward | 100 | 50 | 2.00 |' in table
  assert '| w | 2 | backward | 200 | 150 | 1.33 |' in table
  assert '| w | 2 | optimiser | 100 | 50 | 2.00 |' in table
  assert '| 4x4 8->8 /1 | 2.0 (2.00) | 0.5 (0.50) | 1.0 (1.00) | 1.0 |' in table
