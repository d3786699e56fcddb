"""Barlow Twins (Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction").

One encoder + projector on both views; the cross-correlation matrix of the two batch-
standardised projections is pushed to the identity (on-diagonal to 1, off-diagonal to 0,
weighted by `barlow.off_diagonal_weight`). The matrix is over the global batch.
"""
import ml_collections

from sslax import losses
from sslax import methods
from sslax.methods import _siamese


def make(config: ml_collections.ConfigDict) -> methods.Method:
  weight = config.barlow.off_diagonal_weight

  def pair_loss(z_a, z_b):
    return losses.barlow_twins_loss(z_a, z_b, off_diagonal_weight=weight), {}

  return _siamese.make_two_view(config, 'barlow', pair_loss)
