"""VICReg on CIFAR-10 (../shared/data/cifar10, 32x32), small ResNet.

  python -m sslax.main --config configs/vicreg_images.py --workdir /tmp/vicreg \
      --config.data.data_dir=/tmp/tfds_dev

Hardware and time: a 2-core CPU shared with other jobs, 200 steps of batch 128, 4.8 min
wall-clock including evaluation (an upper bound). Expected result: kNN@20 0.407 vs 0.313 at
random init, linear probe 0.424 vs 0.367 (README table). `configs/vicreg_images.py:smoke`: 4
steps on digits.
"""
from sslax.configs import common_images


def get_config(arg: str = ''):
  c = common_images.images('vicreg', arg)
  # The paper's weights (lambda = mu = 25, nu = 1) with a smaller expander.
  c.vicreg = dict(proj_hidden_dims=(512, 512), proj_dim=512, invariance_weight=25.0,
                  variance_weight=25.0, covariance_weight=1.0)
  if arg == 'smoke':
    c.vicreg.update(proj_hidden_dims=(32,), proj_dim=16)
  return c
