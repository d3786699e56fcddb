"""The compile-only fit check (sslax/compile_check.py) for every paper config on its target TPU.

  python experiments/compile_check_paper.py --out docs/measured/compile_check_paper.json \
      [--configs simclr_r50,bert_base] [--set model.dtype=float32]

One JSON row per config: per-device memory against HBM, FLOPs per step, the step's floor at
the bf16 peak, XLA's estimate, collectives. Catalog sets (ImageNet, LibriSpeech) are TFDS mock
records of the config's shapes; bert_base pretrains on a text folder, here tiny Shakespeare
(its SentencePiece vocabulary then holds fewer than 30,522 pieces: see the row's params).
Equivalent to `python -m sslax.preflight --config configs/paper/X.py --topology T --mock_data`.
"""
import argparse
import importlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from sslax import compile_check  # noqa: E402

# Each config on the hardware its docstring is sized for.
TARGETS = {'simclr_r50': 'v4-32', 'byol_r50': 'v4-32', 'mocov3_vits16': 'v4-32',
           'dino_vits16': 'v4-32', 'mae_vitb16': 'v4-32', 'bert_base': 'v4-8',
           'cpc_librispeech': 'v4-8'}
SHAKESPEARE = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'shared', 'data',
                           'tinyshakespeare', 'input.txt')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--configs', default=','.join(TARGETS))
  parser.add_argument('--topology', default='', help="override every config's target")
  parser.add_argument('--set', action='append', default=[], help='KEY=PYTHON_VALUE override')
  parser.add_argument('--out', default='')
  args = parser.parse_args()
  rows = []
  for name in args.configs.split(','):
    config = importlib.import_module(f'sslax.configs.paper.{name}').get_config()
    if name == 'bert_base':
      config.data.source = config.eval.source = f'text:{SHAKESPEARE}'
    for item in args.set:
      key, value = item.split('=', 1)
      node = config
      *parents, leaf = key.split('.')
      for part in parents:
        node = node[part]
      node[leaf] = eval(value)   # noqa: S307 (a command-line literal)
    report = compile_check.check(config, args.topology or TARGETS[name], mock_data=True,
                                 name=f'configs/paper/{name}.py')
    print(compile_check.format_report(report), flush=True)
    rows.append({**report, 'overrides': args.set})
    if args.out:
      with open(args.out, 'w') as f:
        json.dump(rows, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
  main()
