"""SimCLR on CIFAR-10 (../shared/data/cifar10, 32x32), small ResNet.

  python -m sslax.main --config configs/simclr_images.py --workdir /tmp/simclr \
      --config.data.data_dir=/tmp/tfds_dev

Hardware and time: a 2-core CPU shared with other jobs, 200 steps of batch 128, 4.8 min
wall-clock including evaluation (an upper bound). Expected result: kNN@20 0.417 vs 0.313 at
random init, linear probe 0.451 vs 0.367 (README table). `configs/simclr_images.py:smoke`: 4
steps on digits.
"""
from sslax.configs import common_images


def get_config(arg: str = ''):
  c = common_images.images('simclr', arg)
  c.simclr = dict(temperature=0.2, proj_hidden_dims=(512,), proj_dim=128)
  if arg == 'smoke':
    c.simclr.update(proj_hidden_dims=(32,), proj_dim=16)
  return c
