"""The segmentation evaluator's parts: mIoU / pixel accuracy (by hand and against
scikit-learn), feature maps and heads on ResNet and ViT, and a sharded step that equals the
one-device step."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from sslax import errors
from sslax import sharding
from sslax.evaluators import dense_fit
from sslax.evaluators import segmentation
from sslax.models import dense


def test_miou_by_hand():
  truth = np.array([[0, 0, 1, 1],
                    [0, 0, 1, 255]], np.uint8)
  predicted = np.array([[0, 1, 1, 1],
                        [0, 0, 0, 2]], np.uint8)
  # class 0: truth 4 px, predicted 4 px (3 of them right) -> 3 / 5
  # class 1: truth 3 px, predicted 3 px (2 right) -> 2 / 4; class 2: only on an ignored
  # pixel, so its union is empty and it is left out.
  c = segmentation.confusion(truth, predicted, 3)
  np.testing.assert_array_equal(c, [[3, 1, 0], [1, 2, 0], [0, 0, 0]])
  s = segmentation.scores(c)
  assert s['miou'] == pytest.approx((3 / 5 + 2 / 4) / 2)
  assert s['pixel_accuracy'] == pytest.approx(5 / 7)


def test_miou_matches_scikit_learn():
  rng = np.random.default_rng(0)
  k = 5
  truth = rng.integers(0, k, (3, 17, 23)).astype(np.uint8)
  truth[:, :2] = 255
  truth[truth == 4] = 0   # class 4 never in the truth ...
  predicted = np.where(rng.random(truth.shape) < 0.6, truth, rng.integers(0, k, truth.shape))
  predicted = np.where(predicted == 255, 1, predicted).astype(np.uint8)   # ... but predicted
  total = sum(segmentation.confusion(t, p, k) for t, p in zip(truth, predicted))
  keep = truth.ravel() != 255
  t, p = truth.ravel()[keep], predicted.ravel()[keep]
  np.testing.assert_array_equal(total, sk_metrics.confusion_matrix(t, p, labels=range(k)))
  present = sorted(set(t) | set(p))
  s = segmentation.scores(total)
  assert s['miou'] == pytest.approx(
      sk_metrics.jaccard_score(t, p, labels=present, average='macro'))
  assert s['pixel_accuracy'] == pytest.approx(sk_metrics.accuracy_score(t, p))


def test_pixel_loss_ignores_255():
  logits = jnp.zeros((1, 2, 2, 3)).at[0, 0, 0, 1].set(5.0)
  mask = jnp.array([[[1, 255], [255, 255]]], jnp.uint8)
  expected = -jax.nn.log_softmax(logits[0, 0, 0])[1]
  assert float(segmentation.pixel_loss(logits, mask)) == pytest.approx(float(expected), rel=1e-4)


def _model(name):
  if name == 'resnet':
    return ml_collections.ConfigDict(dict(
        name='resnet', stem='cifar', stem_width=4, widths=(4, 8), blocks=(1, 1), block='basic',
        norm='batch', zero_init_residual=False, conv_impl='xla'))
  return ml_collections.ConfigDict(dict(
      name='vit', patch_size=4, width=16, depth=1, num_heads=2, mlp_ratio=2, pool='cls',
      pos_emb='sincos', drop_path_rate=0.0, dtype='float32'))


def _encoder(model_config, size):
  from sslax import models
  enc = models.make_encoder(model_config)
  variables = enc.init(jax.random.key(1), jnp.zeros((1, size, size, 3)), train=False)
  # The layout of SimCLR's params / model state.
  return ({'encoder': variables['params'], 'projector': {}},
          {'batch_stats': {'encoder': variables.get('batch_stats', {})}})


@pytest.mark.parametrize('name, shapes', [('resnet', [(16, 16, 4), (8, 8, 8)]),
                                          ('vit', [(4, 4, 16)])])
def test_feature_maps(name, shapes):
  config = _model(name)
  params, state = _encoder(config, 16)
  enc_params, stats = dense.encoder_variables(params, state)
  maps = dense.make_feature_maps(config)(enc_params, stats, jnp.zeros((2, 16, 16, 3)))
  assert [m.shape[1:] for m in maps] == shapes
  # BYOL / MoCo v3 / DINO keep it under 'net'.
  nested = dense.encoder_variables({'net': params}, {'net': state})
  assert jax.tree.structure(nested) == jax.tree.structure((enc_params, stats))
  with pytest.raises(errors.ConfigError, match="an 'encoder' module"):
    dense.encoder_variables({'backbone': {}}, {})


@pytest.mark.parametrize('name, mode', [('resnet', 'fine_tune'), ('vit', 'fine_tune'),
                                        ('resnet', 'linear')])
def test_sharded_step_equals_one_device(name, mode):
  """Loss and gradients with the batch over 8 devices equal those on 1 device."""
  config, size = _model(name), 16
  params, state = _encoder(config, size)
  rng = np.random.default_rng(0)
  batch = {'image': rng.integers(0, 255, (8, size, size, 3), dtype=np.uint8),
           'mask': rng.integers(0, 2, (8, size, size), dtype=np.uint8)}
  batch['mask'][:, :3] = 255
  out = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.make_mesh({'data': -1}, devices)
    head, feature_maps, _, _, _, grads = segmentation.compiled(config, mode, 2, 8, mesh=mesh)
    enc_params, stats = dense.encoder_variables(params, state)
    variables = segmentation.init_variables(head, feature_maps, enc_params, stats, size, 0)
    # A non-zero head, so gradients reach the encoder in fine_tune mode.
    variables['head'] = jax.tree.map(lambda x: x + 0.1, variables['head'])
    out.append(jax.device_get(grads(variables, stats, dense_fit.to_mesh(batch, mesh))))
  (loss1, g1), (loss8, g8) = out
  assert abs(float(loss1) - float(loss8)) < 1e-5
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4), g1, g8)
  encoder_norm = sum(float(np.abs(x).sum()) for x in jax.tree.leaves(g1['encoder']))
  assert (encoder_norm == 0.0) == (mode == 'linear')   # the linear mode's encoder is frozen


def test_held_out_part_steps_and_a_too_long_warmup_naming_the_key():
  # 10 training rows, 20% held out: 2 held out, 8 fitted, 2 epochs at batch 3 = 6 steps.
  ev = {**segmentation.OPTIONAL, 'val_fraction': 0.2, 'epochs': 2, 'batch_size': 3}
  rows = list(range(10))
  plan = dense_fit.plan(rows, ev, seed=0, key='config.evals.seg')
  assert len(plan.val) == 2 and sorted(plan.val + plan.fit) == rows
  assert (plan.per_epoch, plan.steps) == (3, 6)
  assert plan == dense_fit.plan(rows, ev, seed=0, key='config.evals.seg')   # from the seed
  # Was 'segmentation warmup_steps=6 ...', which named no config key.
  with pytest.raises(errors.ConfigError,
                     match=r'config\.evals\.seg\.warmup_steps=6 must be in \[0, 6\) \(the steps '
                           r'of 2 epochs of 8 images at batch 3\); lower it or raise '
                           r'config\.evals\.seg\.epochs'):
    dense_fit.plan(rows, {**ev, 'warmup_steps': 6}, seed=0, key='config.evals.seg')
