"""Tests for sslax.evaluators.knn and sslax.evaluators.linear_probe on synthetic features.

Problem sizes are shared between tests so the jitted solvers compile once per shape.
"""
import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from sklearn.linear_model import LogisticRegression

from sslax.evaluators import knn, linear_probe

NUM_CLASSES, WIDTH, NUM_TRAIN, NUM_TEST = 10, 32, 1000, 2000


def gaussian_blobs(num_train: int, num_test: int, num_classes: int, width: int,
                   separation: float, seed: int) -> tuple[np.ndarray, ...]:
  """(train_feats, train_labels, test_feats, test_labels): unit-variance Gaussians around
  random class centres scaled by `separation`."""
  rng = np.random.default_rng(seed)
  centres_LxD = rng.normal(size=(num_classes, width)) * separation
  # A shared offset checks that probes and kNN do not rely on features centred at the origin.
  offset_D = rng.normal(size=width) * 3.0

  def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
    labels_N = rng.integers(0, num_classes, size=n)
    feats_NxD = centres_LxD[labels_N] + offset_D + rng.normal(size=(n, width))
    return feats_NxD.astype(np.float32), labels_N.astype(np.int32)

  return (*sample(num_train), *sample(num_test))


@pytest.fixture(scope="module")
def separable():
  return gaussian_blobs(NUM_TRAIN, NUM_TEST, NUM_CLASSES, WIDTH, separation=5.0, seed=0)


@pytest.fixture(scope="module")
def random_labels():
  """Features with no information about labels drawn independently of them."""
  rng = np.random.default_rng(1)
  return (rng.normal(size=(NUM_TRAIN, WIDTH)).astype(np.float32),
          rng.integers(0, NUM_CLASSES, NUM_TRAIN).astype(np.int32),
          rng.normal(size=(NUM_TEST, WIDTH)).astype(np.float32),
          rng.integers(0, NUM_CLASSES, NUM_TEST).astype(np.int32))


def assert_near_chance(accuracy: float, num_classes: int, num_test: int) -> None:
  chance = 1.0 / num_classes
  std = np.sqrt(chance * (1 - chance) / num_test)
  assert abs(accuracy - chance) <= 3 * std, (accuracy, chance, std)


# ---------------------------------------------------------------- kNN


def test_knn_separable(separable):
  accuracy = knn.knn_accuracy(*separable, num_classes=NUM_CLASSES, k=20, chunk_size=512)
  assert accuracy >= 0.99


def test_knn_random_labels_near_chance(random_labels):
  accuracy = knn.knn_accuracy(*random_labels, num_classes=NUM_CLASSES, k=20, chunk_size=512)
  assert_near_chance(accuracy, NUM_CLASSES, NUM_TEST)


def test_knn_k1_equals_brute_force_nearest_neighbour():
  rng = np.random.default_rng(2)
  bank_NxD = rng.normal(size=(200, 8)).astype(np.float32)
  labels_N = rng.integers(0, 7, 200).astype(np.int32)
  query_MxD = rng.normal(size=(75, 8)).astype(np.float32)
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  nearest_M = np.argmax(unit(query_MxD).astype(np.float64) @ unit(bank_NxD).T, axis=1)
  # chunk_size 32 leaves a partial (padded) last chunk of 11 queries.
  predicted_M = knn.knn_predict(bank_NxD, labels_N, query_MxD, num_classes=7, k=1,
                                chunk_size=32)
  assert predicted_M.shape == (75,) and predicted_M.dtype == np.int32
  np.testing.assert_array_equal(np.asarray(predicted_M), labels_N[nearest_M])


def test_knn_weighted_vote():
  # Two near neighbours of class 1 outvote three slightly farther ones of class 0 only when
  # the temperature makes similarity count.
  bank_NxD = np.array([[1, 0.01], [1, -0.01], [1, 0.3], [1, -0.3], [1, 0.31]], np.float32)
  labels_N = np.array([1, 1, 0, 0, 0], np.int32)
  query_1xD = np.array([[1.0, 0.0]], np.float32)
  sharp = knn.knn_predict(bank_NxD, labels_N, query_1xD, num_classes=2, k=5, temperature=0.01)
  flat = knn.knn_predict(bank_NxD, labels_N, query_1xD, num_classes=2, k=5, temperature=100.0)
  assert int(sharp[0]) == 1 and int(flat[0]) == 0


