"""FCOS (Tian et al. 2019, "FCOS: Fully Convolutional One-Stage Object Detection"): targets,
losses and decoding for the `detection` evaluator.

Every position of every pyramid level is a candidate. A position whose centre lies inside a
box (within `radius` strides of the box's centre: FCOS's centre sampling) and whose largest
distance to the box's sides falls in its level's range (`level_ranges`) is a positive for
that box (the smallest such box when several qualify); the rest are background. Positives
regress their distances (l, t, r, b) to the box's sides, in units of the level's stride
(predicted on a log scale), and the box's centre-ness, sqrt(min(l,r)/max(l,r) *
min(t,b)/max(t,b)).

Losses, over the global batch: sigmoid focal loss on the class logits of every position
(optax.sigmoid_focal_loss, alpha 0.25, gamma 2) / number of positives; GIoU loss of the
positives' boxes weighted by their centre-ness target / its sum; binary cross-entropy of the
centre-ness / number of positives. Decoding: score = sqrt(sigmoid(class) *
sigmoid(centre-ness)); the best `pre_nms` above `score_threshold`, per-class NMS at `nms_iou`,
then the `max_detections` best.

Targets and decoding run on the host in numpy (per image; boxes are ragged), losses in JAX.
Shape suffixes: B batch, P positions over all levels, K classes, N boxes.
"""
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

BACKGROUND = -1
# Box distances are predicted as log(strides); clipped before exp so an early, wild output
# cannot overflow to inf (and NaN in the GIoU).
MAX_LOG_DISTANCE = 8.0


def positions(level_shapes: Sequence[tuple[int, int]],
              strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
  """(centres [P, 2] as (x, y) in pixels, stride of each position [P])."""
  centres, per = [], []
  for (h, w), s in zip(level_shapes, strides):
    ys, xs = np.mgrid[0:h, 0:w]
    centres.append(np.stack([(xs.ravel() + 0.5) * s, (ys.ravel() + 0.5) * s], -1))
    per.append(np.full(h * w, s, np.float32))
  return np.concatenate(centres).astype(np.float32), np.concatenate(per)


def level_ranges(strides: Sequence[int]) -> list[tuple[float, float]]:
  """Max-distance range of each level: (4s, 8s], the first from 0, the last to infinity
  (FCOS's 0/64/128/256/512 bounds at strides 8-128 are 8s; 4s joins them up)."""
  out = [(4.0 * s, 8.0 * s) for s in strides]
  out[0] = (0.0, out[0][1])
  out[-1] = (out[-1][0], np.inf)
  return out


def targets(boxes_Nx4: np.ndarray, labels_N: np.ndarray, centres_Px2: np.ndarray,
            strides_P: np.ndarray, ranges_P: np.ndarray, radius: float = 1.5):
  """(class [P] int32, BACKGROUND for none; ltrb [P, 4] in strides; centre-ness [P])."""
  p = len(centres_Px2)
  cls, ltrb, ctr = np.full(p, BACKGROUND, np.int32), np.zeros((p, 4), np.float32), np.zeros(
      p, np.float32)
  if len(boxes_Nx4) == 0:
    return cls, ltrb, ctr
  b = np.asarray(boxes_Nx4, np.float32)[None]            # [1, N, 4]
  x, y = centres_Px2[:, 0:1], centres_Px2[:, 1:2]        # [P, 1]
  dist = np.stack([x - b[..., 0], y - b[..., 1], b[..., 2] - x, b[..., 3] - y], -1)  # [P,N,4]
  cx, cy = (b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2
  r = radius * strides_P[:, None]
  near = (np.abs(x - cx) < r) & (np.abs(y - cy) < r)
  reach = dist.max(-1)
  ok = ((dist.min(-1) > 0) & near & (reach > ranges_P[:, 0:1]) & (reach <= ranges_P[:, 1:2]))
  area = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]))
  best = np.where(ok, area, np.inf).argmin(-1)           # the smallest qualifying box
  pos = ok.any(-1)
  cls[pos] = np.asarray(labels_N, np.int32)[best[pos]]
  d = dist[np.arange(p), best]
  ltrb[pos] = d[pos] / strides_P[pos, None]
  lr, tb = d[pos][:, [0, 2]], d[pos][:, [1, 3]]
  ctr[pos] = np.sqrt(lr.min(-1) / lr.max(-1) * tb.min(-1) / tb.max(-1))
  return cls, ltrb, ctr


def to_boxes(ltrb_Px4, centres_Px2, strides_P):
  """Distances (in strides) -> (x0, y0, x1, y1) pixels; numpy or jax arrays."""
  d = ltrb_Px4 * strides_P[..., None]
  x, y = centres_Px2[..., 0], centres_Px2[..., 1]
  lib = jnp if isinstance(d, jax.Array) else np
  return lib.stack([x - d[..., 0], y - d[..., 1], x + d[..., 2], y + d[..., 3]], -1)


