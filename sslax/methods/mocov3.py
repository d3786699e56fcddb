"""MoCo v3 (Chen, Xie, He 2021, "An Empirical Study of Training Self-Supervised Vision
Transformers").

Queries come from the online encoder + projector + predictor, keys from a momentum encoder +
projector (EMA of the online ones, momentum from `mocov3.momentum_base` to 1 on a cosine
schedule). InfoNCE uses the other examples of the global batch as negatives (no queue),
symmetrised over the two views and scaled by 2 * temperature (Algorithm 1).

Large batches (the paper's 4096): `mocov3.chunked_loss` computes each direction under
shard_map with [n, N] logits per device (losses.moco_v3_loss_chunked); grad_accum_steps > 1
runs GradCache over the split that _siamese.make_momentum exposes (the EMA keys are computed
without gradient inside `forward`). Both give the plain loss and gradients.
"""
import ml_collections

from sslax import errors
from sslax import losses
from sslax import methods
from sslax import sharding
from sslax.methods import _siamese


def make(config: ml_collections.ConfigDict) -> methods.Method:
  temperature = config.mocov3.temperature
  if temperature <= 0:
    raise errors.ConfigError(
        f'config.mocov3.temperature={temperature} must be positive (paper: 0.2).')
  chunked = methods.chunked_loss_mesh(config, 'mocov3')

  def one_way(q, k):
    if chunked:
      return losses.moco_v3_loss_chunked(q, k, temperature=temperature, mesh=chunked,
                                         axes=sharding.BATCH_AXES)
    return losses.moco_v3_loss(q, k, temperature=temperature)

  def pair_loss(q_a, q_b, k_a, k_b):
    return one_way(q_a, k_b) + one_way(q_b, k_a), {}

  return _siamese.make_momentum(config, 'mocov3', pair_loss)
