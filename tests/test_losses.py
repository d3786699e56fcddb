"""Tests for sslax.losses.contrastive: NT-Xent against a float64 reference and optax, sharded ==
unsharded, and properties that follow from the definition (Chen et al. 2020, eq. 1)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sslax import losses

# Jitted once with temperature as a traced argument: eager dispatch compiles every primitive
# separately (~1 s per fresh shape on CPU), which would dominate these tests' run time.
info_nce = jax.jit(lambda a, b, t: losses.info_nce(a, b, temperature=t))
nt_xent_logits = jax.jit(lambda a, b, t: losses.nt_xent_logits(a, b, temperature=t))


def nt_xent_reference(z_a_NxD: np.ndarray, z_b_NxD: np.ndarray, temperature: float) -> float:
  """NT-Xent written straight from the paper, one anchor at a time, in float64 numpy."""
  z_2NxD = np.concatenate([z_a_NxD, z_b_NxD]).astype(np.float64)
  z_2NxD /= np.linalg.norm(z_2NxD, axis=1, keepdims=True)
  two_n = z_2NxD.shape[0]
  n = two_n // 2
  total = 0.0
  for i in range(two_n):
    positive = (i + n) % two_n
    sims = [float(z_2NxD[i] @ z_2NxD[k]) / temperature for k in range(two_n)]
    # Shift by the largest candidate so exp() cannot overflow at small temperatures.
    shift = max(sims[k] for k in range(two_n) if k != i)
    denominator = sum(np.exp(sims[k] - shift) for k in range(two_n) if k != i)
    total += -(sims[positive] - shift - np.log(denominator))
  return total / two_n


@pytest.mark.parametrize("n,d,temperature", [(1, 3, 0.5), (5, 8, 0.1), (16, 4, 1.0)])
def test_info_nce_matches_float64_reference(n, d, temperature):
  rng = np.random.default_rng(n)
  z_a = rng.normal(size=(n, d))
  z_b = rng.normal(size=(n, d))
  expected = nt_xent_reference(z_a, z_b, temperature)
  # jax.enable_x64 (formerly jax.experimental.enable_x64) scopes 64-bit types to this block.
  with jax.enable_x64(True):
    loss = info_nce(jnp.asarray(z_a, jnp.float64), jnp.asarray(z_b, jnp.float64), temperature)
    assert loss.dtype == jnp.float64
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("n,d,temperature", [(2, 3, 0.5), (16, 8, 0.1), (32, 4, 1.0)])
def test_info_nce_and_its_gradients_match_optax_ntxent(n, d, temperature):
  """optax.losses.ntxent (a well-kept implementation) is the same loss when the two views of
  example i share the label i: one positive per anchor, every other row a negative, the mean
  over all 2N anchors."""
  rng = np.random.default_rng(n)
  z_a = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
  z_b = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
  labels_2N = jnp.concatenate([jnp.arange(n), jnp.arange(n)])
  ours = jax.jit(jax.value_and_grad(
      lambda a, b: losses.info_nce(a, b, temperature=temperature), argnums=(0, 1)))
  theirs = jax.jit(jax.value_and_grad(
      lambda a, b: optax.losses.ntxent(jnp.concatenate([a, b]), labels_2N, temperature),
      argnums=(0, 1)))
  (value, grads), (expected, expected_grads) = ours(z_a, z_b), theirs(z_a, z_b)
  np.testing.assert_allclose(float(value), float(expected), rtol=1e-5)
  for g, e in zip(grads, expected_grads):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


def test_info_nce_float32_and_bfloat16_compute_in_float32():
  rng = np.random.default_rng(0)
  z_a = rng.normal(size=(8, 6)).astype(np.float32)
  z_b = rng.normal(size=(8, 6)).astype(np.float32)
  expected = nt_xent_reference(z_a, z_b, 0.2)
  loss32 = info_nce(jnp.asarray(z_a), jnp.asarray(z_b), 0.2)
  assert loss32.dtype == jnp.float32
  np.testing.assert_allclose(float(loss32), expected, rtol=1e-5)
  logits, _ = nt_xent_logits(jnp.asarray(z_a, jnp.bfloat16), jnp.asarray(z_b, jnp.bfloat16), 0.2)
  assert logits.dtype == jnp.float32


def test_logits_layout():
  rng = np.random.default_rng(1)
  z_a = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  z_b = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  logits, labels = nt_xent_logits(z_a, z_b, 0.5)
  assert logits.shape == (6, 6) and labels.shape == (6,)
  np.testing.assert_array_equal(labels, [3, 4, 5, 0, 1, 2])
  assert np.all(np.isfinite(np.asarray(logits)))
  assert np.all(np.diag(np.asarray(logits)) < -1e8)
  # Off-diagonal entries are cosine / temperature, hence within [-2, 2] for tau = 0.5.
  off_diagonal = np.asarray(logits)[~np.eye(6, dtype=bool)]
  assert np.all(np.abs(off_diagonal) <= 2.0 + 1e-5)


def test_sharded_equals_unsharded_value_and_grads():
  mesh = Mesh(np.array(jax.devices()).reshape(8), ("data",))
  rng = np.random.default_rng(2)
  z_a = rng.normal(size=(64, 16)).astype(np.float32)
  z_b = rng.normal(size=(64, 16)).astype(np.float32)
  value_and_grad = jax.jit(jax.value_and_grad(
      lambda a, b: losses.info_nce(a, b, temperature=0.1), argnums=(0, 1)))

  sharding = NamedSharding(mesh, P("data"))
  a_sharded, b_sharded = jax.device_put(z_a, sharding), jax.device_put(z_b, sharding)
  assert len(a_sharded.sharding.device_set) == 8
  single = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  a_single, b_single = jax.device_put(z_a, single), jax.device_put(z_b, single)

  loss_sharded, (grad_a_sharded, grad_b_sharded) = value_and_grad(a_sharded, b_sharded)
  loss_single, (grad_a_single, grad_b_single) = value_and_grad(a_single, b_single)
  np.testing.assert_allclose(float(loss_sharded), float(loss_single), rtol=1e-5)
  np.testing.assert_allclose(float(loss_sharded), nt_xent_reference(z_a, z_b, 0.1), rtol=1e-5)
  for sharded, single_device in [(grad_a_sharded, grad_a_single), (grad_b_sharded, grad_b_single)]:
    np.testing.assert_allclose(np.asarray(sharded), np.asarray(single_device), rtol=1e-5,
                               atol=1e-7)


def test_invariant_to_scaling_embeddings():
  rng = np.random.default_rng(3)
  z_a = jnp.asarray(rng.normal(size=(10, 5)), jnp.float32)
  z_b = jnp.asarray(rng.normal(size=(10, 5)), jnp.float32)
  scale_N = jnp.asarray(rng.uniform(0.1, 50.0, size=(10, 1)), jnp.float32)
  base = info_nce(z_a, z_b, 0.3)
  scaled = info_nce(z_a * scale_N, z_b * 7.0, 0.3)
  np.testing.assert_allclose(float(scaled), float(base), rtol=1e-5)


def test_identical_orthogonal_views_at_small_temperature_give_zero():
  z_NxD = jnp.eye(8, dtype=jnp.float32)[:6] * 3.0
  loss = info_nce(z_NxD, z_NxD, 0.01)
  # Each anchor's positive scores 1/tau = 100 and every negative 0, so loss ~ 10 e^-100.
  assert float(loss) < 1e-6


def test_single_example_has_zero_loss():
  # With N = 1 each of the 2 anchors has only its positive as a candidate.
  rng = np.random.default_rng(4)
  z_a = jnp.asarray(rng.normal(size=(1, 4)), jnp.float32)
  z_b = jnp.asarray(rng.normal(size=(1, 4)), jnp.float32)
  np.testing.assert_allclose(float(info_nce(z_a, z_b, 0.5)), 0.0, atol=1e-7)


@pytest.mark.parametrize("n", [2, 5, 32])
def test_all_equal_embeddings_give_log_2n_minus_1(n):
  z_NxD = jnp.ones((n, 4), jnp.float32)
  loss = info_nce(z_NxD, z_NxD, 0.1)
  np.testing.assert_allclose(float(loss), np.log(2 * n - 1), rtol=1e-5)


def test_gradients_finite_with_zero_and_duplicate_embeddings():
  z_a = jnp.zeros((4, 3), jnp.float32).at[0].set(1.0)
  z_b = jnp.ones((4, 3), jnp.float32)
  grads = jax.jit(jax.grad(lambda a, b: info_nce(a, b, 0.05), argnums=(0, 1)))(z_a, z_b)
  for grad in grads:
    assert np.all(np.isfinite(np.asarray(grad)))


def test_contrastive_accuracy():
  z_NxD = jnp.eye(4, dtype=jnp.float32)
  logits, labels = nt_xent_logits(z_NxD, z_NxD, 0.1)
  assert float(losses.contrastive_accuracy(logits, labels)) == 1.0
  # Swapping the second view's rows makes every anchor's nearest other anchor a wrong one.
  logits, labels = nt_xent_logits(z_NxD, z_NxD[::-1], 0.1)
  assert float(losses.contrastive_accuracy(logits, labels)) == 0.0


def test_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match="z_a_NxD"):
    info_nce(jnp.ones((4, 3)), jnp.ones((5, 3)), 0.1)
  with pytest.raises(ValueError, match="z_a_NxD"):
    info_nce(jnp.ones((4,)), jnp.ones((4,)), 0.1)
