"""Every image method takes config.model.name='vit': ViT variants of BYOL, MoCo v3 and DINO
give the same step on 8 devices as on 1 (drop path on), the ViT's weights are tensor-parallel
by logical axis names, drop path is off at eval, and layer-wise lr decay scales block i's
learning rate by decay^(L - i)."""
import functools

from flax.core import meta
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import optax
import pytest

from sslax import methods
from sslax import models
from sslax import optim
from sslax import sharding
from sslax import train
from sslax.augment import image as image_aug
from sslax.configs import common_images
from tests.test_methods_vision import _first_batch, _step_on, data_dir, smoke_config  # noqa: F401
from tests.conftest import assert_fraction_of


def vit_config(method: str, data_dir, **overrides):
  c = common_images.use_vit(smoke_config(method, data_dir), smoke=True)
  c.model.drop_path_rate = 0.1   # on, so the 8 == 1 device test covers its random masks
  c.update_from_flattened_dict(overrides)
  return c


@functools.cache
def _cached_step(method: str, num_devices: int, data_dir):
  config = vit_config(method, data_dir)
  return _step_on(jax.devices()[:num_devices], config, _first_batch(config, data_dir))


@pytest.mark.parametrize('method', ('byol', 'mocov3', 'dino'))
def test_vit_eight_device_step_equals_one_device_step(method, data_dir):
  _, one, m1 = _cached_step(method, 1, data_dir)
  _, eight, m8 = _cached_step(method, 8, data_dir)
  np.testing.assert_allclose(m8['loss'], m1['loss'], rtol=1e-5)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  for part in ('params', 'model_state', 'extra'):
    jax.tree.map(close, getattr(eight, part), getattr(one, part))
  assert 'encoder' in one.params['net'] and 'transformer' in one.params['net']['encoder']


@pytest.mark.parametrize('method', ('simclr', 'vicreg', 'barlow'))
def test_other_image_methods_init_a_vit(method, data_dir):
  if method == 'simclr':
    from tests.test_train import smoke_config as simclr_config
    config = common_images.use_vit(simclr_config(data_dir), smoke=True)
  else:
    config = vit_config(method, data_dir)
  m = methods.get(config.method)(config)
  batch = {k: jnp.asarray(v) for k, v in _first_batch(config, data_dir).items()}
  params, model_state, extra = meta.unbox(m.init(jax.random.PRNGKey(0), batch))
  assert 'transformer' in params['encoder']
  loss_fn = jax.jit(m.loss)
  loss, _ = loss_fn(params, model_state, extra, batch, jax.random.PRNGKey(1))
  assert np.isfinite(loss)
  # The same compiled loss in closed form: with the projector's last layer zeroed, every
  # view's projection is 0 whatever the ViT computes (a NaN would still show). SimCLR: each
  # of the 2N anchors sees its positive and 2N - 2 negatives at equal similarity, log(2N - 1);
  # VICReg: only the variance hinges, relu(1 - sqrt(0 + 1e-4)) per feature and view; Barlow
  # Twins: C = 0, so each of the D diagonal terms is (1 - 0)^2.
  out = params['projector']['out']
  zeroed = {**params, 'projector': {**params['projector'],
                                    'out': jax.tree.map(jnp.zeros_like, out)}}
  value, _ = loss_fn(zeroed, model_state, extra, batch, jax.random.PRNGKey(1))
  expected = {'simclr': lambda: np.log(2 * config.batch_size - 1),
              'vicreg': lambda: config.vicreg.variance_weight * 2 * (1 - np.sqrt(1e-4)),
              'barlow': lambda: config.barlow.proj_dim}[method]()
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  # embed: the ViT's pooled features of the evaluation view, not the projector's.
  features = m.embed(params, model_state, batch)
  view = image_aug.to_model_range(image_aug.eval_view(batch['image'], config.data.image_size))
  np.testing.assert_allclose(features, models.make_encoder(config.model).apply(
      {'params': params['encoder']}, view, False), rtol=1e-6, atol=1e-6)
  assert features.shape == (config.batch_size, config.model.width)


def test_drop_path_is_random_in_training_and_off_at_eval():
  vit = _vit_model(drop_path_rate=0.5)
  x = jax.random.normal(jax.random.PRNGKey(0), (8, 16, 16, 1))
  variables = vit.init(jax.random.PRNGKey(1), x)
  no_drop = _vit_model(drop_path_rate=0.0).apply(variables, x, train=True)
  # Eval, and training without a 'dropout' rng (the EMA target / teacher): no drop path.
  np.testing.assert_array_equal(vit.apply(variables, x, train=False), no_drop)
  np.testing.assert_array_equal(vit.apply(variables, x, train=True), no_drop)
  a, b = (vit.apply(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(k)})
          for k in (2, 3))
  assert not np.allclose(a, b) and not np.allclose(a, no_drop)


def _vit_model(**overrides):
  model = common_images.use_vit(common_images.images('byol', 'smoke'), smoke=True).model
  model.update(overrides)
  return models.make_encoder(model)


