"""BYOL (Grill et al. 2020, "Bootstrap Your Own Latent: A New Approach to Self-Supervised
Learning").

An online encoder + projector + predictor regresses the projection of the other view made by
a target encoder + projector, whose weights are an EMA of the online ones (momentum from
`byol.momentum_base` to 1 on a cosine schedule over `total_steps`). The loss is the
symmetrised normalised MSE, 2 - 2 cos(p, z'), summed over both view orders (eq. 2-3).
Evaluators use the online encoder's pooled features.
"""
import ml_collections

from sslax import losses
from sslax import methods
from sslax.methods import _siamese


def _byol_loss(p_a, p_b, t_a, t_b):
  value = losses.normalized_mse(p_a, t_b) + losses.normalized_mse(p_b, t_a)
  return value, {}


def make(config: ml_collections.ConfigDict) -> methods.Method:
  return _siamese.make_momentum(config, 'byol', _byol_loss)
