"""Masked-segment pretraining on LJSpeech's training audio, then `asr`: a CTC character
head fine-tuned from the pretrained vs the random-init encoder.

  python -m sslax.main --config configs/masked_audio_ljspeech.py --workdir /tmp/sslax-ljspeech

Data: `asr:../shared/data/ljspeech` (the first 325 LJ Speech clips, one speaker: 265 train /
60 test, 16 kHz; see ../shared/data/README.md), resampled to 8 kHz at fetch and zero-padded
to 10.1 s (the longest clip is 10.04 s; `asr` refuses a clip that would be cut). Pretraining
reads the train audio only (transcripts unused): random 2 s crops, spans of 5 frames (100 ms)
hidden and reconstructed (configs/masked_audio.py's method). Front end: 25 ms windows, 20 ms
hop (50 frames/s, ~3x the ~15 characters/s of read speech, room for CTC's blanks), 40 mel
bins. Model: conv front end + 3 bidirectional pre-LN blocks of width 128.
Pretraining: 600 steps of 32 crops (0.53 M parameters).
Downstream: `asr` fine-tunes encoder + CTC head on the train clips less a held-out 10% (the
best epoch by held-out CER) and reports WER and CER on the 60 test clips, greedy decoding:
40 epochs of 30 steps at batch 8, lr 3e-3, 3 fine-tune seeds per encoder (`eval.num_seeds`).
Measured (docs/qa_asr.md): test CER 0.711 +- 0.204 pretrained vs 0.583 +- 0.026 random
init: the random-init fine-tunes all left CTC's blank-only plateau, the pretrained ones'
spread (and best epochs 700 +- 486 steps) says one of three did not, so this config does
not show pretraining paying off; 89 CPU-minutes in all (`/usr/bin/time`), measured with
every `asr` batch padded to 10.1 s (`--config.evals.asr.length_buckets=0` reproduces it; the
default now cuts batches to their clips, ~1/3 less CPU). CPC on the same data does better
(configs/cpc_ljspeech.py).

This file also holds the LJSpeech defaults (`ljspeech_config`) that configs/cpc_ljspeech.py
starts from. `configs/masked_audio_ljspeech.py:smoke` trains 4 steps of a tiny model and 2
CTC epochs, in seconds.
"""
from sslax.configs import apc_audio

LJSPEECH = 'asr:../shared/data/ljspeech'


def get_config(arg: str = ''):
  c = ljspeech_config('masked_audio', arg, 'configs/masked_audio_ljspeech.py')
  c.masked_audio = dict(start_prob=0.065, span=5)
  if arg == 'smoke':
    c.masked_audio.span = 3
  return c


def ljspeech_config(method: str, arg: str, config_file: str):
  """LJSpeech's data, front end, model and `asr` evaluator for an audio `method`; the
  caller adds the method's own settings. `arg` is '' or 'smoke'."""
  c = apc_audio.audio_config(method, arg, config_file)
  c.data.source = c.eval.source = LJSPEECH
  c.eval.label_budgets = ()   # transcripts, no class labels to budget
  c.data.sample_rate = 8000
  c.data.clip_seconds = 10.1
  c.total_steps = 600
  c.batch_size = 32
  c.audio.update(crop_seconds=2.0, n_fft=200, hop=160, n_mels=40, fmax=4000.0)
  c.model.update(width=128, depth=3, num_heads=4, mlp_dim=256, max_frames=512)
  c.eval.raw_input = False   # no class labels
  c.eval.num_seeds = 3   # whether CTC leaves its plateau differs between seeds
  c.eval.batch_size = 32
  del c.evals['knn'], c.evals['linear_probe'], c.evals['fine_tune']
  # CTC from a zero head first predicts only blanks. Measured on all 239 clips
  # (docs/qa_asr.md): batch 16, lr 1e-3, 300 steps; batch 8, lr 5e-3, 750 steps; batch 8,
  # lr 3e-3, 600 steps all stay there for both encoders; 1,200 steps (40 epochs) leave it.
  c.evals.asr = dict(type='asr', source='', every_steps=0, epochs=40.0, batch_size=8,
                     learning_rate=3e-3, weight_decay=0.01, warmup_steps=60, val_fraction=0.1,
                     freeze_steps=0, length_buckets=10, eval_every=0, max_train=0,
                     max_test=0)
  if arg == 'smoke':
    c.eval.num_seeds = 1
    c.total_steps, c.batch_size = 4, 8
    c.data.clip_seconds = 10.1
    c.audio.update(crop_seconds=0.5, n_mels=16)
    c.model.update(width=32, depth=1, num_heads=2, mlp_dim=64, max_frames=512)
    # At most 2 compiled shapes per batch cut (10 at full size): the smoke's few batches
    # still exercise the cutting, with fewer compilations (tests/test_qa_asr_runs.py).
    c.evals.asr.update(epochs=2.0, batch_size=8, warmup_steps=0, val_fraction=0.25,
                       max_train=24, max_test=8, length_buckets=2)
  return c
