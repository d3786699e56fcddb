"""The settings every `configs/<method>_images.py` shares: CIFAR-10 from
`../shared/data/cifar10`, a small CIFAR-stem ResNet, SimCLR-style CIFAR augmentation, AdamW,
and the `smoke` variant (4 steps on `builtin:digits`, a tiny model, seconds on CPU; with
`--config.data.source=folder:../shared/data/cifar10 --config.eval.source=...` the same on
CIFAR-10, evaluated on 256 / 128 images: under a minute including the first data build).

Not an experiment itself; the method configs start from `images(method, arg)`.
"""
import ml_collections

from sslax import config_base


def images(method: str, arg: str) -> ml_collections.ConfigDict:
  """A base config for `method` on images; `arg` is '' (CIFAR-10) or 'smoke'."""
  config_base.check_arg(f'configs/{method}_images.py', arg)
  c = config_base.base()
  c.method = method
  # Budget for a shared 2-core CPU: ~1.3 s per SimCLR step at batch 128 with this backbone
  # (XLA's CPU convolutions; widths 32-64-128 measured 10.5 s per step at batch 256), so 200
  # steps plus evaluation is ~8 minutes. On an accelerator raise all three.
  c.total_steps = 200
  c.batch_size = 128
  c.log_every = 25
  c.data.source = 'folder:../shared/data/cifar10'
  # All 50k training images for pretraining; the evaluators' labelled train set is a 10k
  # slice (the folder builder stores a fixed random permutation, so a slice samples every
  # class), which keeps the kNN bank and the probe's features small on a CPU.
  c.data.train_split = 'train'
  c.data.image_size = 32
  c.eval.source = 'folder:../shared/data/cifar10'
  c.eval.train_split = 'train[:10000]'
  c.eval.label_budgets = (1, 5, 25)   # labelled images per class, beside all ~1,000

  # A small CIFAR-stem ResNet: widths 16-32-64, one basic block per stage.
  c.model = dict(name='resnet', stem='cifar', stem_width=16, widths=(16, 32, 64),
                 blocks=(1, 1, 1), block='basic', norm='batch', zero_init_residual=False,
                 conv_impl='auto', dtype='float32')   # conv_impl: sslax/models/resnet.py's CONV_IMPLS
  # SimCLR's CIFAR recipe: no blur at 32x32 (it erases most of the image).
  c.augment = dict(crop_scale=(0.2, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
                   jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                   grayscale_prob=0.2, blur_prob=0.0, blur_sigma=(0.1, 2.0), solarize_prob=0.0,
                   rotation_degrees=0.0, noise_std=0.0)

  c.optim.name = 'adamw'
  c.optim.learning_rate = 2e-3
  c.optim.warmup_steps = 20
  c.optim.weight_decay = 1e-4
  c.checkpoint.every_steps = 200

  if arg == 'smoke':
    config_base.smoke(c)
    c.batch_size = 32
    c.data.source = 'builtin:digits'
    c.data.image_size = 16
    c.eval.source = 'builtin:digits'
    c.eval.train_split = 'train'
    c.model.stem_width = 8
    c.model.widths = (8, 16)
    c.model.blocks = (1, 1)
    c.augment.update(crop_scale=(0.5, 1.0), flip_prob=0.0, saturation=0.0, hue=0.0,
                     grayscale_prob=0.0)
  return c


def use_vit(c: ml_collections.ConfigDict, smoke: bool = False) -> ml_collections.ConfigDict:
  """Swaps the ResNet for a ViT (any image method takes one, as MAE does), in place.

  `pool='cls'`: the siamese and distillation losses train the class token as the image's
  summary (MoCo v3 and DINO use it for their heads and linear probes). A small ViT for
  32x32 CIFAR (patch 4: 64 tokens); with `smoke`, a 2-block width-32 one for 16x16 digits.
  """
  c.model = dict(name='vit', patch_size=4, width=192, depth=6, num_heads=3, mlp_ratio=4,
                 pool='cls', pos_emb='sincos', drop_path_rate=0.0, dtype='float32')
  if smoke:
    c.model.update(width=32, depth=2, num_heads=2, mlp_ratio=2)
  return c
