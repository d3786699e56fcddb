"""Large global batches for every contrastive loss: MoCo v3, CPC and clip contrast get the
chunked (shard_map) loss and GradCache that SimCLR has; each equals the plain loss, value and
gradients, to 1e-5. Batches are synthetic (random pixels / waveforms): no data set is built."""
import importlib

from flax.core import meta
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import grad_cache
from sslax import losses
from sslax import methods
from sslax import sharding
from sslax import validate
from sslax.configs import common_images

B = 16


def _config(name: str, **overrides):
  if name == 'mocov3':
    c = common_images.use_vit(
        importlib.import_module('sslax.configs.mocov3_images').get_config('smoke'), smoke=True)
    # Per-example heads: GradCache is exact only when nothing mixes examples (no BatchNorm).
    c.mocov3.head_batch_norm = False
  else:
    c = importlib.import_module(f'sslax.configs.{name}_audio').get_config('smoke')
  c.batch_size = B
  c.update_from_flattened_dict(overrides)
  return c


def _batch(c):
  rng = np.random.default_rng(0)
  if c.method == 'mocov3':
    return {'image': rng.integers(0, 256, (B, 8, 8, 1), dtype=np.uint8)}
  samples = int(c.data.sample_rate * c.data.clip_seconds)
  # Ragged clips, so the CPC loss's frame mask really masks.
  lengths = rng.integers(samples // 2, samples + 1, B).astype(np.int32)
  audio = (0.1 * rng.standard_normal((B, samples))).astype(np.float32)
  audio *= np.arange(samples)[None, :] < lengths[:, None]
  return {'audio': audio, 'audio_len': lengths}


def _setup(c):
  method = methods.get(c.method)(c)
  mesh = sharding.make_mesh(c.mesh)
  batch = sharding.to_global(_batch(c), mesh)
  params, model_state, extra = meta.unbox(method.init(jax.random.PRNGKey(0), batch))
  if c.method == 'mocov3':
    # A target that differs from the online net, as after some EMA steps.
    extra = {'target': jax.tree.map(lambda x: x * 0.9, extra['target'])}
  return method, params, model_state, extra, batch


def _assert_same(value_and_grads, reference, name):
  (loss, metrics), grads = value_and_grads
  (loss_ref, metrics_ref), grads_ref = reference
  np.testing.assert_allclose(loss, loss_ref, rtol=1e-5, err_msg=name)
  for key in metrics_ref:
    np.testing.assert_allclose(metrics[key], metrics_ref[key], rtol=1e-5, err_msg=key)
  scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(grads_ref))
  assert scale > 0, name
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale,
                                                       err_msg=name), grads, grads_ref)


def _plain(method, params, model_state, extra, batch, rng):
  (loss, (_, metrics)), grads = jax.jit(jax.value_and_grad(method.loss, has_aux=True))(
      params, model_state, extra, batch, rng)
  return jax.device_get(((loss, metrics), grads))


@pytest.mark.parametrize('name', ('mocov3', 'cpc', 'clip_contrast'))
def test_chunked_loss_equals_the_plain_loss_and_gradients(name):
  rng = jax.random.PRNGKey(1)
  plain = _plain(*_setup(_config(name)), rng)
  chunked = _plain(*_setup(_config(name, **{f'{name}.chunked_loss': True})), rng)
  _assert_same(chunked, plain, name)


@pytest.mark.parametrize('name', ('mocov3', 'cpc', 'clip_contrast'))
def test_grad_cache_equals_the_plain_loss_and_gradients(name):
  method, params, model_state, extra, batch = _setup(_config(name))
  rng = jax.random.PRNGKey(1)
  plain = _plain(method, params, model_state, extra, batch, rng)

  @jax.jit
  def cached(params):
    return grad_cache.value_and_grad(method, params, model_state, batch, rng, 4, extra=extra)
  (loss, (_, metrics)), grads = cached(params)
  _assert_same(jax.device_get(((loss, metrics), grads)), plain, name)


