"""MAE's parts: patchify, random patch masking, the ViT on kept tokens, multi-crop views."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import losses
from sslax import methods
from sslax.augment import image as image_aug
from sslax.augment import masking
from sslax.augment import multi_crop
from sslax.configs import mae_images
from sslax.methods import mae
from sslax.models import vit


def test_patchify_order():
  x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
  patches = vit.patchify(x, 2)
  assert patches.shape == (2, 4, 12)
  np.testing.assert_array_equal(patches[1, 1].reshape(2, 2, 3), x[1, 0:2, 2:4])
  with pytest.raises(ValueError, match='config.model.patch_size'):
    vit.patchify(x, 3)


def test_random_patch_mask_is_per_example_and_consistent():
  key = jax.random.PRNGKey(0)
  keep, mask = masking.random_patch_mask(key, 6, 16, 0.75)
  assert keep.shape == (6, 4) and mask.shape == (6, 16)
  np.testing.assert_array_equal(mask.sum(1), 12)
  for b in range(6):
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(mask[b]) == 0), keep[b])
  # Example i's mask depends only on (key, i), not on the batch size.
  keep3, _ = masking.random_patch_mask(key, 3, 16, 0.75)
  np.testing.assert_array_equal(keep3, keep[:3])
  assert len({tuple(np.asarray(k)) for k in keep}) > 1
  with pytest.raises(ValueError, match='config.mae.mask_ratio'):
    masking.random_patch_mask(key, 1, 16, 1.0)


@pytest.fixture(scope='module')
def mae_parts():
  config = mae_images.get_config('smoke')
  method = methods.get('mae')(config)
  images = jax.random.randint(jax.random.PRNGKey(1), (4, 16, 16, 1), 0, 256).astype(jnp.uint8)
  params, _, _ = method.init(jax.random.PRNGKey(0), {'image': images})
  return config, params, images


def _model(config, encoder_sees_all=False):
  return mae.MAEModel(encoder=vit.ViT(**{k: v for k, v in config.model.items() if k != 'name'}),
                      decoder_width=config.mae.decoder_width,
                      decoder_depth=config.mae.decoder_depth,
                      decoder_heads=config.mae.decoder_heads, encoder_sees_all=encoder_sees_all)


@pytest.mark.parametrize('encoder_sees_all', [False, True])
def test_masked_pixels_never_reach_the_model(mae_parts, encoder_sees_all):
  """Changing the pixels of masked patches changes neither the encoder's tokens nor any
  prediction: the encoder only ever gets the visible patches."""
  config, params, images = mae_parts
  x = image_aug.to_model_range(image_aug.to_float(images))
  keep, mask = masking.random_patch_mask(jax.random.PRNGKey(2), 4, 16, 0.75)
  noise = jax.random.normal(jax.random.PRNGKey(3), x.shape)
  x_changed = x + noise * mae._pixel_mask(mask, 16, 16, 4)[..., None]
  assert not np.allclose(x_changed, x)
  model = _model(config, encoder_sees_all)
  pred = model.apply({'params': params}, x, keep, mask)
  np.testing.assert_allclose(model.apply({'params': params}, x_changed, keep, mask), pred,
                             atol=1e-5)
  encode = lambda y: model.encoder.apply({'params': params['encoder']}, y, keep,
                                         method=vit.ViT.encode)[1]
  assert encode(x).shape == (4, 4, config.model.width)
  np.testing.assert_allclose(encode(x_changed), encode(x), atol=1e-5)


def test_loss_ignores_visible_targets_and_learns_from_masked(mae_parts, monkeypatch):
  """The method's loss weighs exactly the patches the encoder did not see: new pixels in a
  visible patch's target leave it unchanged, in a masked patch's they change it; its gradient
  reaches the predictions of masked patches only, and every parameter."""
  config, params, images = mae_parts
  seen = {}
  real_mask, real_mse = masking.random_patch_mask, losses.masked_mse
  def spy_mask(*args):
    seen['keep'], seen['mask'] = real_mask(*args)
    return seen['keep'], seen['mask']
  def spy_mse(pred, target, weights):
    seen['pred'], seen['target'], seen['weights'] = pred, target, weights
    return real_mse(pred, target, weights)
  monkeypatch.setattr(mae.masking, 'random_patch_mask', spy_mask)
  monkeypatch.setattr(mae.losses, 'masked_mse', spy_mse)
  method = methods.get('mae')(config)
  batch, rng = {'image': images}, jax.random.PRNGKey(4)
  value, (_, metrics) = method.loss(params, {}, {}, batch, rng)
  assert metrics['visible_patches'] == 4
  assert method.embed(params, {}, batch).shape == (4, config.model.width)

  masked = np.asarray(seen['weights']) > 0                      # [B, L]
  visible = np.zeros_like(masked)
  np.put_along_axis(visible, np.asarray(seen['keep']), True, axis=1)
  np.testing.assert_array_equal(masked, ~visible)                # 12 of 16 patches each
  pred, target = seen['pred'], seen['target']
  assert real_mse(pred, target, seen['weights']) == value
  noise = jax.random.normal(jax.random.PRNGKey(5), target.shape)
  assert real_mse(pred, target + noise * visible[..., None], seen['weights']) == value
  assert abs(real_mse(pred, target + noise * masked[..., None], seen['weights']) - value) > 0.1

  grad_pred = np.asarray(jax.grad(real_mse)(pred, target, seen['weights']))
  assert (grad_pred[visible] == 0).all() and (np.abs(grad_pred[masked]).sum(-1) > 0).all()
  grads = jax.grad(lambda p: method.loss(p, {}, {}, batch, rng)[0])(params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert np.abs(g).max() > 0, jax.tree_util.keystr(path)


def test_vit_cls_pool_and_learned_pos_emb():
  model = vit.ViT(patch_size=4, width=8, depth=1, num_heads=2, pool='cls', pos_emb='learned')
  x = jnp.zeros((2, 8, 8, 3))
  variables = model.init(jax.random.PRNGKey(0), x)
  assert {'cls', 'pos_embedding'} <= set(variables['params'])
  assert model.apply(variables, x).shape == (2, 8)
  with pytest.raises(ValueError, match='config.model.pool'):
    vit.ViT(pool='max').init(jax.random.PRNGKey(0), x)


def test_multi_crop_shapes_and_keys():
  images = jax.random.randint(jax.random.PRNGKey(0), (3, 16, 16, 3), 0, 256).astype(jnp.uint8)
  # One jitted program: eagerly, every random call compiles on its own (~25 s on CPU).
  views = jax.jit(functools.partial(
      multi_crop.multi_crop_views, num_global=2, num_local=3, global_size=12, local_size=6,
      global_scale=(0.4, 1.0), local_scale=(0.05, 0.4)))
  g, l = views(jax.random.PRNGKey(1), images)
  assert [v.shape for v in g] == [(3, 12, 12, 3)] * 2
  assert [v.shape for v in l] == [(3, 6, 6, 3)] * 3
  assert not np.allclose(g[0], g[1])
