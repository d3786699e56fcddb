"""Next-token (GPT) pretraining of a small byte-level causal transformer.

  python -m sslax.main --config configs/lm_text.py --workdir /tmp/sslax-lm
  python -m sslax.main --config configs/lm_text.py --workdir /tmp/sslax-lm-shakespeare \
      --config.data.source=text:../shared/data/tinyshakespeare/input.txt

Data and evaluation as in `configs/mlm_text.py` (the standard library's `email` package
sources by default; any `text:` / `tsv:` source by override). Model: byte tokens, 4 causal
pre-LN blocks of width 128, 128 learned positions, tied input/output embeddings.
Hardware and time: the steps, batch and optimiser of `configs/mlm_text.py` (1200 steps of
batch 32 on a 2-core CPU); not re-measured for lm with these defaults.

`configs/lm_text.py:smoke` trains 4 steps of a 1-block model in seconds.
"""
from configs import mlm_text


def get_config(arg: str = ''):
  if arg not in ('', 'smoke'):
    raise ValueError(f"configs/lm_text.py: unknown argument {arg!r}; use '' or 'smoke'.")
  c = mlm_text.get_config(arg)
  c.method = 'lm'
  del c['mlm']
  return c
