"""Masked-segment prediction on spoken digits (FSDD): hide spans of log-mel frames,
reconstruct them (MSE on hidden frames only) with a bidirectional encoder, CPU.

  python -m sslax.main --config configs/masked_audio.py --workdir /tmp/sslax-masked-audio

Data, front end, model and downstream evaluation as in configs/apc_audio.py. Spans of 5
frames (50 ms) start at 6.5% of frames, hiding ~30% of each crop (wav2vec 2.0's span shape).
See the README's audio table for measured times and results.
`configs/masked_audio.py:smoke` trains 4 steps of a tiny model in seconds.
"""
from sslax.configs import apc_audio


def get_config(arg: str = ''):
  c = apc_audio.audio_config('masked_audio', arg, 'configs/masked_audio.py')
  c.masked_audio = dict(start_prob=0.065, span=5)
  if arg == 'smoke':
    c.masked_audio.span = 3
  return c
