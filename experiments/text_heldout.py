"""Held-out token prediction of a trained mlm / lm workdir, against a unigram baseline.

  python experiments/text_heldout.py --workdir /tmp/sslax-mlm-shakespeare [--split test]

Reads the workdir's config.json and latest checkpoint, runs the method's own loss on every
batch of the text source's held-out split (fixed masking key, so numbers are reproducible),
and prints the token-weighted mean of its accuracy metric next to the unigram baseline:
always predicting the train split's most frequent token (for masked positions, which are
uniform over real tokens, that is the token's frequency in the held-out split).
"""
import argparse
import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sslax import evaluate  # noqa: E402
from sslax.data import fetch  # noqa: E402
from sslax.data import readers  # noqa: E402
from sslax.data import tokenizers  # noqa: E402

ACCURACY = {'mlm': 'masked_token_accuracy', 'lm': 'next_token_accuracy'}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--split', default='test')
  args = parser.parse_args()
  config = evaluate.load_config(args.workdir)
  if config.method not in ACCURACY:
    raise SystemExit(f'{args.workdir}: method {config.method!r} is not mlm or lm.')
  config, method, mesh, state, _ = evaluate.restore(config, args.workdir, random_init=False)

  d = config.data
  transform = fetch.record_transform(d)
  train_tokens = readers.Records(d.source, d.train_split, data_dir=d.data_dir or None,
                                 in_memory=True, transform=transform).take(slice(None))['tokens']
  held_out = readers.Records(d.source, args.split, data_dir=d.data_dir or None, in_memory=True,
                             transform=transform)
  tokens = held_out.take(slice(None))['tokens']
  special = tokenizers.make(d).NUM_SPECIAL
  counts = np.bincount(train_tokens[train_tokens >= special].ravel())
  top = int(np.argmax(counts))
  real = tokens[tokens >= special]
  unigram = float((real == top).mean())

  @jax.jit
  def metrics(params, batch, key):
    _, (_, m) = method.loss(params, state.model_state, state.extra, batch, key)
    return m
  key = jax.random.PRNGKey(1234)
  total, weight = 0.0, 0.0
  for i, batch in enumerate(readers.eval_batches(held_out, batch_size=config.batch_size,
                                                 mesh=mesh)):
    # Padded rows of the last batch repeat record 0; count each batch by its real rows.
    m = jax.device_get(metrics(state.params, {'tokens': batch['tokens']},
                               jax.random.fold_in(key, i)))
    rows = float(readers.gather(batch['mask']).sum())
    total += float(m[ACCURACY[config.method]]) * rows
    weight += rows
  print(json.dumps({'step': int(state.step), 'split': args.split, 'sequences': len(held_out),
                    ACCURACY[config.method]: total / weight,
                    'unigram_baseline_accuracy': unigram,
                    'unigram_token': tokenizers.make(d).decode(np.array([top]))},
                   indent=2))


if __name__ == '__main__':
  main()
