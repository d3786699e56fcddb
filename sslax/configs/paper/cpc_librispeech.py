"""Contrastive predictive coding on LibriSpeech train-clean-100; keyword spotting downstream.

  python -m sslax.main --config configs/paper/cpc_librispeech.py \
      --workdir gs://BUCKET/cpc_librispeech --config.data.data_dir=gs://BUCKET/tfds

Paper: van den Oord, Li, Vinyals, "Representation Learning with Contrastive Predictive
Coding", 2018 (arXiv:1807.03748), sec. 3.1. Recipe: LibriSpeech 100 h, 16 kHz, windows of
20,480 samples (1.28 s), an encoder at 10 ms per step, predictions 12 steps ahead, negatives
from the minibatch, Adam lr 2e-4, 8 GPUs. Headline metric (Table 1): linear classification
from the context c_t: 97.4% speaker identification (251 speakers), 64.6% phone classification.

Data: `tfds:librispeech` (TFDS downloads and builds it: ~60 GB; its waveform feature is
`speech`, which sslax reads like `audio`). Pretraining on `train_clean100`. Downstream:
keyword spotting on `tfds:speech_commands` (12 classes, SUPERB's KS task), linear probe and kNN
on frozen features. The paper's speaker identification is not wired: TFDS stores LibriSpeech's
`speaker_id` as a plain integer, not a class label, and sslax's evaluators need the class
count; phone labels are not in TFDS at all.

Hardware: sized for 8x H100 (or a TPU v4-8, 64 clips per chip). Compile check on this CPU
(`python -m sslax.preflight --config configs/paper/cpc_librispeech.py --topology v4-8
--mock_data`, docs/scale.md): 14.4 of 32 GiB HBM per chip in bfloat16; 70.8 TFLOP per step as
compiled (most of it the 12 steps' [32,768 x 32,768] scores against every frame of the batch),
so 0.064 s at the v4's bf16 peak and ~0.16 s at 40% MFU: 100,000 steps in ~4.5 h of compute.
Not run on an accelerator yet: experiments/accelerator_check.py measures it.
Deviations from the paper: README "Paper-scale configs" (log-mel front end + transformer
instead of a strided conv encoder + GRU; warmup + cosine instead of a constant lr).
`configs/paper/cpc_librispeech.py:smoke`: 4 steps of a tiny model on TFDS mock data (CI).
"""
from sslax.configs import apc_audio

LIBRISPEECH = 'tfds:librispeech'


def get_config(arg: str = ''):
  c = apc_audio.audio_config('cpc', arg, 'configs/paper/cpc_librispeech.py')
  c.data.source = LIBRISPEECH
  c.eval.source = 'tfds:speech_commands'
  c.eval.test_split = 'test'
  c.data.train_split = 'train_clean100'
  c.data.in_memory = False       # 100 h of 16-bit audio: ~11 GB, read per record
  c.data.sample_rate = 16000
  c.data.clip_seconds = 1.28     # the paper's 20,480-sample windows
  c.batch_size = 256
  c.total_steps = 100_000
  c.log_every = 100
  # 25 ms windows, 10 ms hop (the paper's encoder rate), 80 mel bins; the crop is the window.
  c.audio.update(crop_seconds=1.28, n_fft=400, hop=160, n_mels=80, fmin=20.0, fmax=8000.0)
  c.model = dict(name='audio_transformer', width=768, depth=12, num_heads=12, mlp_dim=3072,
                 max_frames=128, conv_kernel=3, dtype='bfloat16')
  c.cpc = dict(steps_ahead=tuple(range(1, 13)), temperature=0.1)
  c.optim.name = 'adamw'
  c.optim.learning_rate = 2e-4
  c.optim.warmup_steps = 5000
  c.optim.weight_decay = 0.01
  c.optim.grad_clip_norm = 1.0
  c.checkpoint.every_steps = 2000
  c.evals.fine_tune.enabled = False   # the paper reports linear classification
  if arg == 'smoke':
    c.total_steps, c.batch_size, c.log_every, c.checkpoint.every_steps = 4, 16, 2, 2
    c.optim.warmup_steps = 1
    c.data.in_memory = True
    c.data.sample_rate = 8000
    c.data.clip_seconds = 0.25
    c.audio.update(crop_seconds=0.2, n_fft=200, hop=80, n_mels=16, fmax=4000.0)
    c.model.update(width=32, depth=1, num_heads=2, mlp_dim=64, max_frames=32)
    c.cpc.steps_ahead = (1, 2)
    c.eval.batch_size = 16
  return c
