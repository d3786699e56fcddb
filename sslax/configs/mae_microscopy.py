"""MAE pretraining on the microscopy images of dsb2018 (or `:bccd`), scored like
configs/simclr_microscopy.py: a ViT's patch tokens go to the `segmentation` evaluator
(linear per-pixel classifier on the frozen tokens; fine-tuned with a progressive
upsampling decoder), against its random initialisation (docs/dense.md).

  python -m sslax.main --config configs/mae_microscopy.py --workdir /tmp/dsb_mae \
      --config.data.data_dir=/tmp/tfds_dev

A ViT with patch 8 at 64x64 (64 tokens; width 128, 4 blocks), a 1-block width-64 decoder,
75% masking on per-patch-normalised pixels (configs/mae_images.py's recipe). One host view
per image (MAE's crop and flip), so a step decodes half what SimCLR's does. Hardware and time:
a 2-core CPU, 300 steps of batch 64 (bccd: 1.5 min idle). Measured (docs/dense.md): no gain
over random init in this budget, on dsb2018 (mIoU) or bccd (mAP@0.5 0.309 +- 0.010 vs
0.302 +- 0.048, 3 seeds). `:smoke`: 3 steps at 16x16.
"""
from sslax.configs import microscopy


def get_config(arg: str = ''):
  c, smoke = microscopy.microscopy('mae', arg, 'configs/mae_microscopy.py', total_steps=300,
                                   checkpoint_every=150)
  c.model = dict(name='vit', patch_size=8, width=128, depth=4, num_heads=4, mlp_ratio=4,
                 pool='mean', pos_emb='sincos', drop_path_rate=0.0, dtype='float32')
  c.mae = dict(mask_ratio=0.75, decoder_width=64, decoder_depth=1, decoder_heads=4,
               norm_pix_loss=True, encoder_sees_all=False)
  c.augment.update(jitter_prob=0.0, grayscale_prob=0.0, crop_scale=(0.2, 1.0))
  c.optim.learning_rate = 1.5e-3
  c.optim.weight_decay = 0.05
  c.optim.b2 = 0.95
  c.optim.warmup_steps = 20
  if smoke:
    c.model.update(patch_size=4, width=16, depth=1, num_heads=2, mlp_ratio=2)
    c.mae.update(decoder_width=16, decoder_depth=1, decoder_heads=2)
  return c
