"""The vision zoo's losses (sslax.losses.vision) against direct float64 numpy references, and
their properties."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sslax import losses



@pytest.fixture(autouse=True)
def _float64():
  # Scoped to each test: the rest of the suite runs in float32.
  with jax.enable_x64(True):
    yield


def _normalise(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _pair(n=16, d=6, seed=0):
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(n, d))
  return a, a + 0.5 * rng.normal(size=(n, d))


def vicreg_reference(a, b, lam, mu, nu, eps=1e-4):
  n, d = a.shape
  inv = np.mean([np.sum((a[i] - b[i]) ** 2) / d for i in range(n)])
  var = cov = 0.0
  for z in (a, b):
    var += np.mean([max(0.0, 1 - np.sqrt(np.var(z[:, j], ddof=1) + eps)) for j in range(d)])
    c = np.cov(z, rowvar=False)
    cov += sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d
  return lam * inv + mu * var + nu * cov


def barlow_reference(a, b, lam, eps=1e-5):
  a = (a - a.mean(0)) / np.sqrt(a.var(0) + eps)
  b = (b - b.mean(0)) / np.sqrt(b.var(0) + eps)
  n, d = a.shape
  c = np.array([[np.sum(a[:, i] * b[:, j]) / n for j in range(d)] for i in range(d)])
  return sum((1 - c[i, i]) ** 2 if i == j else lam * c[i, j] ** 2
             for i in range(d) for j in range(d))


def dino_reference(s, t, center, ts, tt):
  def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
  total, pairs = 0.0, 0
  for i in range(t.shape[0]):
    for j in range(s.shape[0]):
      if i == j:
        continue
      p_t = softmax((t[i] - center) / tt)
      log_p_s = np.log(softmax(s[j] / ts))
      total += np.mean(-np.sum(p_t * log_p_s, axis=-1))
      pairs += 1
  return total / pairs


@pytest.mark.parametrize('weights', [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 3.0)])
def test_vicreg_matches_float64_reference(weights):
  a, b = _pair()
  b[:, 0] *= 0.05  # one collapsing feature, so the variance hinge is active
  value, terms = losses.vicreg_loss(jnp.asarray(a), jnp.asarray(b), invariance_weight=weights[0],
                                    variance_weight=weights[1], covariance_weight=weights[2])
  np.testing.assert_allclose(value, vicreg_reference(a, b, *weights), rtol=1e-10)
  assert terms['variance'] > 0


@pytest.mark.parametrize('lam', [5e-3, 1.0])
def test_barlow_twins_matches_float64_reference(lam):
  a, b = _pair(d=5)
  value = losses.barlow_twins_loss(jnp.asarray(a), jnp.asarray(b), off_diagonal_weight=lam)
  np.testing.assert_allclose(value, barlow_reference(a, b, lam), rtol=1e-10)


def test_barlow_twins_is_zero_for_identical_decorrelated_views():
  z = np.linalg.qr(np.random.default_rng(0).normal(size=(64, 4)))[0]  # orthonormal columns
  z = (z - z.mean(0)) / z.std(0)
  value = losses.barlow_twins_loss(jnp.asarray(z), jnp.asarray(z), off_diagonal_weight=1.0,
                                   eps=0.0)
  assert value < 0.05


@pytest.mark.parametrize('num_local', [0, 3])
def test_dino_matches_float64_reference(num_local):
  rng = np.random.default_rng(1)
  s = rng.normal(size=(2 + num_local, 5, 7))
  t = rng.normal(size=(2, 5, 7))
  c = rng.normal(size=(7,)) * 0.1
  value = losses.dino_loss(jnp.asarray(s), jnp.asarray(t), jnp.asarray(c),
                           student_temperature=0.1, teacher_temperature=0.04)
  np.testing.assert_allclose(value, dino_reference(s, t, c, 0.1, 0.04), rtol=1e-10)


def test_normalized_mse_and_moco_v3_match_references():
  a, b = _pair()
  cos = np.sum(_normalise(a) * _normalise(b), -1)
  np.testing.assert_allclose(losses.normalized_mse(jnp.asarray(a), jnp.asarray(b)),
                             np.mean(2 - 2 * cos), rtol=1e-12)
  tau = 0.2
  logits = _normalise(a) @ _normalise(b).T / tau
  logz = np.log(np.exp(logits).sum(1))
  ref = 2 * tau * np.mean(logz - np.diag(logits))
  np.testing.assert_allclose(losses.moco_v3_loss(jnp.asarray(a), jnp.asarray(b),
                                                 temperature=tau), ref, rtol=1e-12)


def test_batch_statistic_losses_are_global_when_sharded():
  """VICReg's and Barlow's batch statistics span the global batch on a sharded input."""
  a, b = (jnp.asarray(x, jnp.float32) for x in _pair(n=16))
  mesh = Mesh(np.array(jax.devices()[:8]), ('data',))
  shard = lambda x: jax.device_put(x, NamedSharding(mesh, P('data')))
  vic = jax.jit(lambda x, y: losses.vicreg_loss(x, y)[0])
  bar = jax.jit(lambda x, y: losses.barlow_twins_loss(x, y, off_diagonal_weight=5e-3))
  for fn in (vic, bar):
    np.testing.assert_allclose(fn(shard(a), shard(b)), fn(a, b), rtol=1e-5)


def test_masked_mse_only_scores_masked_patches():
  rng = np.random.default_rng(0)
  pred, target = rng.normal(size=(2, 2, 4, 5))
  mask = np.array([[1, 0, 1, 0], [0, 0, 1, 1]], np.float64)
  ref = np.sum(np.mean((pred - target) ** 2, -1) * mask) / mask.sum()
  np.testing.assert_allclose(losses.masked_mse(pred, target, mask), ref, rtol=1e-12)
  # Changing visible patches' targets changes nothing.
  target2 = np.where(mask[..., None] == 0, rng.normal(size=target.shape), target)
  np.testing.assert_allclose(losses.masked_mse(pred, target2, mask), ref, rtol=1e-12)
  patches = losses.normalize_patches(jnp.asarray(target))
  np.testing.assert_allclose(np.mean(patches, -1), 0.0, atol=1e-10)
  np.testing.assert_allclose(np.std(patches, -1), 1.0, rtol=1e-4)
