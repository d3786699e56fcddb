"""DINO (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers").

Self-distillation without labels: a student (encoder + DINO head) sees 2 global and
`dino.num_local` local crops; an EMA teacher of the same architecture sees the global crops
only. The student matches the teacher's centred, sharpened softmax across different crops.

Where the state lives, and why:
- teacher weights: `extra['teacher']`, the structure of `params['net']` (sharded and
  checkpointed like the student), EMA-updated in `update_extra` with the cosine momentum.
- teacher temperature: `extra['teacher_temperature']`, the warmup schedule's value for the
  next step, set in `update_extra` (the only function that sees the step).
- centre: `model_state['center']`, an EMA of the teacher's outputs. It depends on the
  batch's activations, which only `loss` computes, and `loss` already returns an updated
  model state (as it does for BatchNorm statistics), so no trainer change is needed.
- teacher BatchNorm statistics: `model_state['teacher']`, for the same reason.
"""
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sslax import errors
from sslax import losses
from sslax import methods
from sslax import models
from sslax.augment import image as image_aug
from sslax.augment import multi_crop
from sslax.data import host_crops as host_crops_lib
from sslax.methods import _siamese
from sslax.models import heads


def teacher_temperature(step: jax.Array, *, start: float, end: float,
                        warmup_steps: int) -> jax.Array:
  """Linear warmup of the teacher temperature from `start` to `end` (DINO sec. 3.1)."""
  progress = jnp.clip(jnp.asarray(step, jnp.float32) / max(warmup_steps, 1), 0.0, 1.0)
  return start + (end - start) * progress


def host_crops(config: ml_collections.ConfigDict) -> list[host_crops_lib.CropSpec]:
  """Global and local crops (methods.host_crops): local ones go to batch['image_local']."""
  cfg, a = config.dino, config.augment
  specs = [host_crops_lib.CropSpec('image', cfg.num_global, config.data.image_size,
                                   tuple(cfg.global_scale), tuple(a.crop_ratio),
                                   float(a.flip_prob))]
  if cfg.num_local:
    specs.append(host_crops_lib.CropSpec('image_local', cfg.num_local, cfg.local_size,
                                         tuple(cfg.local_scale), tuple(a.crop_ratio),
                                         float(a.flip_prob)))
  return specs


def make(config: ml_collections.ConfigDict) -> methods.Method:
  cfg = config.dino
  _siamese.check_momentum('dino', cfg.momentum_base)
  if cfg.num_global != 2:
    raise errors.ConfigError(f'config.dino.num_global={cfg.num_global}: DINO uses 2 global crops.')
  if (config.model.name == 'vit' and config.model.get('pos_emb') == 'learned'
      and cfg.num_local > 0):
    raise errors.ConfigError(
        "config.model.pos_emb='learned' has one table for the global crops' patches, so the "
        f'{cfg.num_local} local crops of config.dino.local_size={cfg.local_size} cannot use '
        "it; set config.model.pos_emb='sincos' (any crop size) or config.dino.num_local=0.")
  net = _siamese.EncoderProjector(
      encoder=models.make_encoder(config.model),
      projector=heads.DINOHead(hidden_dims=tuple(cfg.head_hidden_dims),
                               bottleneck_dim=cfg.bottleneck_dim, out_dim=cfg.out_dim,
                               dtype=models.compute_dtype(config.model)))
  size = config.data.image_size
  view_kwargs = {k: v for k, v in config.augment.items() if k != 'crop_scale'}
  temp = lambda step: teacher_temperature(step, start=cfg.warmup_teacher_temperature,
                                          end=cfg.teacher_temperature,
                                          warmup_steps=cfg.warmup_teacher_temperature_steps)
  stats = lambda variables: {'batch_stats': variables.get('batch_stats', {})}

  def init(rng, batch):
    x = image_aug.to_model_range(image_aug.eval_view(batch['image'][:1], size))
    variables = net.init(rng, x, train=False)
    model_state = {'net': stats(variables), 'teacher': stats(variables),
                   'center': jnp.zeros((cfg.out_dim,), jnp.float32)}
    extra = {'teacher': variables['params'], 'teacher_temperature': temp(0)}
    return {'net': variables['params']}, model_state, extra

  def loss(params, model_state, extra, batch, rng):
    n = batch['image'].shape[0]
    global_views, local_views = multi_crop.multi_crop_views(
        rng, batch['image'], local_images=batch.get('image_local'), num_global=cfg.num_global, num_local=cfg.num_local,
        global_size=size, local_size=cfg.local_size, global_scale=tuple(cfg.global_scale),
        local_scale=tuple(cfg.local_scale), **view_kwargs)
    x_global = image_aug.to_model_range(jnp.concatenate(global_views, axis=0))
    (_, s_GNxK), net_state = net.apply({'params': params['net'], **model_state['net']},
                                       x_global, train=True, mutable=['batch_stats'],
                                       rngs=_siamese.dropout_rngs(rng))
    student = [s_GNxK]
    if local_views:
      # Local crops are smaller: a second pass (the pooled encoder takes any size).
      x_local = image_aug.to_model_range(jnp.concatenate(local_views, axis=0))
      (_, s_LNxK), net_state = net.apply(
          {'params': params['net'], **net_state}, x_local, train=True, mutable=['batch_stats'],
          rngs=_siamese.dropout_rngs(jax.random.fold_in(rng, 1)))
      student.append(s_LNxK)
    student_SxNxK = jnp.concatenate(student, axis=0).reshape(-1, n, cfg.out_dim)
    teacher_params = jax.lax.stop_gradient(extra['teacher'])
    (_, t_GNxK), teacher_state = net.apply({'params': teacher_params, **model_state['teacher']},
                                           x_global, train=True, mutable=['batch_stats'])
    teacher_GxNxK = jax.lax.stop_gradient(t_GNxK).reshape(-1, n, cfg.out_dim)
    center_K = jax.lax.stop_gradient(model_state['center'])
    value = losses.dino_loss(student_SxNxK, teacher_GxNxK, center_K,
                             student_temperature=cfg.student_temperature,
                             teacher_temperature=extra['teacher_temperature'])
    # Centring: EMA of the teacher's batch-mean output (over the global batch, both crops).
    batch_center_K = jnp.mean(teacher_GxNxK, axis=(0, 1))
    new_center_K = optax.incremental_update(batch_center_K, center_K,
                                            step_size=1.0 - cfg.center_momentum)
    new_state = {'net': dict(net_state), 'teacher': dict(teacher_state), 'center': new_center_K}
    probs_K = jnp.mean(jax.nn.softmax((teacher_GxNxK - center_K) / extra['teacher_temperature']),
                       axis=(0, 1))
    metrics = {'teacher_temperature': extra['teacher_temperature'],
               'teacher_entropy': -jnp.sum(probs_K * jnp.log(probs_K + 1e-12))}
    return value, (new_state, metrics)

  def update_extra(extra, params, step):
    momentum = _siamese.cosine_momentum(step, base=cfg.momentum_base,
                                        total_steps=config.total_steps)
    return {'teacher': _siamese.ema(extra['teacher'], params['net'], momentum),
            'teacher_temperature': temp(step + 1)}

  def embed(params, model_state, batch):
    x = image_aug.to_model_range(image_aug.eval_view(batch['image'], size))
    h_BxD, _ = net.apply({'params': params['net'], **model_state['net']}, x, train=False)
    return h_BxD.astype(jnp.float32)   # float32 features for the evaluators under bf16

  return methods.Method(init=init, loss=loss, update_extra=update_extra, embed=embed)
