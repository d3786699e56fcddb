"""Contrastive predictive coding (CPC) on LJSpeech's training audio, then `asr`: a CTC
character head fine-tuned from the pretrained vs the random-init encoder.

  python -m sslax.main --config configs/cpc_ljspeech.py --workdir /tmp/sslax-cpc-ljspeech

Data, front end, model and the `asr` evaluator (3 fine-tune seeds per encoder) as in
configs/masked_audio_ljspeech.py; the pretext task is configs/cpc_audio.py's: InfoNCE
between W_k c_t and z_{t+k}, k = 1..4, with every (time, example) of the global batch a
negative. The encoder is causal, its random init too. 300 steps of 32 random 2 s crops.
Why CPC here and not masked audio: reconstructing hidden spans gave features that vary
slowly over time and a fine-tune no better than random init; predicting the next frames
among negatives gives features that change from frame to frame (docs/qa_asr.md).
See docs/qa_asr.md for the measured CER and minutes.

`configs/cpc_ljspeech.py:smoke` trains 4 steps of a tiny model and 2 CTC epochs, in seconds.
"""
from configs import masked_audio_ljspeech


def get_config(arg: str = ''):
  c = masked_audio_ljspeech.ljspeech_config('cpc', arg, 'configs/cpc_ljspeech.py')
  c.cpc = dict(steps_ahead=(1, 2, 3, 4), temperature=0.1)
  if arg == 'smoke':
    c.cpc.steps_ahead = (1, 2)
  else:
    # 300 steps already reach 0.95 frame-prediction accuracy at k=1 (docs/qa_asr.md); the
    # fine-tunes, not pretraining, are most of this config's time.
    c.total_steps = 300
  return c
