"""BYOL on CIFAR-10 (../shared/data/cifar10, 32x32), small ResNet.

  python -m sslax.main --config configs/byol_images.py --workdir /tmp/byol \
      --config.data.data_dir=/tmp/tfds_dev

Hardware and time: a 2-core shared CPU, 400 steps of batch 256 (see the README's results
table for the measured minutes). Expected result: kNN@20 on the test split above the
random-init encoder's (README table). `configs/byol_images.py:smoke`: 4 steps on digits.
"""
from configs import common_images


def get_config(arg: str = ''):
  c = common_images.images('byol', arg)
  # BYOL's 4096-256 projector and predictor, scaled down with the backbone.
  c.byol = dict(proj_hidden_dims=(512,), proj_dim=128, pred_hidden_dims=(512,),
                momentum_base=0.99)
  if arg == 'smoke':
    c.byol.update(proj_hidden_dims=(32,), proj_dim=16, pred_hidden_dims=(32,))
  return c
