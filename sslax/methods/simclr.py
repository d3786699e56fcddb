"""SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations").

Two augmented views of every image go through one encoder f and projector g;
NT-Xent pulls each pair together against the other 2N-2 embeddings of the
global batch. The evaluators use f's pooled features h, not g's output.
"""
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import ml_collections

from sslax import errors
from sslax import losses
from sslax import methods
from sslax import models
from sslax import sharding
from sslax.augment import image as image_aug
from sslax.methods import _siamese
from sslax.models import heads


def nt_xent(z_2NxP: jax.Array, *, temperature: float,
            mesh: Mesh | None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """NT-Xent of the two halves of z (view a's rows, then view b's) and the contrastive
  accuracy; under shard_map (losses.nt_xent_chunked, [2n, 2N] logits per device) when `mesh`
  is given (config.<method>.chunked_loss), else on the global [2N, 2N] logits. Same value
  and gradients either way. SimCLR's loss, and clip contrast's."""
  z_a, z_b = jnp.split(z_2NxP, 2, axis=0)
  if mesh is not None:
    value, accuracy = losses.nt_xent_chunked(z_a, z_b, temperature=temperature, mesh=mesh,
                                             axes=sharding.BATCH_AXES)
    return value, {'contrastive_acc': accuracy}
  logits, labels = losses.nt_xent_logits(z_a, z_b, temperature=temperature)
  value = losses.info_nce(z_a, z_b, temperature=temperature)
  return value, {'contrastive_acc': losses.contrastive_accuracy(logits, labels)}


def make(config: ml_collections.ConfigDict) -> methods.Method:
  model = _siamese.EncoderProjector(
      encoder=models.make_encoder(config.model),
      projector=heads.MLP(hidden_dims=tuple(config.simclr.proj_hidden_dims),
                          out_dim=config.simclr.proj_dim,
                          use_bn=config.simclr.get('proj_batch_norm', True),
                          dtype=models.compute_dtype(config.model)))
  size = config.data.image_size
  temperature = config.simclr.temperature
  # config.simclr.chunked_loss: InfoNCE under shard_map (losses.nt_xent_chunked), each device
  # holding [2n, 2N] logits instead of the global [2N, 2N]; same value and gradients. Over the
  # mesh train.run builds: config.mesh on all devices.
  mesh = methods.chunked_loss_mesh(config, 'simclr')

  def init(rng, batch):
    if 'image' not in batch:
      raise errors.ConfigError(f"config.method='simclr' needs images, but config.data.source="
                               f"{config.data.source!r} gives {sorted(batch)}.")
    x = image_aug.to_model_range(image_aug.eval_view(batch['image'][:1], size))
    variables = model.init(rng, x, train=False)
    return variables['params'], {'batch_stats': variables.get('batch_stats', {})}, {}

  def embed_inputs(batch, rng):
    return _siamese.two_views(config, rng, batch['image'])

  def forward(params, model_state, extra, x_2NxHxWxC, dropout_rng=None):
    del extra
    # GradCache calls this without `dropout_rng`: no drop path (validate.py refuses both).
    rngs = _siamese.dropout_rngs(dropout_rng) if dropout_rng is not None else {}
    (_, z_2NxP), new_state = model.apply({'params': params, **model_state}, x_2NxHxWxC,
                                         train=True, mutable=['batch_stats'], rngs=rngs)
    return z_2NxP, dict(new_state)

  def loss_from_embeddings(z_2NxP):
    return nt_xent(z_2NxP, temperature=temperature, mesh=mesh)

  def loss(params, model_state, extra, batch, rng):
    # Both views in one forward pass: BatchNorm sees all 2N images, as in SimCLR.
    z_2NxP, new_state = forward(params, model_state, extra, embed_inputs(batch, rng),
                                dropout_rng=rng)
    value, metrics = loss_from_embeddings(z_2NxP)
    return value, (new_state, metrics)

  return methods.Method(init=init, loss=loss, update_extra=methods.no_extra,
                        embed=_siamese.embed_fn(model, config, None),
                        embed_inputs=embed_inputs, forward=forward,
                        loss_from_embeddings=loss_from_embeddings)
