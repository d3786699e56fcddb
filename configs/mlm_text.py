"""Masked-token (BERT) pretraining of a small byte-level transformer encoder.

  python -m sslax.main --config configs/mlm_text.py --workdir /tmp/sslax-mlm
  python -m sslax.main --config configs/mlm_text.py --workdir /tmp/sslax-mlm-shakespeare \
      --config.data.source=text:../shared/data/tinyshakespeare/input.txt

Data: by default the Python standard library's `email` package sources (`text:` on its
*.py files, ~360 KB, 20 files): real text every Python install has, no network. The last
10% of every file is held out as `test`. Evaluation (`eval.source`, the same files): which
of the 20 files a 256-byte chunk comes from, scored by kNN and a linear probe on
mean-pooled features, pretrained vs random init. Any `text:` or labelled `tsv:` source
works, e.g. `--config.eval.source=tsv:../shared/data/sst2 --config.eval.test_split=test`.
Model: byte tokens (vocab 262), 4 pre-LN blocks of width 128, 128 learned positions.
Hardware and time: a 2-core CPU; 300 steps at 1-2.5 s/step (2.5 s measured while the CPU
was shared). Expected result: not measured yet for these defaults; see the README's text
results for Tiny Shakespeare (held-out masked accuracy vs a unigram baseline).

`configs/mlm_text.py:smoke` trains 4 steps of a 1-block model on the `json` package in seconds.
"""
import os

from sslax import config_base


def stdlib_source(package: str) -> str:
  """`text:` over a standard-library package's .py files (present on every install)."""
  return 'text:' + os.path.join(os.path.dirname(os.__file__), package, '*.py')


def get_config(arg: str = ''):
  c = config_base.base()
  c.method = 'mlm'
  c.seed = 0
  c.total_steps = 300
  c.batch_size = 64
  c.log_every = 50

  c.data.source = stdlib_source('email')
  c.data.tokenizer = 'byte'
  c.data.seq_len = 128
  c.eval.source = stdlib_source('email')

  c.model = dict(name='transformer', width=128, depth=4, num_heads=4, mlp_dim=512,
                 max_len=128, tie_embeddings=True)
  # BERT's corruption; 20 predictions per 128-token sequence as in BERT's seq-128 phase.
  c.mlm = dict(mask_prob=0.15, replace_prob=0.8, random_prob=0.1, max_predictions=20)

  c.optim.name = 'adamw'
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 0.01
  c.checkpoint.every_steps = 500

  if arg == 'smoke':
    # The json package (5 files, ~48 KB): builds and evaluates in a fraction of a second.
    c.data.source = c.eval.source = stdlib_source('json')
    c.total_steps = 4
    c.batch_size = 16
    c.eval.batch_size = 64
    c.log_every = 2
    c.checkpoint.every_steps = 2
    c.data.seq_len = 32
    c.model.update(width=32, depth=1, num_heads=2, mlp_dim=64, max_len=32)
    c.mlm.max_predictions = 6
    c.optim.warmup_steps = 1
    c.eval.probe_steps = 50
    c.eval.probe_l2_grid = (1e-4, 1e-2)
  elif arg:
    raise ValueError(f"configs/mlm_text.py: unknown argument {arg!r}; use '' or 'smoke'.")
  return c
