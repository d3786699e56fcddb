"""Frame losses (sslax.losses.frames: APC regression, CPC InfoNCE, masked MSE) against direct
float64 numpy references, and the contrastive loss on 8 sharded devices == on one device."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sslax import losses


def regression_reference(pred, target, mask, k, distance):
  """APC's loss one (example, time) pair at a time."""
  total, count = 0.0, 0
  b, t, _ = pred.shape
  for i in range(b):
    for s in range(t - k):
      if mask[i, s] and mask[i, s + k]:
        diff = pred[i, s].astype(np.float64) - target[i, s + k]
        total += np.mean(np.abs(diff) if distance == 'l1' else diff ** 2)
        count += 1
  return total / count


def contrastive_reference(context, future, mask, temperature):
  """CPC's InfoNCE written per anchor: positive = own future, negatives = every other real
  (example, time) future of the batch; cosine similarity."""
  b, t, _ = context.shape
  c = context.reshape(b * t, -1).astype(np.float64)
  f = future.reshape(b * t, -1).astype(np.float64)
  c /= np.linalg.norm(c, axis=1, keepdims=True)
  f /= np.linalg.norm(f, axis=1, keepdims=True)
  valid = mask.reshape(-1)
  total, count = 0.0, 0
  for n in np.flatnonzero(valid):
    scores = np.array([c[n] @ f[m] / temperature for m in np.flatnonzero(valid)])
    positive = c[n] @ f[n] / temperature
    total += -(positive - scores.max() - np.log(np.exp(scores - scores.max()).sum()))
    count += 1
  return total / count


def _data(seed, b=4, t=6, d=5):
  rng = np.random.default_rng(seed)
  mask = rng.random((b, t)) < 0.8
  mask[:, 0] = True
  return rng.normal(size=(b, t, d)), rng.normal(size=(b, t, d)), mask


def test_frame_losses_match_float64_references():
  pred, target, mask = _data(0)
  with jax.enable_x64(True):
    for k, distance in [(1, 'l1'), (2, 'l2')]:
      got = losses.next_frame_regression(jnp.asarray(pred), jnp.asarray(target),
                                         jnp.asarray(mask), k, distance=distance)
      np.testing.assert_allclose(float(got), regression_reference(pred, target, mask, k, distance),
                                 rtol=1e-12)
    for temperature in (0.1, 1.0):
      got = losses.next_frame_contrastive(jnp.asarray(pred), jnp.asarray(target),
                                          jnp.asarray(mask), temperature=temperature)
      np.testing.assert_allclose(float(got), contrastive_reference(pred, target, mask, temperature),
                                 rtol=1e-12)
    weights = mask.astype(np.float64)
    expected = (((pred - target) ** 2).mean(-1) * weights).sum() / weights.sum()
    np.testing.assert_allclose(float(losses.masked_mse(jnp.asarray(pred), jnp.asarray(target),
                                                       jnp.asarray(mask))), expected, rtol=1e-12)


def test_contrastive_negatives_come_from_other_examples():
  # One frame per example: every negative is another example's, so the loss depends on them.
  pred, target, mask = _data(1, b=4, t=1)
  with jax.enable_x64(True):
    full = losses.next_frame_contrastive(jnp.asarray(pred), jnp.asarray(target),
                                         jnp.asarray(mask), temperature=0.5)
    half = losses.next_frame_contrastive(jnp.asarray(pred[:2]), jnp.asarray(target[:2]),
                                         jnp.asarray(mask[:2]), temperature=0.5)
  np.testing.assert_allclose(float(full), contrastive_reference(pred, target, mask, 0.5),
                             rtol=1e-12)
  assert float(full) > float(half)   # more negatives, harder task (these data are random)


def test_contrastive_sharded_equals_unsharded_value_and_grads():
  pred, target, mask = (np.asarray(x, np.float32) if x.dtype != bool else x
                        for x in _data(2, b=16, t=5, d=8))
  fn = jax.jit(jax.value_and_grad(
      lambda c, f, m: losses.next_frame_contrastive(c, f, m, temperature=0.1)
      + losses.next_frame_regression(c, f, m, 1), argnums=(0, 1)))
  mesh = Mesh(np.array(jax.devices()).reshape(8), ('data',))
  sharded = NamedSharding(mesh, P('data'))
  single = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  out = [jax.device_get(fn(*(jax.device_put(x, s) for x in (pred, target, mask))))
         for s in (sharded, single)]
  (l8, g8), (l1, g1) = out
  np.testing.assert_allclose(l8, l1, rtol=1e-5)
  np.testing.assert_allclose(
      l8, contrastive_reference(pred, target, mask, 0.1)
      + regression_reference(pred, target, mask, 1, 'l1'), rtol=1e-5)
  for a, b in zip(g8, g1):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
