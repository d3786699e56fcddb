"""The audio encoder: causal means no gradient from the future; padding changes nothing."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslax import models
from sslax.models import audio


def _encoder(causal):
  config = ml_collections.ConfigDict(dict(name='audio_transformer', width=16, depth=2,
                                          num_heads=2, mlp_dim=32, max_frames=12, conv_kernel=3))
  return models.make_encoder(config, causal=causal)


def test_causal_output_has_no_gradient_from_later_frames():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 10, 4))
  mask = jnp.ones((2, 10), bool)
  # A random readout of h[:, 4], not its sum: the sum over features of a LayerNorm output
  # is identically zero, so its gradient would be round-off noise.
  w = jax.random.normal(jax.random.PRNGKey(2), (16,))
  grads = {}
  for causal in (True, False):
    model = _encoder(causal)
    params = jax.jit(model.init)(jax.random.PRNGKey(1), x, mask)
    # d h[:, 4] / d x: which input frames the output at t = 4 depends on.
    grad = jax.jit(jax.grad(lambda x: (model.apply(params, x, mask)[0][:, 4] @ w).sum()))(x)
    grads[causal] = np.abs(np.asarray(grad)).sum(-1)   # [B, t_in]
  assert np.all(grads[True][:, 5:] == 0.0)
  assert np.all(grads[True][:, :5] > 1e-3)            # and the past does count
  assert np.all(grads[False][:, 5:] > 1e-3)           # the bidirectional one sees it all


def test_padded_frames_do_not_change_real_outputs():
  model = _encoder(False)
  x = jax.random.normal(jax.random.PRNGKey(2), (1, 12, 4))
  mask = jnp.arange(12)[None] < 7
  params = jax.jit(model.init)(jax.random.PRNGKey(3), x, mask)
  apply = jax.jit(lambda x: model.apply(params, x, mask)[0])
  other = x.at[:, 7:].set(5.0)
  np.testing.assert_allclose(apply(x)[:, :7], apply(other)[:, :7], atol=1e-6)
  pooled = audio.masked_mean(apply(x), mask)
  np.testing.assert_allclose(pooled, apply(x)[:, :7].mean(1), rtol=1e-5, atol=1e-6)
