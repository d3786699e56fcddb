"""MoCo v3, ViT-S/16 on ImageNet-1k at the paper's scale (Chen, Xie, He 2021, "An Empirical
Study of Training Self-Supervised Vision Transformers", sec. 4 / appendix; official repo
facebookresearch/moco-v3).

  python -m sslax.main --config configs/paper/mocov3_vits16.py --workdir gs://BUCKET/mocov3

Recipe: batch 4096, AdamW, lr 1.5e-4 * B/256 = 2.4e-3 with 40 warmup epochs then cosine,
weight decay 0.1, temperature 0.2, EMA momentum 0.99 -> 1 (cosine), 300 epochs; 3-layer
projector and 2-layer predictor (4096 hidden, 256 out, BatchNorm), 2-D sin-cos positions, the
class token as the feature; bfloat16 compute with float32 parameters (the paper used AMP).
Not reproduced: the frozen random patch projection (their stability trick), BYOL's asymmetric
blur/solarize (one symmetric setting in between here), the BN-without-affine last layers.

Paper's headline metric: ImageNet linear probe 73.2% top-1 (ViT-S, 300 epochs).
Hardware: 8x H100 (80 GB; 512 images per device) or TPU v4-32 (256 per chip). Compile check on
this CPU (`python -m sslax.preflight --config configs/paper/mocov3_vits16.py --topology v4-32
--mock_data`, docs/scale.md): 16.4 of 32 GiB HBM per chip; 307 TFLOP per step as compiled (2
views x forward and backward + 2 target forwards), so 0.070 s at the v4's bf16 peak and ~0.17 s
at 40% MFU: 93,835 steps in ~4.5 h of compute. Likely input-bound instead (~16k decoded JPEGs/s
across the hosts at that rate). Not run on an accelerator yet.

`:smoke`: the same code path with tiny shapes (32 px, patch 8, 2 blocks of width 64, batch 16,
4 steps) for CI with mocked ImageNet.
"""
import ml_collections

from sslax.configs.paper import imagenet


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = imagenet.vit_s16('mocov3', arg, 'configs/paper/mocov3_vits16.py', epochs=300,
                       batch_size=4096, checkpoint_every=2000, drop_path_rate=0.0)
  c.mocov3 = dict(proj_hidden_dims=(4096, 4096), proj_dim=256, pred_hidden_dims=(4096,),
                  momentum_base=0.99, temperature=0.2, head_batch_norm=True,
                  chunked_loss=True)   # [n, N] logits per device (losses.moco_v3_loss_chunked)
  # BYOL's per-view blur (1.0 / 0.1) averaged.
  c.augment.update(crop_scale=(0.08, 1.0), blur_prob=0.55)
  c.optim.update(learning_rate=1.5e-4, warmup_steps=imagenet.steps_for(40, c.batch_size),
                 weight_decay=0.1)

  if arg == 'smoke':
    imagenet.vit_s16_smoke(c)
    c.mocov3.update(proj_hidden_dims=(64, 64), proj_dim=32, pred_hidden_dims=(64,))
    c.augment.update(crop_scale=(0.5, 1.0))
  return c
