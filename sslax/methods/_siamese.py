"""Parts shared by the two-view methods: BYOL, MoCo v3, VICReg, Barlow Twins (and DINO's EMA,
SimCLR's network, views and embed).

Two families:
- `make_two_view`: one encoder + projector on both views, a loss of the two projections
  (VICReg, Barlow Twins; SimCLR has the same shape, with its loss split for GradCache).
- `make_momentum`: an online encoder + projector + predictor against a target encoder +
  projector whose weights are an EMA of the online ones (BYOL, MoCo v3).

The EMA target lives in `extra['target']` with exactly the pytree structure of
`params['net']`, so the trainer's state shardings (and checkpoints) cover it like the
student. Its BatchNorm statistics live in `model_state['target']`: they change in the
target's train-mode forward pass inside `loss`, which is the only function that returns an
updated model state (`update_extra` sees parameters, not activations).
"""
from collections.abc import Callable
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sslax import errors
from sslax import methods
from sslax import models
from sslax.augment import image as image_aug
from sslax.models import heads

PairLoss = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


class EncoderProjector(nn.Module):
  encoder: nn.Module
  projector: nn.Module

  def __call__(self, x_BxHxWxC: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, jnp.ndarray]:
    h_BxD = self.encoder(x_BxHxWxC, train)
    return h_BxD, self.projector(h_BxD, train)


def cosine_momentum(step: jax.Array, *, base: float, total_steps: int) -> jax.Array:
  """BYOL's target decay (Grill et al. 2020, sec. 3.2): tau_k = 1 - (1 - tau_base) *
  (cos(pi k / K) + 1) / 2, rising from tau_base at k = 0 to 1 at k = K."""
  progress = jnp.clip(jnp.asarray(step, jnp.float32) / max(total_steps, 1), 0.0, 1.0)
  return 1.0 - (1.0 - base) * (jnp.cos(math.pi * progress) + 1.0) / 2.0


def ema(target, online, momentum: jax.Array):
  """target <- momentum * target + (1 - momentum) * online, leaf by leaf (same pytrees); optax
  calls 1 - momentum the step size."""
  return optax.incremental_update(online, target, step_size=1.0 - momentum)


def check_momentum(section: str, base: float) -> None:
  if not 0.0 <= base <= 1.0:
    raise errors.ConfigError(f'config.{section}.momentum_base={base} must be in [0, 1] '
                             '(0.99-0.996 is usual).')


# Drop path's key is folded out of the step key, so the views' keys (and every ResNet run)
# stay what they were before drop path existed.
_DROPOUT_STREAM = 0x0D0


def dropout_rngs(rng: jax.Array) -> dict[str, jax.Array]:
  """The rngs for a student / online pass in training: drop path (vit.DropPath) uses them;
  the EMA target and teacher get none, so they run without drop path (as in DINO)."""
  return {'dropout': jax.random.fold_in(rng, _DROPOUT_STREAM)}


def two_views(config: ml_collections.ConfigDict, rng: jax.Array, images: jax.Array) -> jax.Array:
  """Two augmented views of every image, stacked [2N, S, S, C] in the model's range."""
  view_a, view_b = image_aug.simclr_views(rng, images, num_views=2,
                                          out_size=config.data.image_size, **config.augment)
  return image_aug.to_model_range(jnp.concatenate([view_a, view_b], axis=0))


def embed_fn(net: nn.Module, config: ml_collections.ConfigDict, params_key: str | None):
  """embed(): the encoder's pooled features of the eval view, under `params_key` (None: the
  whole params and model state are the net's)."""
  def embed(params, model_state, batch):
    x = image_aug.to_model_range(image_aug.eval_view(batch['image'], config.data.image_size))
    p = params[params_key] if params_key else params
    s = model_state[params_key] if params_key else model_state
    h_BxD, _ = net.apply({'params': p, **s}, x, train=False)
    return h_BxD.astype(jnp.float32)   # float32 features for the evaluators under bf16
  return embed


def _net(config: ml_collections.ConfigDict, section: str) -> EncoderProjector:
  cfg = config[section]
  return EncoderProjector(encoder=models.make_encoder(config.model),
                          projector=heads.MLP(hidden_dims=tuple(cfg.proj_hidden_dims),
                                              out_dim=cfg.proj_dim,
                                              use_bn=cfg.get('head_batch_norm', True),
                                              dtype=models.compute_dtype(config.model)))


