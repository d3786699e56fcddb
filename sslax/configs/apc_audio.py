"""Autoregressive predictive coding (APC) on spoken digits (FSDD), log-mel frames, CPU.

  python -m sslax.main --config configs/apc_audio.py --workdir /tmp/sslax-apc

Data: `folder:../shared/data/fsdd` (Free Spoken Digit Dataset: 2,700 train / 300 test
recordings, 8 kHz mono, 10 digits, 6 speakers), cut or zero-padded to 1 s at fetch; training
sees random 0.5 s crops, evaluation the whole padded clip with its real frames masked.
Log-mel: 25 ms windows (n_fft 200), 10 ms hop, 40 mel bins. Model: causal conv front end +
2 pre-LN transformer blocks of width 64. Downstream: digit classification on the test split
(kNN, linear probe and fine-tuning on mean-pooled features), pretrained vs random init in results.json.
Hardware and time: a 2-core CPU; see the README's audio table for measured times and results.

This file also holds the audio defaults (`audio_config`) the other audio configs start from.
`configs/apc_audio.py:smoke` trains 4 steps of a tiny model on 0.25 s clips in seconds.
"""
from sslax import config_base

FSDD = 'folder:../shared/data/fsdd'


def audio_config(method: str, arg: str, config_file: str):
  """The shared audio config for `method`; `arg` is '' or 'smoke'."""
  config_base.check_arg(config_file, arg)
  c = config_base.base()
  c.method = method
  c.seed = 0
  c.total_steps = 1500
  c.batch_size = 64
  c.log_every = 100

  c.data.source = FSDD
  c.eval.source = FSDD
  c.eval.label_budgets = (1, 5, 25)   # labelled clips per class, beside all 270
  c.data.sample_rate = 8000       # every clip is resampled to this rate at fetch
  c.data.clip_seconds = 1.0       # and cut or zero-padded to this length (99% of FSDD fits)
  c.data.bad_files = 'error'      # an undecodable WAV: 'error' names it; 'skip' logs a count
  # A training clip with fewer real frames than the loss needs (apc/cpc: max k + 1; masked:
  # span + 1): 'pad' zero-pads and masks it, 'error' names the file, 'skip' logs a count.
  c.data.short_clips = 'pad'
  # The downstream label: 'label' (the class folder: the digit) or 'speaker' (from FSDD's
  # file names), e.g. python -m sslax.evaluate --workdir DIR --config.data.label_key=speaker
  c.data.label_key = 'label'

  c.audio = dict(crop_seconds=0.5, n_fft=200, hop=80, n_mels=40, fmin=20.0, fmax=4000.0,
                 gain_db=6.0, noise_std=0.0,
                 time_masks=2, time_width=5, freq_masks=2, freq_width=5)
  c.model = dict(name='audio_transformer', width=64, depth=2, num_heads=4, mlp_dim=128,
                 max_frames=100, conv_kernel=3, dtype='float32')

  c.evals.linear_probe.steps = 300
  # Fine-tuning the whole encoder + a linear head on the labelled train clips (digits, or
  # speakers with data.label_key), for the pretrained and the random-init encoder.
  # 8 epochs of FSDD's 2,430 train clips left after holding out 10% (~300 steps); the test
  # score is the best epoch's on that held-out part.
  c.evals.fine_tune = dict(type='fine_tune', source='', every_steps=0, task='classification',
                           epochs=8.0, batch_size=64, learning_rate=1e-3, weight_decay=1e-4)
  c.optim.name = 'adamw'
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 50
  c.optim.weight_decay = 1e-4
  c.checkpoint.every_steps = 300

  if arg == 'smoke':
    config_base.smoke(c)
    c.batch_size = 16
    c.data.clip_seconds = 0.25
    c.audio.update(crop_seconds=0.2, n_mels=16, time_width=2, freq_width=2)
    c.model.update(width=32, depth=1, num_heads=2, mlp_dim=64, max_frames=32)
    c.optim.warmup_steps = 1
  return c


def get_config(arg: str = ''):
  c = audio_config('apc', arg, 'configs/apc_audio.py')
  # APC's choices: L1, predict a few frames ahead so the model cannot just copy the present.
  c.apc = dict(steps_ahead=(3,), distance='l1')
  return c
