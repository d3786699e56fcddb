"""Fine-tuning learning curves of a run's pretrained and random-init encoders, over seeds.

  python experiments/fine_tune_curve.py --workdir /tmp/sslax-mlm-sst2 \
      --train_split 'train[:1000]' --learning_rate 1e-3 --steps 400 --score_at 0,50,100,200 \
      --seeds 3 [--head_init probe] [--json curve.json]

Restores the workdir's latest checkpoint as `sslax.evaluate` does, fine-tunes it and the
random-init encoder of each seed with `config.evals.<--evaluator>`'s batch size, weight decay
and task (the other options from the command line), scores `eval.test_split` after each step
of --score_at and at --steps, and prints mean ± std over seeds. A seed changes the fine-tune
minibatches (and LP-FT's held-out split) for both encoders and, for random init, the
initialisation too. One table answers whether pretraining helps early in fine-tuning, at
the end, or not at all.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sslax import evaluate  # noqa: E402
from sslax.data import fetch  # noqa: E402
from sslax.data import readers  # noqa: E402
from sslax.data import sources  # noqa: E402
from sslax.evaluators import fine_tune  # noqa: E402


def _split(config, split: str) -> dict[str, np.ndarray]:
  records = readers.Records(config.eval.source, split, data_dir=config.data.data_dir or None,
                            in_memory=True, transform=fetch.record_transform(config.data))
  return records.take(np.arange(len(records)))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--evaluator', default='fine_tune', help='entry of config.evals')
  parser.add_argument('--train_split', default=None, help='default: config.eval.train_split')
  parser.add_argument('--learning_rate', type=float, required=True)
  parser.add_argument('--steps', type=int, required=True)
  parser.add_argument('--score_at', default='', help='comma-separated steps < --steps')
  parser.add_argument('--head_init', default='zeros', choices=fine_tune.HEAD_INITS)
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--json', default=None, help='also write the per-seed scores here')
  args = parser.parse_args()

  config = evaluate.load_config(args.workdir)
  config.eval.num_seeds = args.seeds
  ev = config.evals[args.evaluator]
  config, method, _, state, random_init = evaluate.restore(config, args.workdir)
  train = _split(config, args.train_split or config.eval.train_split)
  test = _split(config, config.eval.test_split)
  regression = ev.task == 'regression'
  metric = 'r2' if regression else 'accuracy'
  num_outputs = 1 if regression else sources.info(
      config.eval.source, data_dir=config.data.data_dir or None).num_classes
  if regression:
    train['label'], test['label'] = (d['label'].astype(np.float32) for d in (train, test))
  score_at = sorted(int(s) for s in args.score_at.split(',') if s)
  encoders = {'pretrained': [(state.params, state.model_state)] * args.seeds,
              'random_init': random_init}
  scores = {}
  for name, per_seed in encoders.items():
    for seed, encoder in enumerate(per_seed):
      out = fine_tune.fine_tune(
          method.embed, *encoder, train, test, task=ev.task, num_outputs=num_outputs,
          steps=args.steps, batch_size=ev.batch_size, learning_rate=args.learning_rate,
          weight_decay=ev.weight_decay, head_init=args.head_init, seed=config.seed + seed,
          score_at=score_at, val_fraction=0.0)   # a curve of fixed steps on all of train
      curve = {t: out[f'{metric}@{t}'] for t in score_at} | {args.steps: out[metric]}
      scores.setdefault(name, []).append(curve)
      print(name, seed, ' '.join(f'{t}:{v:.3f}' for t, v in curve.items()), flush=True)

  steps = score_at + [args.steps]
  print(f'\n{metric} (mean ± std over {args.seeds} seeds), {len(train["label"])} labelled, '
        f'lr {args.learning_rate:g}, head {args.head_init}')
  print('| fine-tune steps | ' + ' | '.join(map(str, steps)) + ' |')
  print('| --- ' * (len(steps) + 1) + '|')
  for name, runs in scores.items():
    cells = [f'{np.mean([r[t] for r in runs]):.3f} ± {np.std([r[t] for r in runs]):.3f}'
             for t in steps]
    print(f'| {name} | ' + ' | '.join(cells) + ' |')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({k: [{str(t): v for t, v in r.items()} for r in runs]
                 for k, runs in scores.items()}, f, indent=1)


if __name__ == '__main__':
  main()
