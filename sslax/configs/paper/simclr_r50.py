"""SimCLR, ResNet-50, ImageNet-1k, 1000 epochs: the paper's headline run.

  python -m sslax.main --config configs/paper/simclr_r50.py --workdir gs://BUCKET/simclr_r50 \
      --config.data.data_dir=gs://BUCKET/tfds

Paper: Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of
Visual Representations", ICML 2020 (arXiv:2002.05709). Recipe (sec. 2.3, appendix B.1): batch
4096, LARS, lr = 0.3 x batch/256 = 4.8, weight decay 1e-6, 10 warmup epochs then cosine,
temperature 0.1 (Table 5, best at batch 4096), projection head 2048-2048-128, global BN.
Headline metric (Table 6): 69.3% top-1 linear evaluation on ImageNet after 1000 epochs.

Hardware: sized for TPU v4-32 (256 images per chip) or 2x8 H100. Compile check on this CPU
(`python -m sslax.preflight --config configs/paper/simclr_r50.py --topology v4-32 --mock_data`,
docs/scale.md): 18.2 of 32 GiB HBM per chip in bfloat16; 198 TFLOP per step as
compiled (XLA's count; ResNet-50 is 4.1 GMACs = 8.2 GFLOP per 224^2 forward, x3 with the
backward, x2 views, x4096 = 201 T), so 0.045 s per step at the v4's bf16 peak and ~0.11 s at
40% MFU: 312,750 steps in ~10 h of compute if the input keeps up. Not run on a TPU yet:
experiments/accelerator_check.py measures it.
The paper reports ~1.5 h per 100 epochs of batch 4096 on 128 TPU v3 cores.

Data: see configs/paper/imagenet.py (manual download; one image size until issue #16).
Deviations from the paper: README "Paper-scale configs".
`configs/paper/simclr_r50.py:smoke`: 4 steps of a tiny ResNet on TFDS mock data (CI).
"""
from sslax.configs.paper import imagenet


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
