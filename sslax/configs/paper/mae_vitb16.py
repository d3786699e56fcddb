"""MAE, ViT-B/16, ImageNet-1k, 1600 epochs: the paper's ViT-B run.

  python -m sslax.main --config configs/paper/mae_vitb16.py --workdir gs://BUCKET/mae_vitb16 \
      --config.data.data_dir=gs://BUCKET/tfds

Paper: He, Chen, Xie, Li, Dollar, Girshick, "Masked Autoencoders Are Scalable Vision
Learners", CVPR 2022 (arXiv:2111.06377). Recipe (appendix A.1, Table 8): batch 4096, AdamW
beta (0.9, 0.95), lr = 1.5e-4 x batch/256 = 2.4e-3, weight decay 0.05, 40 warmup epochs then
cosine, 75% random masking, decoder 8 blocks of width 512, normalised-pixel loss, random
resized crop (0.2, 1) + flip only. Headline metric (Table 3 / sec. 4): ViT-B/16 fine-tuned
83.6% top-1 on ImageNet; linear probing 68.0%.

Hardware: sized for TPU v4-32 (256 images per chip) or 2x8 H100. Compile check on this CPU
(`python -m sslax.preflight --config configs/paper/mae_vitb16.py --topology v4-32 --mock_data`,
docs/scale.md): 14.5 of 32 GiB HBM per chip in bfloat16; 239 TFLOP per step as
compiled (XLA's count; the encoder sees 49 of 196 patches, the decoder all of them), so 0.054 s
per step at the v4's bf16 peak and ~0.14 s at 40% MFU: 500,400 steps in ~19 h of compute if the
input keeps up. Not run on a TPU yet: experiments/accelerator_check.py measures it.

Data: see configs/paper/imagenet.py. Deviations: README "Paper-scale configs".
`configs/paper/mae_vitb16.py:smoke`: 4 steps of a 1-block ViT on TFDS mock data (CI).
"""
from sslax.configs.paper import imagenet


def get_config(arg: str = ''):
  c = imagenet.imagenet('mae', arg, 'configs/paper/mae_vitb16.py')
  c.total_steps = imagenet.steps_for(1600, c.batch_size)
  c.model = imagenet.vit16(width=768, depth=12, num_heads=12, pool='mean')
  c.mae = dict(mask_ratio=0.75, decoder_width=512, decoder_depth=8, decoder_heads=16,
               norm_pix_loss=True, encoder_sees_all=False)
  c.augment.update(crop_scale=(0.2, 1.0), jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
  c.optim.name = 'adamw'
  c.optim.learning_rate = 1.5e-4
  c.optim.lr_scales_with_batch = True
  c.optim.b1, c.optim.b2 = 0.9, 0.95
  c.optim.weight_decay = 0.05
  c.optim.warmup_steps = imagenet.steps_for(40, c.batch_size)
  if arg == 'smoke':
    imagenet.smoke(c)
    c.model.update(patch_size=8, width=16, depth=1, num_heads=2, mlp_ratio=2)
    c.mae.update(decoder_width=16, decoder_depth=1, decoder_heads=2)
  return c