def test_knn_chunking_does_not_change_predictions(separable):
  bank, bank_labels, query, _ = separable
  whole = knn.knn_predict(bank, bank_labels, query[:300], num_classes=NUM_CLASSES)
  chunked = knn.knn_predict(bank, bank_labels, query[:300], num_classes=NUM_CLASSES,
                            chunk_size=64)
  np.testing.assert_array_equal(np.asarray(whole), np.asarray(chunked))


def test_knn_sharded_bank_equals_unsharded():
  mesh = Mesh(np.array(jax.devices()).reshape(8), ("data",))
  rng = np.random.default_rng(3)
  bank_NxD = rng.normal(size=(512, 16)).astype(np.float32)
  labels_N = rng.integers(0, 5, 512).astype(np.int32)
  query_MxD = rng.normal(size=(100, 16)).astype(np.float32)
  bank_sharded = jax.device_put(bank_NxD, NamedSharding(mesh, P("data")))
  labels_sharded = jax.device_put(labels_N, NamedSharding(mesh, P("data")))
  assert len(bank_sharded.sharding.device_set) == 8
  single = jax.devices()[0]
  # Queries committed to one device must still combine with a bank on eight.
  query_on_one = jax.device_put(query_MxD, single)
  kwargs = dict(num_classes=5, k=10, chunk_size=48)
  sharded = knn.knn_predict(bank_sharded, labels_sharded, query_on_one, **kwargs)
  unsharded = knn.knn_predict(jax.device_put(bank_NxD, single), jax.device_put(labels_N, single),
                              query_on_one, **kwargs)
  np.testing.assert_array_equal(np.asarray(sharded), np.asarray(unsharded))
  accuracy = knn.knn_accuracy(bank_sharded, labels_sharded, query_MxD,
                              np.asarray(unsharded), **kwargs)
  assert accuracy == 1.0


@pytest.mark.parametrize("change,match", [
    (dict(k=201), "k must be"),
    (dict(k=0), "k must be"),
    (dict(bank_labels_N=np.zeros(199, np.int32)), "bank_labels_N must have shape"),
    (dict(bank_labels_N=np.full(200, 3, np.int32)),
     r"bank_labels_N must lie in \[0, num_classes=3\)"),
    (dict(bank_labels_N=np.full(200, -1, np.int32)), "bank_labels_N must lie"),
    (dict(bank_labels_N=np.zeros(200, np.float32)), "integer"),
    (dict(query_feats_MxD=np.zeros((4, 5), np.float32)), "width"),
    (dict(bank_feats_NxD=np.zeros((200,), np.float32)), "bank_feats_NxD"),
    (dict(temperature=0.0), "temperature"),
    (dict(chunk_size=0), "chunk_size"),
])
def test_knn_rejects_bad_arguments(change, match):
  kwargs = dict(bank_feats_NxD=np.ones((200, 4), np.float32),
                bank_labels_N=np.zeros(200, np.int32),
                query_feats_MxD=np.ones((4, 4), np.float32), num_classes=3)
  kwargs.update(change)
  with pytest.raises(ValueError, match=match):
    knn.knn_predict(**kwargs)


def test_knn_accuracy_rejects_bad_query_labels():
  with pytest.raises(ValueError, match="query_labels_M"):
    knn.knn_accuracy(np.ones((10, 4)), np.zeros(10, np.int32), np.ones((3, 4)),
                     np.zeros(2, np.int32), num_classes=2, k=3)


# ---------------------------------------------------------------- linear probes


def test_logistic_probe_separable(separable):
  result = linear_probe.logistic_probe(*separable, num_classes=NUM_CLASSES)
  assert result["accuracy"] >= 0.99 and result["val_accuracy"] >= 0.99
  assert result["l2"] in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def test_logistic_probe_random_labels_near_chance(random_labels):
  result = linear_probe.logistic_probe(*random_labels, num_classes=NUM_CLASSES)
  assert_near_chance(result["accuracy"], NUM_CLASSES, NUM_TEST)


