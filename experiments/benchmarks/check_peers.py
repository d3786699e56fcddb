"""Runs the tiny home-made and library peers for real and checks what run.py records of them.

  python experiments/benchmarks/check_peers.py --peer_python /path/to/venv/bin/python

The test suite (tests/test_benchmarks.py) checks the peer bookkeeping on made-up peer
results, because CI has no torch; this is the same harness with real peer processes, for a
machine that has run.py's PEER_PINS installed (minutes: the peers' imports and processes).
"""
import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)
import run  # noqa: E402


def check(peer_python: str, out: str) -> None:
  sys.argv = ['run.py', '--tiny', '--workloads', 'bert_small_mlm,byol_resnet18', '--repeats',
              '1', '--peers', 'torch,library', '--peer_python', peer_python, '--out', out]
  run.main()
  with open(os.path.join(out, 'results.json')) as f:
    result = json.load(f)
  bert, byol = result['rows']
  assert set(bert['peers']) == {'torch', 'library'}, bert['peers']
  assert set(byol['peers']) == {'library'}, byol['peers']
  for row in (bert, byol):
    for p in row['peers'].values():
      assert p['step_s'] > 0 and p['flops_per_step'] > 1e5, p
    assert abs(row['ratio'] - row['step_s'] / row['best_peer_step_s']) < 1e-6 * row['ratio']
  assert bert['peers']['library']['library'] == 'transformers', bert['peers']['library']
  assert 'lightly' in result['meta']['peer_versions'], result['meta']
  print('peers OK: tiny home-made and library peers ran and were recorded')


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--peer_python', required=True,
                      help="a python with run.py's PEER_PINS installed")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    check(args.peer_python, tmp)