def test_grad_cache_sends_no_gradient_to_the_ema_target():
  method, params, model_state, extra, batch = _setup(_config('mocov3'))
  rng = jax.random.PRNGKey(1)
  grad_target = jax.grad(lambda target: grad_cache.value_and_grad(
      method, params, model_state, batch, rng, 4, extra={'target': target})[0][0])(
          extra['target'])
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grad_target))


@pytest.mark.parametrize('mesh_config', [{'data': 8}, {'data': 2, 'fsdp': 4}])
def test_chunked_moco_and_cpc_losses_hold_only_their_rows(mesh_config):
  """Loss level: value and gradients equal, and no device holds the global logits."""
  mesh = sharding.make_mesh(mesh_config)
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
  q, k = jax.random.normal(k1, (32, 16)), jax.random.normal(k2, (32, 16))
  shard = lambda x: jax.device_put(x, sharding.batch_sharding(mesh))
  moco = lambda q, k: losses.moco_v3_loss(q, k, temperature=0.2)
  moco_c = lambda q, k: losses.moco_v3_loss_chunked(q, k, temperature=0.2, mesh=mesh)
  value, grads = jax.jit(jax.value_and_grad(moco, argnums=(0, 1)))(q, k)
  value_c, grads_c = jax.jit(jax.value_and_grad(moco_c, argnums=(0, 1)))(shard(q), shard(k))
  np.testing.assert_allclose(value_c, value, rtol=1e-5)
  for g_c, g in zip(grads_c, grads):
    np.testing.assert_allclose(g_c, g, rtol=1e-5, atol=1e-7)
  hlo = jax.jit(moco_c).lower(shard(q), shard(k)).compile().as_text()
  assert 'f32[32,32]' not in hlo and f'f32[{32 // sharding.data_parallel_size(mesh)},32]' in hlo

  # CPC: [B=16, T=4] anchors = 64 (time, example) rows; a ragged mask.
  c, f = jax.random.normal(k1, (16, 4, 8)), jax.random.normal(k2, (16, 4, 8))
  mask = jax.random.uniform(k3, (16, 4)) > 0.3
  def cpc(c, f):
    return losses.next_frame_contrastive(c, f, mask, temperature=0.1)
  def cpc_c(c, f):
    return losses.next_frame_contrastive_chunked(c, f, shard(mask), temperature=0.1,
                                                 mesh=mesh)[0]
  value, grads = jax.jit(jax.value_and_grad(cpc, argnums=(0, 1)))(c, f)
  value_c, grads_c = jax.jit(jax.value_and_grad(cpc_c, argnums=(0, 1)))(shard(c), shard(f))
  np.testing.assert_allclose(value_c, value, rtol=1e-5)
  for g_c, g in zip(grads_c, grads):
    np.testing.assert_allclose(g_c, g, rtol=1e-5, atol=1e-7)
  hlo = jax.jit(cpc_c).lower(shard(c), shard(f)).compile().as_text()
  rows = 64 // sharding.data_parallel_size(mesh)
  assert 'f32[64,64]' not in hlo and f'f32[{rows},64]' in hlo


@pytest.mark.parametrize('name, label', [('cpc', 'CPC'), ('mocov3', 'MoCo v3')])
def test_chunked_loss_on_another_method_names_the_key(name, label):
  from sslax.configs import mlm_text
  config = mlm_text.get_config('smoke')
  config[name] = {'chunked_loss': True}
  with pytest.raises(ValueError, match=rf'config.{name}.chunked_loss=True only applies to {label}'):
    validate.check(config, num_devices=8, num_processes=1)


def test_drop_path_with_grad_cache_is_refused():
  config = _config('mocov3', **{'model.drop_path_rate': 0.1, 'grad_accum_steps': 2})
  with pytest.raises(ValueError, match=r'config.model.drop_path_rate=0.1 with '
                                       r'config.grad_accum_steps=2'):
    validate.check(config, num_devices=8, num_processes=1)
