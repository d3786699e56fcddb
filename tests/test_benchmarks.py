"""The benchmark harness (experiments/benchmarks/run.py) on a tiny workload, sslax side only.

Keeps the harness from rotting: it must build the real train step of a workload, time it and
write JSON and markdown with positive step time, FLOPs and memory. No torch here: peers run
only from the benchmark script's own virtual environment, so the peer bookkeeping is tested
on made-up peer results; experiments/benchmarks/check_peers.py runs the tiny home-made and
library peers for real where run.py's PEER_PINS are installed.
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


def test_headroom_tiny_mlm_real_vs_synthetic(tmp_path, monkeypatch):
  """headroom.py times the same step on real text batches and on a resident one."""
  headroom = _load('headroom')
  out = tmp_path / 'headroom.json'
  monkeypatch.setattr(sys, 'argv', ['headroom.py', '--tiny', '--workloads', 'bert_small_mlm',
                                    '--batch_size', '8', '--steps', '2', '--rounds', '1',
                                    '--data_dir', str(tmp_path / 'tfds'), '--out', str(out)])
  headroom.main()
  (row,) = json.loads(out.read_text())['rows']
  assert row['source'].startswith('text:') and row['batch'] == 8
  assert row['synthetic_step_s'] > 0 and row['real_step_s'] > 0
  assert row['real_speed'] == pytest.approx(row['synthetic_step_s'] / row['real_step_s'],
                                            rel=2e-3)


def test_markdown_table_formats_and_marks_missing():
  lib = _load('bench_lib')
  table = lib.markdown_table([{'workload': 'w', 'batch': 8, 'step_s': 0.25,
                               'flops_per_step': 3e9, 'peak_bytes': 2 ** 21}])
  row = table.splitlines()[2]
  assert row.startswith('| w | 8 | - | 250 | - | 3.00 | - | - | 2 |')
  assert row.endswith('| - | - | - | - | - |')   # no peers ran


def test_peers_best_ratio_and_tables():
  run = _load('run')
  assert run.peer_kinds('simclr_resnet18') == ['torch', 'library', 'library+compile']
  assert run.peer_kinds('byol_resnet18') == ['library', 'library+compile']
  assert run.peer_kinds('cpc_audio_1s') == ['torch']
  assert run.peer_kinds('bert_small_mlm', ('library',)) == ['library']
  row = {'workload': 'simclr_resnet18', 'batch': 8, 'step_s': 2.0, 'flops_per_step': 1e11}
  peer = lambda s: {'step_s': s, 'flops_per_step': 1.1e11, 'peak_rss_mib': 300.0}  # noqa: E731
  run.add_peer(row, 'torch', peer(1.6), 1e11)
  run.add_peer(row, 'library', peer(1.25), 1e11)
  run.add_peer(row, 'library+compile', {'error': 'inductor: no C++ compiler'}, 1e11)
  assert row['ratio'] == pytest.approx(1.6)   # against the fastest peer that ran
  assert row['best_peer'] == 'library (lightly)' and row['best_peer_step_s'] == 1.25
  assert row['peers']['torch']['ratio'] == pytest.approx(1.25)
  assert row['peers']['library']['mfu'] == pytest.approx(1.1e11 / 1.25 / 1e11)
  lib = _load('bench_lib')
  main = lib.markdown_table([row]).splitlines()[2]
  assert main.endswith('| 1600 | 1250 | - | library (lightly) | 1.60 |'), main
  peers = run.peers_table([row])
  assert '| simclr_resnet18 | 8 | library (lightly) | 1250 | - | 110.00 | 1.10 | 88.0% | 300 | 1.60 |' in peers
  assert 'library+compile (lightly+compile) | failed: inductor: no C++ compiler' in peers


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
