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
Model: byte tokens (vocab 262; `--config.data.tokenizer=sentencepiece` trains a
`data.vocab_size` subword vocabulary into the workdir instead), 4 pre-LN blocks of width 128,
128 learned positions, ~0.84M parameters; BERT 15% masking (`mlm.span_p=0.2`: SpanBERT spans).
Hardware and time: a 2-core CPU. 1200 steps of batch 32: 0.42 s/step alone (about 8.5 min);
17.5 min of wall time when measured here with the CPU shared with other jobs.
Expected result (Tiny Shakespeare, README "Text results"): held-out masked-token accuracy
0.42 against a unigram baseline of 0.15. Why these settings: batch 64 x 200 steps at lr 1e-3
never left the unigram plateau (0.16); many small steps at lr 2e-3 leave it by step ~400.

`configs/mlm_text.py:smoke` trains 4 steps of a 1-block model on the `json` package in seconds.
"""
import os

from sslax import config_base


def stdlib_source(package: str) -> str:
  """`text:` over a standard-library package's .py files (present on every install)."""
  return 'text:' + os.path.join(os.path.dirname(os.__file__), package, '*.py')


def get_config(arg: str = ''):
  config_base.check_arg('configs/mlm_text.py', arg)
  c = config_base.base()
  c.method = 'mlm'
  c.seed = 0
  c.total_steps = 1200
  c.batch_size = 32
  c.log_every = 50

  c.data.source = stdlib_source('email')
  c.data.tokenizer = 'byte'
  c.data.seq_len = 128
  c.eval.source = stdlib_source('email')

  c.model = dict(name='transformer', width=128, depth=4, num_heads=4, mlp_dim=512,
                 max_len=128, tie_embeddings=True, dtype='float32')
  # BERT's corruption; 20 predictions per 128-token sequence as in BERT's seq-128 phase.
  # span_p > 0: SpanBERT's geometric spans (0.2, at most span_max=10) fill the same budget.
  c.mlm = dict(mask_prob=0.15, replace_prob=0.8, random_prob=0.1, max_predictions=20,
               span_p=0.0, span_max=10)

  c.optim.name = 'adamw'
  c.optim.learning_rate = 2e-3
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 0.01
  c.optim.b2 = 0.98
  c.optim.grad_clip_norm = 1.0
  c.checkpoint.every_steps = 500
  # A short fine-tune of the whole encoder (+ linear head) on eval.source, next to the frozen
  # kNN and linear probe, for the pretrained and the random-init encoder.
  # 7.5 epochs of email's ~1,290 train chunks left after holding out 10% (~300 steps).
  c.evals.fine_tune = dict(type='fine_tune', source='', every_steps=0, task='classification',
                           epochs=7.5, batch_size=32, learning_rate=3e-4, weight_decay=0.01)

  if arg == 'smoke':
    # The json package (5 files, ~48 KB): builds and evaluates in a fraction of a second.
    c.data.source = c.eval.source = stdlib_source('json')
    config_base.smoke(c)
    c.batch_size = 16
    c.data.seq_len = 32
    c.model.update(width=32, depth=1, num_heads=2, mlp_dim=64, max_len=32)
    c.mlm.max_predictions = 6
    c.optim.warmup_steps = 1
    c.evals.fine_tune.enabled = True   # tests may switch it off
  return c
