"""VICReg (Bardes, Ponce, LeCun 2022, "VICReg: Variance-Invariance-Covariance Regularization
for Self-Supervised Learning").

One encoder + expander on both views; the loss keeps the two embeddings close (invariance),
each feature's batch standard deviation above 1 (variance) and features decorrelated
(covariance). The batch statistics span the global batch (`losses.vicreg_loss` on global
arrays under jit).
"""
import ml_collections

from sslax import losses
from sslax import methods
from sslax.methods import _siamese


def make(config: ml_collections.ConfigDict) -> methods.Method:
  cfg = config.vicreg

  def pair_loss(z_a, z_b):
    return losses.vicreg_loss(z_a, z_b, invariance_weight=cfg.invariance_weight,
                              variance_weight=cfg.variance_weight,
                              covariance_weight=cfg.covariance_weight)

  return _siamese.make_two_view(config, 'vicreg', pair_loss)