def make_two_view(config: ml_collections.ConfigDict, section: str,
                  pair_loss: PairLoss) -> methods.Method:
  """A method whose loss is `pair_loss(z_a_NxP, z_b_NxP) -> (scalar, metrics)` of the two
  views' projections through one shared encoder + projector."""
  net = _net(config, section)

  def init(rng, batch):
    x = image_aug.to_model_range(image_aug.eval_view(batch['image'][:1], config.data.image_size))
    variables = net.init(rng, x, train=False)
    return variables['params'], {'batch_stats': variables.get('batch_stats', {})}, {}

  def loss(params, model_state, extra, batch, rng):
    del extra
    # Both views in one pass, so BatchNorm normalises over all 2N images.
    (_, z_2NxP), new_state = net.apply({'params': params, **model_state},
                                       two_views(config, rng, batch['image']), train=True,
                                       mutable=['batch_stats'], rngs=dropout_rngs(rng))
    value, metrics = pair_loss(*jnp.split(z_2NxP, 2, axis=0))
    return value, (dict(new_state), metrics)

  return methods.Method(init=init, loss=loss, update_extra=methods.no_extra,
                        embed=embed_fn(net, config, None))


def make_momentum(config: ml_collections.ConfigDict, section: str,
                  pair_loss: PairLoss) -> methods.Method:
  """An online net + predictor vs an EMA target net.

  `pair_loss(p_a, p_b, t_a, t_b) -> (scalar, metrics)` gets the online predictions p and the
  target projections t (gradient stopped) of views a and b, each [N, P]. Config keys under
  `config.<section>`: proj_hidden_dims, proj_dim, pred_hidden_dims, momentum_base,
  head_batch_norm (default True; False gives per-example heads, which GradCache needs to be
  exact). The loss is split for GradCache (embed_inputs / forward / loss_from_embeddings).
  """
  cfg = config[section]
  check_momentum(section, cfg.momentum_base)
  net = _net(config, section)
  predictor = heads.MLP(hidden_dims=tuple(cfg.pred_hidden_dims), out_dim=cfg.proj_dim,
                        use_bn=cfg.get('head_batch_norm', True),
                        dtype=models.compute_dtype(config.model))
  total_steps = config.total_steps
  stats = lambda variables: {'batch_stats': variables.get('batch_stats', {})}

  def init(rng, batch):
    net_key, pred_key = jax.random.split(rng)
    x = image_aug.to_model_range(image_aug.eval_view(batch['image'][:1], config.data.image_size))
    net_vars = net.init(net_key, x, train=False)
    _, z_1xP = net.apply(net_vars, x, train=False)
    pred_vars = predictor.init(pred_key, z_1xP, train=False)
    params = {'net': net_vars['params'], 'predictor': pred_vars['params']}
    model_state = {'net': stats(net_vars), 'predictor': stats(pred_vars),
                   'target': stats(net_vars)}
    # The target starts equal to the online net (BYOL, MoCo v3).
    return params, model_state, {'target': net_vars['params']}

  def embed_inputs(batch, rng):
    return two_views(config, rng, batch['image'])

  def forward(params, model_state, extra, x_2NxSxSxC, dropout_rng=None):
    """-> ({'online': predictions [2N, P], 'target': EMA projections [2N, P] (no gradient)},
    new model state). GradCache calls it without `dropout_rng` (no drop path)."""
    rngs = dropout_rngs(dropout_rng) if dropout_rng is not None else {}
    (_, z_2NxP), net_state = net.apply({'params': params['net'], **model_state['net']},
                                       x_2NxSxSxC, train=True, mutable=['batch_stats'],
                                       rngs=rngs)
    p_2NxP, pred_state = predictor.apply({'params': params['predictor'],
                                          **model_state['predictor']},
                                         z_2NxP, train=True, mutable=['batch_stats'])
    target_params = jax.lax.stop_gradient(extra['target'])
    (_, t_2NxP), target_state = net.apply({'params': target_params, **model_state['target']},
                                          x_2NxSxSxC, train=True, mutable=['batch_stats'])
    new_state = {'net': dict(net_state), 'predictor': dict(pred_state),
                 'target': dict(target_state)}
    return {'online': p_2NxP, 'target': jax.lax.stop_gradient(t_2NxP)}, new_state

  def loss_from_embeddings(embeddings):
    return pair_loss(*jnp.split(embeddings['online'], 2, axis=0),
                     *jnp.split(embeddings['target'], 2, axis=0))

  def loss(params, model_state, extra, batch, rng):
    embeddings, new_state = forward(params, model_state, extra, embed_inputs(batch, rng),
                                    dropout_rng=rng)
    value, metrics = loss_from_embeddings(embeddings)
    return value, (new_state, metrics)

  def update_extra(extra, params, step):
    momentum = cosine_momentum(step, base=cfg.momentum_base, total_steps=total_steps)
    return {**extra, 'target': ema(extra['target'], params['net'], momentum)}

  return methods.Method(init=init, loss=loss, update_extra=update_extra,
                        embed=embed_fn(net, config, 'net'), embed_inputs=embed_inputs,
                        forward=forward, loss_from_embeddings=loss_from_embeddings)
