"""Barlow Twins on CIFAR-10 (../shared/data/cifar10, 32x32), small ResNet.

  python -m sslax.main --config configs/barlow_images.py --workdir /tmp/barlow \
      --config.data.data_dir=/tmp/tfds_dev

Hardware and time: a 2-core CPU shared with other jobs, 200 steps of batch 128, 4.8 min
wall-clock including evaluation (an upper bound). Expected result: kNN@20 0.371 vs 0.313 at
random init, linear probe 0.413 vs 0.367 (README table). `configs/barlow_images.py:smoke`: 4
steps on digits.
"""
from sslax.configs import common_images


def get_config(arg: str = ''):
  c = common_images.images('barlow', arg)
  # lambda ~ 1/D keeps the off-diagonal sum comparable to the diagonal one (paper: 5e-3 at
  # D = 8192; solo-learn uses 5e-3 at D = 2048 on CIFAR).
  c.barlow = dict(proj_hidden_dims=(512, 512), proj_dim=512, off_diagonal_weight=5e-3)
  if arg == 'smoke':
    c.barlow.update(proj_hidden_dims=(32,), proj_dim=16)
  return c
