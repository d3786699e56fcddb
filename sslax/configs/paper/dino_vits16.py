"""DINO, ViT-S/16 on ImageNet-1k at the paper's scale (Caron et al. 2021, "Emerging
Properties in Self-Supervised Vision Transformers", sec. 3-4 and appendix; official repo
facebookresearch/dino).

  python -m sslax.main --config configs/paper/dino_vits16.py --workdir gs://BUCKET/dino

Recipe: multi-crop 2 x 224 (scale 0.4-1) + 10 x 96 (scale 0.05-0.4), batch 1024, AdamW,
lr 5e-4 * B/256 = 2e-3 with 10 warmup epochs then cosine to 1e-6 x, weight decay 0.04,
gradient clipping 3.0, teacher temperature 0.04 -> 0.07 over 30 epochs, student 0.1, centre
momentum 0.9, teacher momentum 0.996 -> 1 (cosine), head 2048-2048-256 -> 65,536, drop path 0.1,
800 epochs, the class token as the feature, bfloat16 compute (the paper used AMP).
Not reproduced: the weight-decay schedule 0.04 -> 0.4 (constant 0.04 here), the weight-
normalised last head layer, freezing the last layer in epoch 1, and learned position embeddings
interpolated to the 96 px crops (2-D sin-cos positions here, which fit any crop size).

Paper's headline metric: ImageNet linear probe 77.0% and k-NN 74.5% top-1 (ViT-S/16, 800
epochs).
Hardware: 8x H100 (80 GB; 128 images x 12 crops per device) or TPU v4-32 (64 per chip).
Compile check on this CPU (`python -m sslax.preflight --config configs/paper/dino_vits16.py
--topology v4-32 --mock_data`, docs/scale.md): 12.2 of 32 GiB HBM per chip; 128 TFLOP per step
as compiled, so 0.029 s at the v4's bf16 peak and ~0.073 s at 40% MFU: 1,000,911 steps in ~20 h
of compute. (The paper's Table 8: 24.2 h per 100 epochs on 16 V100s.) Not run on an
accelerator yet.

`:smoke`: the same code path with tiny shapes (32 px globals, 16 px locals, patch 8, 2 blocks
of width 64, batch 16, 4 steps) for CI with mocked ImageNet.
"""
import ml_collections

from sslax.configs.paper import imagenet


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = imagenet.vit_s16('dino', arg, 'configs/paper/dino_vits16.py', epochs=800,
                       batch_size=1024, checkpoint_every=5000, drop_path_rate=0.1)
  c.dino = dict(num_global=2, num_local=10, local_size=96, global_scale=(0.4, 1.0),
                local_scale=(0.05, 0.4), head_hidden_dims=(2048, 2048), bottleneck_dim=256,
                out_dim=65536, student_temperature=0.1, teacher_temperature=0.07,
                warmup_teacher_temperature=0.04,
                warmup_teacher_temperature_steps=imagenet.steps_for(30, c.batch_size),
                center_momentum=0.9, momentum_base=0.996)
  c.augment.blur_prob = 0.5   # DINO's blur, averaged over the crops
  c.optim.update(learning_rate=5e-4, warmup_steps=imagenet.steps_for(10, c.batch_size),
                 end_lr_fraction=1e-6 / 2e-3, weight_decay=0.04, grad_clip_norm=3.0)
  c.evals.knn.update(k=20, temperature=0.07)

  if arg == 'smoke':
    imagenet.vit_s16_smoke(c)
    c.dino.update(num_local=2, local_size=16, head_hidden_dims=(64,), bottleneck_dim=16,
                  out_dim=128, warmup_teacher_temperature_steps=2)
  return c
