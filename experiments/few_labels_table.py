#!/usr/bin/env python
"""Prints docs/few_labels.md's rows from a run's results.json: each few-label budget of each
classification evaluator, pretrained / random init / raw input as mean ± std over seeds, and
the margin (pretrained − the better baseline) over the larger std of the two.

  python experiments/few_labels_table.py --workdir /tmp/fl-digits [--evals linear_probe,knn]
"""
import argparse
import json
import pathlib
import re


def cell(results, key):
  if key not in results:
    return '-', None, None
  mean, std = results[key], results.get(key + '_std', 0.0)
  return f'{mean:.3f} ± {std:.3f}', mean, std


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--evals', default='linear_probe,knn,fine_tune')
  args = parser.parse_args()
  results = json.loads((pathlib.Path(args.workdir) / 'results.json').read_text())
  budgets = sorted({m[1] for k in results for m in [re.fullmatch(r'labels_per_class@(.+)', k)]
                    if m}, key=lambda b: results[f'labels_per_class@{b}'])
  print('| labels per class | evaluator | pretrained | random init | raw input | margin |')
  print('| --- | --- | --- | --- | --- | --- |')
  for b in budgets + ['']:
    for name in args.evals.split(','):
      key = f'{name}@{b}/accuracy' if b else f'{name}/accuracy'
      if key not in results:
        continue
      raw_key = f'raw_input/logistic@{b}/accuracy' if b else 'raw_input/logistic/accuracy'
      (p, pm, ps), (r, rm, rs), (x, xm, xs) = (cell(results, k) for k in
                                               (key, 'random_init/' + key, raw_key))
      best = max((v for v in ((rm, rs), (xm, xs)) if v[0] is not None), key=lambda v: v[0])
      spread = max(ps, best[1])
      # With all labels the baseline runs once, and one checkpoint gives kNN no spread.
      margin = (f'{(pm - best[0]) / spread:.1f} std' if spread > 1e-6
                else f'{pm - best[0]:+.3f} (no spread)')
      size = f'{b} ({results[f"labels_per_class@{b}"]:g})' if b.endswith('%') else b
      print(f'| {size or "all"} | {name} | {p} | {r} | {x} | {margin} |')


if __name__ == '__main__':
  main()
