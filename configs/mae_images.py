"""MAE on CIFAR-10 (../shared/data/cifar10, 32x32), tiny ViT (patch 4, width 128, 4 encoder +
2 decoder blocks), 75% masking.

  python -m sslax.main --config configs/mae_images.py --workdir /tmp/mae \
      --config.data.data_dir=/tmp/tfds_dev

Hardware and time: a 2-core shared CPU (see the README's results table for steps and
minutes). Expected result (STACK.md calibration, 10 min): kNN@20 ~0.38 vs ~0.30 at random
init, logistic probe ~0.50 vs ~0.42. `configs/mae_images.py:smoke`: 4 steps on digits.
"""
from configs import common_images


def get_config(arg: str = ''):
  c = common_images.images('mae', arg)
  c.model = dict(name='vit', patch_size=4, width=128, depth=4, num_heads=4, mlp_ratio=4,
                 pool='mean', pos_emb='sincos')
  c.mae = dict(mask_ratio=0.75, decoder_width=128, decoder_depth=2, decoder_heads=4,
               norm_pix_loss=True, encoder_sees_all=False)
  # MAE needs only crops and flips (paper sec. 4); colour changes would be reconstructed.
  c.augment.update(jitter_prob=0.0, grayscale_prob=0.0, crop_scale=(0.35, 1.0))
  c.optim.learning_rate = 1.5e-3
  c.optim.weight_decay = 0.05
  c.optim.b2 = 0.95
  if arg == 'smoke':
    c.model.update(width=16, depth=1, num_heads=2, mlp_ratio=2)
    c.mae.update(decoder_width=16, decoder_depth=1, decoder_heads=2)
  return c
