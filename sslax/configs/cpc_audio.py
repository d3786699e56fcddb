"""Contrastive predictive coding (CPC) on spoken digits (FSDD), log-mel frames, CPU.

  python -m sslax.main --config configs/cpc_audio.py --workdir /tmp/sslax-cpc

Data, front end, model and downstream evaluation as in configs/apc_audio.py; the loss is
InfoNCE between W_k c_t and z_{t+k} for k = 1..4 with negatives from every time and example
of the global batch. See the README's audio table for measured times and results.
`configs/cpc_audio.py:smoke` trains 4 steps of a tiny model in seconds.
"""
from sslax.configs import apc_audio


def get_config(arg: str = ''):
  c = apc_audio.audio_config('cpc', arg, 'configs/cpc_audio.py')
  c.cpc = dict(steps_ahead=(1, 2, 3, 4), temperature=0.1)
  if not arg:
    # Every (time, example) of the batch is a negative: logits are [B*F, B*F] per k, ~4x
    # the cost at batch 64 (1.5 s/step measured) of batch 32 (0.47 s).
    c.batch_size = 32
    c.total_steps = 400
  if arg == 'smoke':
    c.cpc.steps_ahead = (1, 2)
  return c