def test_ridge_probe_separable_and_random(separable, random_labels):
  assert linear_probe.ridge_probe(*separable, num_classes=NUM_CLASSES)["accuracy"] >= 0.99
  result = linear_probe.ridge_probe(*random_labels, num_classes=NUM_CLASSES)
  assert_near_chance(result["accuracy"], NUM_CLASSES, NUM_TEST)


@pytest.mark.parametrize("l2", [1e-4, 1e-2])
def test_logistic_probe_matches_sklearn_on_overlapping_classes(l2):
  train_x, train_y, test_x, test_y = gaussian_blobs(NUM_TRAIN, NUM_TEST, NUM_CLASSES, WIDTH,
                                                    separation=0.4, seed=4)
  result = linear_probe.logistic_probe(train_x, train_y, test_x, test_y,
                                       num_classes=NUM_CLASSES, l2_grid=(l2,))
  assert 0.4 < result["accuracy"] < 0.95  # genuinely overlapping, far from chance (0.1)
  mean, std = train_x.mean(axis=0), train_x.std(axis=0)
  # Our objective is mean cross-entropy + l2/2 ||W||^2; sklearn's is C * sum + 1/2 ||W||^2.
  sklearn_probe = LogisticRegression(C=1.0 / (l2 * len(train_x)), max_iter=1000)
  sklearn_probe.fit((train_x - mean) / std, train_y)
  sklearn_accuracy = sklearn_probe.score((test_x - mean) / std, test_y)
  assert abs(result["accuracy"] - sklearn_accuracy) <= 0.02, (result, sklearn_accuracy)


def test_logistic_probe_picks_l2_on_held_out_data(separable):
  # A huge penalty flattens the weights until the bias (the class prior) decides, so held-out
  # accuracy must pick the weak one even though ties would favour the larger.
  result = linear_probe.logistic_probe(*separable, num_classes=NUM_CLASSES, l2_grid=(1e-6, 1e3))
  assert result["l2"] == 1e-6 and result["accuracy"] >= 0.99


PROBE_ARGS = dict(train_feats=np.ones((20, 4), np.float32), train_labels=np.arange(20) % 3,
                  test_feats=np.ones((5, 4), np.float32), test_labels=np.arange(5) % 3,
                  num_classes=3)


@pytest.mark.parametrize("probe", [linear_probe.logistic_probe, linear_probe.ridge_probe])
@pytest.mark.parametrize("change,match", [
    (dict(train_labels=np.arange(20) % 4), r"train_labels must lie in \[0, num_classes=3\)"),
    (dict(test_labels=-np.ones(5, np.int64)), "test_labels must lie"),
    (dict(train_labels=np.zeros(19, np.int64)), "train_labels must have shape"),
    (dict(test_labels=np.zeros(5, np.float32)), "test_labels must hold integer"),
    (dict(train_feats=np.ones((0, 4)), train_labels=np.zeros(0, np.int64)), "train_feats"),
    (dict(test_feats=np.ones((0, 4)), test_labels=np.zeros(0, np.int64)), "test_feats"),
    (dict(test_feats=np.ones((5, 3), np.float32)), "test_feats has width"),
    (dict(train_feats=np.full((20, 4), np.nan, np.float32)), "train_feats contains NaN"),
    (dict(num_classes=1, train_labels=np.zeros(20, np.int64),
          test_labels=np.zeros(5, np.int64)), "num_classes"),
])
def test_probes_reject_bad_inputs(probe, change, match):
  with pytest.raises(ValueError, match=match):
    probe(**{**PROBE_ARGS, **change})


@pytest.mark.parametrize("change,match", [
    (dict(l2_grid=()), "l2_grid"),
    (dict(l2_grid=(1e-3, -1.0)), "l2_grid"),
    (dict(val_fraction=0.0), "val_fraction"),
    (dict(val_fraction=1.0), "val_fraction"),
    (dict(steps=0), "steps"),
])
def test_logistic_probe_rejects_bad_options(change, match):
  with pytest.raises(ValueError, match=match):
    linear_probe.logistic_probe(**PROBE_ARGS, **change)


def test_ridge_probe_rejects_bad_l2():
  with pytest.raises(ValueError, match="l2"):
    linear_probe.ridge_probe(**PROBE_ARGS, l2=0.0)