def test_layer_decay_scales_block_i_by_decay_to_the_l_minus_i(data_dir):
  decay = 0.5
  config = vit_config('byol', data_dir, **{'optim.layer_decay': decay,
                                           'optim.weight_decay': 0.0, 'optim.warmup_steps': 0,
                                           'model.depth': 3})
  tx, _ = optim.make(config)
  method = methods.get(config.method)(config)
  batch = {k: jnp.asarray(v) for k, v in _first_batch(config, data_dir).items()}
  params = meta.unbox(method.init(jax.random.PRNGKey(0), batch))[0]
  # Adam's first step moves every weight by lr * sign(g): unit gradients give the lr itself.
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  step = lambda *path: float(np.abs(np.asarray(functools.reduce(
      lambda n, k: n[k], path, updates['net']['encoder']))).max())
  top = step('transformer', 'final_norm', 'scale')
  depth = config.model.depth
  for i in range(depth):
    lr_i = step('transformer', f'block{i}', 'Dense_0', 'kernel')
    np.testing.assert_allclose(lr_i / top, decay ** (depth - i), rtol=1e-5)
  np.testing.assert_allclose(step('patch_embed', 'kernel') / top, decay ** (depth + 1),
                             rtol=1e-5)
  # Heads above the encoder keep the full rate.
  np.testing.assert_allclose(float(np.abs(updates['predictor']['out']['kernel']).max()), top,
                             rtol=1e-5)
  with pytest.raises(ValueError, match=r'config.optim.layer_decay < 1 needs a ViT'):
    optim.layer_decay_scales({'conv': {'kernel': jnp.ones(3)}}, 0.5)


def test_vit_weights_are_tensor_parallel_and_the_step_matches_data_parallel(data_dir):
  config = vit_config('mocov3', data_dir, **{'model.num_heads': 4, 'model.drop_path_rate': 0.0})
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  sample = train.sample_batch(config)
  init = train.make_init(method, tx, sample, config.seed)
  abstract = jax.eval_shape(init)
  names = train.logical_axes(method, sample)
  block = ('net', 'encoder', 'transformer', 'block0')
  assert names[(*block, 'MultiHeadDotProductAttention_0', 'query', 'kernel')] == (
      'embed', 'heads', 'head_dim')
  assert names[(*block, 'Dense_0', 'kernel')] == ('embed', 'mlp')
  mesh = sharding.make_mesh({'data': 2, 'fsdp': 1, 'model': 4})
  sh = sharding.state_shardings(abstract, mesh, 256, names)
  node = sh.params['net']['encoder']['transformer']['block0']
  assert node['MultiHeadDotProductAttention_0']['query']['kernel'].spec == P(None, 'model', None)
  assert node['MultiHeadDotProductAttention_0']['out']['kernel'].spec == P('model', None, None)
  assert node['Dense_0']['kernel'].spec == P(None, 'model')
  assert node['Dense_1']['kernel'].spec == P('model', None)
  assert sharding.axis_fraction(abstract.params, sh.params, 'model') > 0.3

  local = _first_batch(config, data_dir)
  outputs = []
  for mesh, shardings in ((mesh, sh), (sharding.make_mesh({'data': 8}), None)):
    shardings = shardings or sharding.state_shardings(abstract, mesh)
    step = jax.jit(train.make_train_step(method, tx, lr),
                   in_shardings=(shardings, sharding.batch_sharding(mesh)))
    state = jax.jit(init, out_shardings=shardings)()
    outputs.append(jax.device_get(step(state, sharding.to_global(local, mesh))))
  (tp, m_tp), (dp, m_dp) = outputs
  np.testing.assert_allclose(m_tp['loss'], m_dp['loss'], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               tp.params, dp.params)


def test_fine_tune_layer_decay_slows_the_lower_blocks():
  from sslax.evaluators import fine_tune
  vit = _vit_model(depth=2)
  images = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (32, 16, 16, 1)), np.float32)
  params = meta.unbox(vit.init(jax.random.PRNGKey(1), images[:1]))['params']
  embed = lambda p, s, batch: vit.apply({'params': p}, batch['image'])
  tx = fine_tune._compiled(embed, 'classification', 1e-3, 0.0, 2, 0, 0.5)[0]
  variables = {'encoder': params, 'head': {'w_DxL': jnp.zeros((32, 3)), 'b_L': jnp.zeros(3)}}
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, variables), tx.init(variables), variables)
  size = lambda x: float(np.abs(np.asarray(x)).max())
  head = size(updates['head']['w_DxL'])
  blocks = updates['encoder']['transformer']
  np.testing.assert_allclose(size(blocks['block1']['Dense_0']['kernel']) / head, 0.5, rtol=1e-5)
  np.testing.assert_allclose(size(blocks['block0']['Dense_0']['kernel']) / head, 0.25, rtol=1e-5)
  labels = np.arange(32) % 3
  scores = fine_tune.fine_tune(embed, params, {}, {'image': images, 'label': labels},
                               {'image': images, 'label': labels}, task='classification',
                               num_outputs=3, steps=2, batch_size=16, learning_rate=1e-3,
                               layer_decay=0.5)
  assert_fraction_of(scores['accuracy'], 32, 'fine-tune accuracy')   # the 32 test images


def test_dino_local_crops_need_position_embeddings_of_any_size(data_dir):
  config = vit_config('dino', data_dir, **{'model.pos_emb': 'learned'})
  with pytest.raises(ValueError, match=r"config.model.pos_emb='learned' has one table"):
    methods.get('dino')(config)
