"""config.model.conv_impl='im2col' / 'wgrad_gemm' compute what XLA's convolutions do."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sslax import models
from sslax.models import resnet


@pytest.mark.parametrize('impl, size', [('im2col', 17), ('wgrad_gemm', 17), ('wgrad_gemm', 16)])
def test_other_conv_impls_match_xla_outputs_and_gradients(impl, size):
  # Two basic blocks see 3x3/1, 3x3/2 and the 1x1/2 shortcut: every kernel and stride of the
  # ResNet. 'wgrad_gemm' sees them through its own weight gradient; at size 16 a 3x3/2
  # 'SAME' convolution pads (0, 1), asymmetric, the case easiest to get wrong (17 pads (1, 1)).
  kwargs = dict(widths=(4, 8), blocks=(1, 1), stem_width=4, block='basic', stem='cifar')
  ref, alt = resnet.ResNet(**kwargs, conv_impl='xla'), resnet.ResNet(**kwargs, conv_impl=impl)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, size, size, 3))
  variables = ref.init(jax.random.PRNGKey(1), x, train=False)
  # Same parameter tree (names and shapes): one checkpoint serves both implementations.
  assert (jax.tree.structure(alt.init(jax.random.PRNGKey(1), x, train=False))
          == jax.tree.structure(variables))

  def loss(model, params):
    out, _ = model.apply({**variables, 'params': params}, x, train=True, mutable=['batch_stats'])
    return jnp.sum(jnp.sin(out))

  value_ref, grad_ref = jax.jit(jax.value_and_grad(lambda p: loss(ref, p)))(variables['params'])
  value_alt, grad_alt = jax.jit(jax.value_and_grad(lambda p: loss(alt, p)))(variables['params'])
  np.testing.assert_allclose(value_alt, value_ref, rtol=1e-5, atol=1e-5)
  for g_alt, g_ref in zip(jax.tree.leaves(grad_alt), jax.tree.leaves(grad_ref)):
    np.testing.assert_allclose(g_alt, g_ref, rtol=1e-4, atol=1e-5 * float(np.abs(g_ref).max()))


def test_wgrad_gemm_computes_tiny_maps_without_xlas_convolution():
  # 2x2 outputs (DINO's 16x16 local crops in ResNet-18's last stage) go through im2col's
  # GEMM: XLA's CPU convolution ran at ~1 GFLOP/s on them. Same values and gradients.
  conv = resnet.Conv(8, (3, 3), 1, impl='wgrad_gemm')
  ref = resnet.nn.Conv(8, (3, 3), 1, use_bias=False)
  for size, uses_conv in ((2, False), (3, True)):
    x = jax.random.normal(jax.random.PRNGKey(0), (4, size, size, 16))
    variables = ref.init(jax.random.PRNGKey(1), x)
    loss = lambda m, v: jnp.sum(jnp.sin(m.apply(v, x)))   # noqa: E731
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda v: loss(conv, v)))(variables))
    assert ('conv_general_dilated' in jaxpr) == uses_conv, size
    np.testing.assert_allclose(loss(conv, variables), loss(ref, variables), rtol=1e-5)
    np.testing.assert_allclose(jax.grad(lambda v: loss(conv, v))(variables)['params']['kernel'],
                               jax.grad(lambda v: loss(ref, v))(variables)['params']['kernel'],
                               rtol=1e-4, atol=1e-5)


def test_conv_impl_from_config_and_unknown_value():
  config = ml_collections.ConfigDict(dict(
      name='resnet', widths=(4,), blocks=(1,), block='basic', stem='cifar', stem_width=4,
      norm='batch', zero_init_residual=False, conv_impl='im2col'))
  assert models.make_encoder(config).conv_impl == 'im2col'
  config.conv_impl = 'winograd'
  with pytest.raises(ValueError, match='config.model.conv_impl'):
    models.make_encoder(config).init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)), train=False)


def test_auto_is_wgrad_gemm_on_cpu():
  # The tests run on CPU; elsewhere 'auto' keeps XLA's convolutions.
  assert jax.default_backend() == 'cpu' and resnet.resolve('auto') == 'wgrad_gemm'
  assert resnet.resolve('im2col') == 'im2col'
  assert models.make_encoder(ml_collections.ConfigDict(dict(
      name='resnet', widths=(4,), blocks=(1,), block='basic', stem='cifar', stem_width=4,
      norm='batch', zero_init_residual=False))).conv_impl == 'auto'


def test_wgrad_gemm_peak_memory_stays_near_xlas():
  # The weight gradient's k*k shifted input slices, unrolled, were all live at once (the
  # SimCLR ResNet-18 step peaked at 2.4x XLA's memory); the scan keeps one. A CIFAR-stem
  # ResNet's gradient, compiled only: XLA's buffer assignment gives the peak.
  kwargs = dict(widths=(32, 64), blocks=(2, 2), stem_width=32, block='basic', stem='cifar')
  x = jnp.zeros((32, 32, 32, 3))

  def peak(impl):
    model = resnet.ResNet(**kwargs, conv_impl=impl)
    variables = model.init(jax.random.PRNGKey(0), x[:1], train=False)

    def loss(params):
      out, _ = model.apply({**variables, 'params': params}, x, train=True,
                           mutable=['batch_stats'])
      return jnp.sum(out)
    mem = jax.jit(jax.grad(loss)).lower(variables['params']).compile().memory_analysis()
    return mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes

  assert peak('wgrad_gemm') <= 1.25 * peak('xla')
