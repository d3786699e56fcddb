"""SimCLR, ResNet-50, ImageNet-1k, 1000 epochs: the paper's headline run.

  python -m sslax.main --config configs/paper/simclr_r50.py --workdir gs://BUCKET/simclr_r50 \
      --config.data.data_dir=gs://BUCKET/tfds

Paper: Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of
Visual Representations", ICML 2020 (arXiv:2002.05709). Recipe (sec. 2.3, appendix B.1): batch
4096, LARS, lr = 0.3 x batch/256 = 4.8, weight decay 1e-6, 10 warmup epochs then cosine,
temperature 0.1 (Table 5, best at batch 4096), projection head 2048-2048-128, global BN.
Headline metric (Table 6): 69.3% top-1 linear evaluation on ImageNet after 1000 epochs.

Hardware: sized for TPU v4-32 (16 chips, 256 per chip) or 2x8 H100. Expected step time: about
0.4 s on a v4-32 (estimate: ~4.1 GFLOP per 224^2 forward, x3 for the backward, x2 views, x4096
= ~100 TFLOP per step at 35% bf16 MFU of 16 x 275 TFLOP/s); 312,750 steps, ~35 h wall time.
The paper reports ~1.5 h per 100 epochs of batch 4096 on 128 TPU v3 cores. Not measured here:
experiments/accelerator_check.py measures it (README "Accelerator check").

Data: see configs/paper/imagenet.py (manual download; one image size until issue #16).
Deviations from the paper: README "Paper-scale configs".
`configs/paper/simclr_r50.py:smoke`: 4 steps of a tiny ResNet on TFDS mock data (CI).
"""
from configs.paper import imagenet


def get_config(arg: str = ''):
  c = imagenet.imagenet('simclr', arg, 'configs/paper/simclr_r50.py')
  c.total_steps = imagenet.steps_for(1000, c.batch_size)
  c.simclr = dict(temperature=0.1, proj_hidden_dims=(2048,), proj_dim=128, chunked_loss=False)
  c.optim.name = 'lars'
  c.optim.learning_rate = 0.3
  c.optim.lr_scales_with_batch = True
  c.optim.weight_decay = 1e-6
  c.optim.momentum = 0.9
  c.optim.warmup_steps = imagenet.steps_for(10, c.batch_size)
  if arg == 'smoke':
    imagenet.smoke(c)
    c.simclr.update(proj_hidden_dims=(32,), proj_dim=16)
  return c
