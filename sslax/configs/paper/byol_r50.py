"""BYOL, ResNet-50, ImageNet-1k, 1000 epochs: the paper's headline run.

  python -m sslax.main --config configs/paper/byol_r50.py --workdir gs://BUCKET/byol_r50 \
      --config.data.data_dir=gs://BUCKET/tfds

Paper: Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
NeurIPS 2020 (arXiv:2006.07733). Recipe (sec. 3.2, appendix B/C): batch 4096, LARS (biases and
BN excluded), lr = 0.2 x batch/256 = 3.2, weight decay 1.5e-6, 10 warmup epochs then cosine,
target EMA tau from 0.996 to 1 on a cosine, projector and predictor MLPs 4096-256 with BN.
Headline metric (Table 1): 74.3% top-1 linear evaluation on ImageNet after 1000 epochs.

Hardware: sized for TPU v4-32 (256 images per chip) or 2x8 H100. Compile check on this CPU
(`python -m sslax.preflight --config configs/paper/byol_r50.py --topology v4-32 --mock_data`,
docs/scale.md): 18.8 of 32 GiB HBM per chip in bfloat16; 264 TFLOP per step as
compiled (XLA's count; SimCLR's step plus the target network's forwards and the predictor), so
0.060 s per step at the v4's bf16 peak and ~0.15 s at 40% MFU: 312,750 steps in ~13 h of
compute if the input keeps up. Not run on a TPU yet: experiments/accelerator_check.py measures
it.
The paper: ~8 h for 300 epochs on 512 TPU v3 cores.

Data: see configs/paper/imagenet.py. Deviations: README "Paper-scale configs" (notably one
symmetric augmentation for both views: BYOL's blur 1.0/0.1 and solarisation 0/0.2 differ per view).
`configs/paper/byol_r50.py:smoke`: 4 steps of a tiny ResNet on TFDS mock data (CI).
"""
from sslax.configs.paper import imagenet


def get_config(arg: str = ''):
  c = imagenet.imagenet('byol', arg, 'configs/paper/byol_r50.py')
  c.total_steps = imagenet.steps_for(1000, c.batch_size)
  c.byol = dict(proj_hidden_dims=(4096,), proj_dim=256, pred_hidden_dims=(4096,),
                momentum_base=0.996)
  # BYOL's colour jitter (Table 6): brightness/contrast 0.4, saturation 0.2, hue 0.1; blur and
  # solarisation at the mean of the two views' probabilities (sslax applies one policy).
  c.augment.update(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_prob=0.55,
                   solarize_prob=0.1)
  c.optim.name = 'lars'
  c.optim.learning_rate = 0.2
  c.optim.lr_scales_with_batch = True
  c.optim.weight_decay = 1.5e-6
  c.optim.momentum = 0.9
  c.optim.warmup_steps = imagenet.steps_for(10, c.batch_size)
  if arg == 'smoke':
    imagenet.smoke(c)
    c.byol.update(proj_hidden_dims=(32,), proj_dim=16, pred_hidden_dims=(32,))
  return c
