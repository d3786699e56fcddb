"""ImageNet-1k settings the paper-scale image configs share, and their `smoke` variant.

Not an experiment itself: configs/paper/{simclr_r50,byol_r50,mae_vitb16}.py start from
`imagenet(method, arg)`, the ViT-S/16 ones (mocov3_vits16, dino_vits16) from
`vit_s16(method, arg, ...)`; `vit16` is the papers' ViT on 16x16 patches (ViT-S and ViT-B).

Data: `tfds:imagenet2012` (1,281,167 train / 50,000 validation images). TFDS cannot download
it: fetch ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org into
DATA_DIR/downloads/manual/, then build it once, e.g.
`python -c "import tensorflow_datasets as tfds; tfds.data_source('imagenet2012',
data_dir='gs://BUCKET/tfds')"` (experiments/tpu_vm.sh names the step).
ImageNet's JPEGs have many sizes: variable-size sources take the host path (data/host_crops.py:
decode, random-resized-crop and flip in grain worker processes, `data.num_workers`). TFDS hands
over decoded images, so `tfds:imagenet2012` gets no reduced-scale JPEG decode; an ImageNet
folder (`folder:DIR` with DIR/<split>/<class>/*.JPEG) does. The `smoke` variant runs on TFDS
mock data in this process (tests/test_paper_configs.py).
"""
import ml_collections

from sslax import config_base
from sslax.configs import common_images

IMAGENET = 'tfds:imagenet2012'
TRAIN_IMAGES = 1_281_167


def steps_for(epochs: int, batch_size: int) -> int:
  return epochs * TRAIN_IMAGES // batch_size


def imagenet(method: str, arg: str, config_file: str) -> ml_collections.ConfigDict:
  config_base.check_arg(config_file, arg)
  c = config_base.base()
  c.method = method
  c.seed = 0
  c.batch_size = 4096
  c.log_every = 100
  c.data.source = IMAGENET
  c.data.train_split = 'train'
  c.data.image_size = 224
  c.data.in_memory = False          # 140 GB of JPEGs: read records, never decode all at once
  c.eval.source = IMAGENET
  c.eval.test_split = 'validation'
  c.eval.batch_size = 1024
  # The semi-supervised budgets SimCLR (Chen et al. 2020, sec. 7) and BYOL report: 1% and 10%
  # of the labels (~13 and ~128 images per class).
  c.eval.label_budgets = (0.01, 0.1)
  # ResNet-50 (He et al. 2016): ImageNet stem, bottleneck blocks 3-4-6-3, 2048-d features.
  c.model = dict(name='resnet', stem='imagenet', stem_width=64, widths=(64, 128, 256, 512),
                 blocks=(3, 4, 6, 3), block='bottleneck', norm='batch',
                 zero_init_residual=True, conv_impl='auto', dtype='bfloat16')
  # SimCLR's ImageNet augmentation (appendix A): crop (0.08, 1), flip, colour jitter of
  # strength 1 with p 0.8, greyscale 0.2, Gaussian blur p 0.5 with sigma in (0.1, 2).
  c.augment = dict(crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
                   jitter_prob=0.8, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2,
                   grayscale_prob=0.2, blur_prob=0.5, blur_sigma=(0.1, 2.0), solarize_prob=0.0,
                   rotation_degrees=0.0, noise_std=0.0)
  # Linear evaluation on frozen features (the papers' headline protocol, here the closed-form
  # probe on the full train set) and kNN; 1.28M features of 2048 floats need ~10 GB of host RAM.
  c.evals.linear_probe.steps = 1000
  c.checkpoint.every_steps = 2000
  c.checkpoint.max_to_keep = 2
  return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Tiny shapes for CI on CPU: 4 steps + resume on TFDS mock data of one image size."""
  c.total_steps = 4
  c.batch_size = 16
  c.log_every = 2
  c.checkpoint.every_steps = 2
  c.data.image_size = 32
  c.data.in_memory = True
  c.eval.batch_size = 16
  c.eval.label_budgets = ()   # 48 mock images over 1,000 classes
  c.evals.linear_probe.update(steps=20, l2_grid=(1e-4, 1e-2))
  c.optim.warmup_steps = 1
  if c.model.name == 'resnet':
    c.model.update(stem_width=8, widths=(8, 16), blocks=(1, 1))
  return c


def vit16(width: int, depth: int, num_heads: int, pool: str, **extra) -> dict:
  """A ViT on 16x16 patches as the papers size them: MLP 4x the width, 2-D sin-cos positions
  (they fit any crop size), bfloat16 compute."""
  return dict(name='vit', patch_size=16, width=width, depth=depth, num_heads=num_heads,
              mlp_ratio=4, pool=pool, pos_emb='sincos', dtype='bfloat16', **extra)


def vit_s16(method: str, arg: str, config_file: str, *, epochs: int, batch_size: int,
            checkpoint_every: int, drop_path_rate: float) -> ml_collections.ConfigDict:
  """What MoCo v3's and DINO's ViT-S/16 on ImageNet share: data and eval splits, ViT-S/16
  with the class token as the feature, AdamW with the rate scaled by batch/256, BYOL's colour
  augmentation, a 5000-step linear probe. The config adds its method, learning rate, warmup,
  weight decay and blur, then calls `vit_s16_smoke` last for `smoke`."""
  config_base.check_arg(config_file, arg)
  c = common_images.images(method, '')
  c.batch_size = batch_size
  c.total_steps = steps_for(epochs, batch_size)
  c.log_every = 100
  c.data.source = c.eval.source = IMAGENET
  c.data.in_memory = False
  c.data.image_size = 224   # DINO's global crops
  c.eval.train_split = 'train'
  c.eval.test_split = 'validation'
  c.eval.batch_size = 1024
  c.eval.label_budgets = (0.01, 0.1)   # as `imagenet`
  c.checkpoint.every_steps = checkpoint_every
  c.model = vit16(width=384, depth=12, num_heads=6, pool='cls', drop_path_rate=drop_path_rate)
  # BYOL's colour augmentation (Table 6) as both papers use it; its per-view solarisation
  # (0 / 0.2) averaged, as sslax applies one policy to every view.
  c.augment.update(jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
                   grayscale_prob=0.2, blur_sigma=(0.1, 2.0), solarize_prob=0.1)
  c.optim.update(name='adamw', lr_scales_with_batch=True, b1=0.9, b2=0.999)
  c.evals.linear_probe.steps = 5000
  return c


def vit_s16_smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`vit_s16`'s tiny shapes for CI on CPU (32 px, patch 8, 2 blocks of width 64, batch 16,
  4 steps); the method's heads shrink in its config."""
  c.batch_size = 16
  c.total_steps = 4
  c.log_every = 2
  c.checkpoint.every_steps = 2
  c.data.image_size = 32
  c.eval.batch_size = 16
  c.eval.label_budgets = ()   # 48 mock images over 1,000 classes
  c.evals.linear_probe.update(steps=20, l2_grid=(1e-3,))
  c.model.update(patch_size=8, width=64, depth=2, num_heads=2, mlp_ratio=2)
  c.optim.warmup_steps = 1
  return c
