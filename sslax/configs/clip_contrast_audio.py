"""Clip contrast on spoken digits (FSDD): two random segments of a recording are a positive
pair, InfoNCE against the global batch, CPU.

  python -m sslax.main --config configs/clip_contrast_audio.py --workdir /tmp/sslax-clip

Data, front end, model and downstream evaluation as in configs/apc_audio.py; each segment is
a 0.5 s crop with random gain, and SpecAugment time/frequency masks. See the README's audio
table for measured times and results.
`configs/clip_contrast_audio.py:smoke` trains 4 steps of a tiny model in seconds.
"""
from sslax.configs import apc_audio


def get_config(arg: str = ''):
  c = apc_audio.audio_config('clip_contrast', arg, 'configs/clip_contrast_audio.py')
  c.clip_contrast = dict(temperature=0.2, proj_hidden_dims=(128,), proj_dim=64)
  if not arg:
    c.total_steps = 1000   # two crops per clip: ~2x the step time of apc
  if arg == 'smoke':
    c.clip_contrast.update(proj_hidden_dims=(32,), proj_dim=16)
  return c
