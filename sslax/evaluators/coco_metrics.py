"""COCO box mAP through pycocotools (the reference implementation; DESIGN.md's rule: a
well-kept library, not our own matching and interpolation).

`mean_ap(truth, detections)` builds pycocotools' COCO objects in memory: `truth` per image
(height, width, boxes [N, 4] as (x0, y0, x1, y1) pixels, labels [N] contiguous ids),
`detections` per image (boxes, scores, labels) in the same coordinates. Returns mAP@[.5:.95]
(`map`, COCOeval's stats[0]) and mAP@0.5 (`map50`, stats[1]); no detection at all scores 0.
"""
import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import coco
from pycocotools import cocoeval


def _xywh(boxes: np.ndarray) -> list[list[float]]:
  b = np.asarray(boxes, np.float64).reshape(-1, 4)
  return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], -1).tolist()


def mean_ap(truth: Sequence[dict[str, Any]], detections: Sequence[dict[str, Any]],
            num_classes: int) -> dict[str, float]:
  images, annotations, results = [], [], []
  for i, (t, d) in enumerate(zip(truth, detections)):
    images.append({'id': i, 'height': int(t['height']), 'width': int(t['width'])})
    for box, label in zip(_xywh(t['boxes']), np.asarray(t['labels']).tolist()):
      annotations.append({'id': len(annotations) + 1, 'image_id': i, 'category_id': int(label),
                          'bbox': box, 'area': box[2] * box[3], 'iscrowd': 0})
    for box, score, label in zip(_xywh(d['boxes']), np.asarray(d['scores']).tolist(),
                                 np.asarray(d['labels']).tolist()):
      results.append({'image_id': i, 'category_id': int(label), 'bbox': box,
                      'score': float(score)})
  if not results or not annotations:
    return {'map': 0.0, 'map50': 0.0}
  gt = coco.COCO()
  gt.dataset = {'images': images, 'annotations': annotations,
                'categories': [{'id': k} for k in range(num_classes)]}
  with contextlib.redirect_stdout(io.StringIO()):   # pycocotools prints its progress
    gt.createIndex()
    dt = gt.loadRes(results)
    ev = cocoeval.COCOeval(gt, dt, 'bbox')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
  return {'map': max(float(ev.stats[0]), 0.0), 'map50': max(float(ev.stats[1]), 0.0)}
