"""The detection evaluator's parts: COCO mAP through pycocotools (perfect predictions score 1,
shuffled ones low), FCOS targets that decode back to their boxes, NMS, and a sharded step
equal to the one-device step."""
import jax
import ml_collections
import numpy as np
import pytest

from sslax import sharding
from sslax.evaluators import coco_metrics
from sslax.evaluators import dense_fit
from sslax.evaluators import detection
from sslax.evaluators import fcos
from sslax.models import dense


def _truth(rng, n_images=12, k=3):
  out = []
  for _ in range(n_images):
    n = int(rng.integers(1, 6))
    xy = rng.uniform(0, 150, (n, 2))
    wh = rng.uniform(8, 60, (n, 2))
    out.append({'height': 240, 'width': 320, 'boxes': np.concatenate([xy, xy + wh], 1),
                'labels': rng.integers(0, k, n)})
  return out


def test_map_of_perfect_and_shuffled_predictions():
  rng = np.random.default_rng(0)
  truth = _truth(rng)
  perfect = [{'boxes': t['boxes'], 'scores': np.ones(len(t['labels'])), 'labels': t['labels']}
             for t in truth]
  s = coco_metrics.mean_ap(truth, perfect, 3)
  assert s['map'] == pytest.approx(1.0) and s['map50'] == pytest.approx(1.0)
  shuffled = [perfect[(i + 1) % len(perfect)] for i in range(len(perfect))]   # other images'
  s = coco_metrics.mean_ap(truth, shuffled, 3)
  assert s['map'] < 0.1 and s['map50'] < 0.2
  assert coco_metrics.mean_ap(truth, [{'boxes': np.zeros((0, 4)), 'scores': [], 'labels': []}]
                              * len(truth), 3) == {'map': 0.0, 'map50': 0.0}


def test_targets_decode_to_their_boxes():
  strides = [2, 4, 8]
  shapes = [(32, 32), (16, 16), (8, 8)]
  centres, per = fcos.positions(shapes, strides)
  ranges = np.concatenate([np.tile(r, (h * w, 1)) for r, (h, w) in
                           zip(fcos.level_ranges(strides), shapes)])
  boxes = np.array([[4, 6, 14, 18], [20, 20, 60, 58], [30, 2, 62, 12]], np.float32)
  cls, ltrb, ctr = fcos.targets(boxes, np.array([2, 0, 1]), centres, per, ranges)
  assert set(np.unique(cls)) == {fcos.BACKGROUND, 0, 1, 2}   # every box gets positions
  pos = cls != fcos.BACKGROUND
  decoded = fcos.to_boxes(ltrb[pos], centres[pos], per[pos])
  np.testing.assert_allclose(decoded, boxes[[{2: 0, 0: 1, 1: 2}[c] for c in cls[pos]]],
                             atol=1e-4)
  assert (ctr[pos] > 0).all() and (ctr[pos] <= 1).all() and (ctr[~pos] == 0).all()
  # The big box is assigned to coarse levels only, the small one to the finest.
  assert per[cls == 0].min() >= 4 and per[cls == 2].max() == 2
  empty = fcos.targets(np.zeros((0, 4)), np.zeros(0), centres, per, ranges)
  assert (empty[0] == fcos.BACKGROUND).all()


def test_nms_and_decode():
  boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
  assert fcos.nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]
  # Decoding the targets as logits gives the boxes back.
  centres, per = fcos.positions([(4, 4)], [8])
  cls = np.full((16, 2), -10.0)
  cls[5, 1] = 10.0
  box = np.log(np.full((16, 4), 1.0))
  found, scores, labels = fcos.decode(cls, box, np.full(16, 10.0), centres, per,
                                      score_threshold=0.5, nms_iou=0.6)
  np.testing.assert_allclose(found, [[4, 4, 20, 20]])
  assert labels.tolist() == [1] and scores[0] > 0.99


@pytest.mark.parametrize('name', ['resnet', 'vit'])
def test_sharded_step_equals_one_device(name):
  from tests.test_segmentation import _encoder, _model
  config, size = _model(name), 32
  params, state = _encoder(config, size)
  rng = np.random.default_rng(0)
  out = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.make_mesh({'data': -1}, devices)
    parts = {**detection.compiled(config, 3, 8, mesh=mesh), 'min_stride': 2}
    enc, stats = dense.encoder_variables(params, state)
    variables, geo = detection.init_variables(parts, enc, stats, size, 0)
    if not out:
      t = [fcos.targets(np.array([[2, 3, 20, 25], [12, 1, 30, 9]], np.float32),
                        np.array([i % 3, 1]), geo['centres'], geo['strides'], geo['ranges'])
           for i in range(8)]
      batch = {'image': rng.integers(0, 255, (8, size, size, 3), dtype=np.uint8),
               'cls': np.stack([x[0] for x in t]), 'ltrb': np.stack([x[1] for x in t]),
               'ctr': np.stack([x[2] for x in t])}
      assert (batch['cls'] != fcos.BACKGROUND).sum() > 0
    out.append(jax.device_get(parts['grads'](variables, stats,
                                             dense_fit.to_mesh(batch, mesh))))
  (loss1, g1), (loss8, g8) = out
  assert np.isfinite(float(loss1)) and abs(float(loss1) - float(loss8)) < 1e-4
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-4), g1, g8)
