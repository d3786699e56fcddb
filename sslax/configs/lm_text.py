"""Next-token (GPT) pretraining of a small byte-level causal transformer.

  python -m sslax.main --config configs/lm_text.py --workdir /tmp/sslax-lm
  python -m sslax.main --config configs/lm_text.py --workdir /tmp/sslax-lm-shakespeare \
      --config.data.source=text:../shared/data/tinyshakespeare/input.txt

Data and evaluation as in `configs/mlm_text.py` (the standard library's `email` package
sources by default; any `text:` / `tsv:` source by override). Model: byte tokens, 4 causal
pre-LN blocks of width 128, 128 learned positions, tied input/output embeddings.
Hardware and time: the steps, batch and optimiser of `configs/mlm_text.py` (1200 steps of
batch 32); on Tiny Shakespeare 6.6 min on an idle 2-core CPU, held-out next-token accuracy
0.502 vs 0.153 unigram (README "Text results").

`configs/lm_text.py:smoke` trains 4 steps of a 1-block model in seconds.
"""
from sslax.configs import mlm_text
from sslax import config_base


def get_config(arg: str = ''):
  config_base.check_arg('configs/lm_text.py', arg)
  c = mlm_text.get_config(arg)
  c.method = 'lm'
  del c['mlm']
  return c
