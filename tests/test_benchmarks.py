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
