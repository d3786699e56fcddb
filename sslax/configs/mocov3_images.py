"""MoCo v3 on CIFAR-10 (../shared/data/cifar10, 32x32), small ResNet.

  python -m sslax.main --config configs/mocov3_images.py --workdir /tmp/mocov3 \
      --config.data.data_dir=/tmp/tfds_dev

Hardware and time: a 2-core CPU shared with other jobs, 200 steps of batch 128, 5.2 min
wall-clock including evaluation (an upper bound). Expected result: kNN@20 0.391 vs 0.332 at
random init, linear probe 0.417 vs 0.392 (README table). `configs/mocov3_images.py:smoke`: 4
steps on digits.
"""
from sslax.configs import common_images


def get_config(arg: str = ''):
  c = common_images.images('mocov3', arg)
  c.mocov3 = dict(proj_hidden_dims=(512,), proj_dim=128, pred_hidden_dims=(512,),
                  momentum_base=0.99, temperature=0.2)
  if arg == 'smoke':
    c.mocov3.update(proj_hidden_dims=(32,), proj_dim=16, pred_hidden_dims=(32,))
  return c
