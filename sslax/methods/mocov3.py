"""MoCo v3 (Chen, Xie, He 2021, "An Empirical Study of Training Self-Supervised Vision
Transformers").

Queries come from the online encoder + projector + predictor, keys from a momentum encoder +
projector (EMA of the online ones, momentum from `mocov3.momentum_base` to 1 on a cosine
schedule). InfoNCE uses the other examples of the global batch as negatives (no queue),
symmetrised over the two views and scaled by 2 * temperature (Algorithm 1).
"""
import ml_collections

from sslax import errors
from sslax import losses
from sslax import methods
from sslax.methods import _siamese


def make(config: ml_collections.ConfigDict) -> methods.Method:
  temperature = config.mocov3.temperature
  if temperature <= 0:
    raise errors.ConfigError(
        f'config.mocov3.temperature={temperature} must be positive (paper: 0.2).')

  def pair_loss(q_a, q_b, k_a, k_b):
    value = (losses.moco_v3_loss(q_a, k_b, temperature=temperature)
             + losses.moco_v3_loss(q_b, k_a, temperature=temperature))
    return value, {}

  return _siamese.make_momentum(config, 'mocov3', pair_loss)