def giou_loss(pred_Px4: jax.Array, target_Px4: jax.Array) -> jax.Array:
  """1 - generalised IoU (Rezatofighi et al. 2019) of (x0, y0, x1, y1) boxes, per box."""
  area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
  lo = jnp.maximum(pred_Px4[..., :2], target_Px4[..., :2])
  hi = jnp.minimum(pred_Px4[..., 2:], target_Px4[..., 2:])
  inter = jnp.prod(jnp.clip(hi - lo, 0), -1)
  union = area(pred_Px4) + area(target_Px4) - inter
  iou = inter / jnp.maximum(union, 1e-9)
  hull = jnp.prod(jnp.maximum(pred_Px4[..., 2:], target_Px4[..., 2:])
                  - jnp.minimum(pred_Px4[..., :2], target_Px4[..., :2]), -1)
  return 1.0 - (iou - (hull - union) / jnp.maximum(hull, 1e-9))


def loss(cls_BxPxK, box_BxPx4, ctr_BxP, target: dict[str, jax.Array]) -> jax.Array:
  """The FCOS loss of a batch (see the module doc); `target` has cls [B, P], ltrb [B, P, 4]
  and ctr [B, P] (`targets`)."""
  k = cls_BxPxK.shape[-1]
  cls_t = target['cls']
  pos = cls_t != BACKGROUND
  num_pos = jnp.maximum(jnp.sum(pos), 1).astype(jnp.float32)
  one_hot = jax.nn.one_hot(jnp.where(pos, cls_t, 0), k) * pos[..., None]
  focal = optax.sigmoid_focal_loss(cls_BxPxK.astype(jnp.float32), one_hot, alpha=0.25,
                                   gamma=2.0).sum() / num_pos
  # GIoU is scale-free and both boxes share the position's centre, so compare them as
  # distances in strides around the origin.
  origin = jnp.zeros(box_BxPx4.shape[:-1] + (2,), jnp.float32)
  unit = jnp.ones(box_BxPx4.shape[:-1], jnp.float32)
  pred = to_boxes(jnp.exp(jnp.minimum(box_BxPx4.astype(jnp.float32), MAX_LOG_DISTANCE)), origin,
                  unit)
  true = to_boxes(target['ltrb'], origin, unit)
  weight = target['ctr'] * pos
  box = jnp.sum(giou_loss(pred, true) * weight) / jnp.maximum(jnp.sum(weight), 1e-6)
  centre = jnp.sum(optax.sigmoid_binary_cross_entropy(ctr_BxP.astype(jnp.float32),
                                                      target['ctr']) * pos) / num_pos
  return focal + box + centre


def nms(boxes_Nx4: np.ndarray, scores_N: np.ndarray, iou: float) -> np.ndarray:
  """Indices kept by greedy non-maximum suppression, best first."""
  order = np.argsort(-scores_N)
  keep = []
  area = (boxes_Nx4[:, 2] - boxes_Nx4[:, 0]) * (boxes_Nx4[:, 3] - boxes_Nx4[:, 1])
  while order.size:
    i = order[0]
    keep.append(i)
    lo = np.maximum(boxes_Nx4[i, :2], boxes_Nx4[order[1:], :2])
    hi = np.minimum(boxes_Nx4[i, 2:], boxes_Nx4[order[1:], 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)
    overlap = inter / np.maximum(area[i] + area[order[1:]] - inter, 1e-9)
    order = order[1:][overlap <= iou]
  return np.asarray(keep, np.int64)


def decode(cls_PxK: np.ndarray, box_Px4: np.ndarray, ctr_P: np.ndarray, centres_Px2,
           strides_P, *, score_threshold: float, nms_iou: float, pre_nms: int = 1000,
           max_detections: int = 100):
  """(boxes [M, 4] pixels of the input view, scores [M], labels [M]) of one image."""
  sig = lambda z: 1.0 / (1.0 + np.exp(-z))
  scores_PxK = np.sqrt(sig(cls_PxK) * sig(ctr_P)[:, None])
  flat = scores_PxK.ravel()
  idx = np.flatnonzero(flat > score_threshold)
  idx = idx[np.argsort(-flat[idx])[:pre_nms]]
  where, label = np.divmod(idx, cls_PxK.shape[1])
  boxes = to_boxes(np.exp(np.minimum(box_Px4[where], MAX_LOG_DISTANCE)), centres_Px2[where],
                   strides_P[where])
  scores = flat[idx]
  kept = [i for c in np.unique(label) for i in np.flatnonzero(label == c)[
      nms(boxes[label == c], scores[label == c], nms_iou)]]
  kept = np.asarray(kept, np.int64)
  kept = kept[np.argsort(-scores[kept])[:max_detections]] if kept.size else kept
  return boxes[kept], scores[kept], label[kept]
