"""Exact checks of the scores a run reports: a recorder of the calls a run makes to its metric
functions (inputs and result), and reference computations written here from each metric's
definition, in plain Python or float64 NumPy, to recompute a score from the very predictions
the run made.

A test records a run, recomputes every recorded score from its inputs, and checks that the
run's results are those scores: a wrong formula, split, denominator or bookkeeping (the held-out
score of another step, a random-init score under the pretrained key) then fails, where a range
check ([0, 1], >= 0) holds for any output.
"""
from collections import Counter
from collections.abc import Callable, Sequence
import re
import string
from typing import Any, NamedTuple

import numpy as np


class Call(NamedTuple):
  name: str
  args: tuple
  kwargs: dict
  result: Any


def record(monkeypatch, log: list[Call], module: Any, name: str) -> None:
  """Replaces `module.name` with a wrapper that appends each call to `log` when it returns
  (so a call made inside another recorded call comes first)."""
  real: Callable = getattr(module, name)

  def recorded(*args, **kwargs):
    result = real(*args, **kwargs)
    log.append(Call(f'{module.__name__}.{name}', args, kwargs, result))
    return result
  monkeypatch.setattr(module, name, recorded)


def groups(log: Sequence[Call], *closing: str) -> list[list[Call]]:
  """`log` cut after each call named one of `closing`: the calls each closing call made, then
  it."""
  out, current = [], []
  for call in log:
    current.append(call)
    if call.name in closing:
      out.append(current)
      current = []
  assert not current, f'calls after the last {closing}: {[c.name for c in current]}'
  return out


# ---- SQuAD v1.1 (the official evaluate-v1.1.py's definitions) -----------------------------

def _squad_tokens(text: str) -> list[str]:
  text = ''.join(ch for ch in text.lower() if ch not in set(string.punctuation))
  return re.sub(r'\b(a|an|the)\b', ' ', text).split()


def _squad_f1(prediction: str, gold: str) -> float:
  pred, ref = _squad_tokens(prediction), _squad_tokens(gold)
  same = sum((Counter(pred) & Counter(ref)).values())
  return 0.0 if same == 0 else 2 * same / (len(pred) + len(ref))


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
  """Mean over questions of the best EM and F1 over each one's gold answers."""
  em = [max(float(_squad_tokens(p) == _squad_tokens(g)) for g in gs)
        for p, gs in zip(predictions, golds, strict=True)]
  f1 = [max(_squad_f1(p, g) for g in gs) for p, gs in zip(predictions, golds, strict=True)]
  return {'exact_match': float(np.mean(em)), 'f1': float(np.mean(f1))}


# ---- WER / CER (edit distance summed over the split / reference length) -----------------

def _edits(ref: Sequence[str], hyp: Sequence[str]) -> int:
  """Levenshtein distance: substitutions + deletions + insertions."""
  row = list(range(len(hyp) + 1))
  for i, r in enumerate(ref, 1):
    previous, row[0] = row[0], i
    for j, h in enumerate(hyp, 1):
      previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
  return row[-1]


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
  """Corpus WER over whitespace words and CER over the characters of the stripped texts."""
  pairs = list(zip(references, hypotheses, strict=True))
  words = sum(_edits(r.split(), h.split()) for r, h in pairs)
  chars = sum(_edits(r.strip(), h.strip()) for r, h in pairs)
  return {'wer': words / sum(len(r.split()) for r, _ in pairs),
          'cer': chars / sum(len(r.strip()) for r, _ in pairs)}


# ---- Segmentation --------------------------------------------------------------------------

def segmentation_scores(truth: Sequence[np.ndarray], predicted: Sequence[np.ndarray],
                        num_classes: int, ignore: int = 255) -> dict[str, float]:
  """mIoU over the classes in the truth or the predictions of the non-ignored pixels (all
  images pooled), and pixel accuracy."""
  t = np.concatenate([np.asarray(m).ravel() for m in truth]).astype(np.int64)
  p = np.concatenate([np.asarray(m).ravel() for m in predicted]).astype(np.int64)
  assert t.shape == p.shape, 'a predicted mask is not at its image size'
  keep = t != ignore
  t, p = t[keep], p[keep]
  ious = []
  for k in range(num_classes):
    union = np.sum((t == k) | (p == k))
    if union:
      ious.append(np.sum((t == k) & (p == k)) / union)
  return {'miou': float(np.mean(ious)) if ious else 0.0,
          'pixel_accuracy': float(np.mean(t == p))}


# ---- kNN -----------------------------------------------------------------------------------

def knn_accuracy(bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray,
                 query_labels: np.ndarray, *, num_classes: int, k: int,
                 temperature: float) -> float:
  """Wu et al. 2018's weighted vote: cosine similarity, the k most similar bank rows vote for
  their labels with weight exp(similarity / temperature), the largest total wins."""
  unit = lambda x: np.asarray(x, np.float64) / np.linalg.norm(np.asarray(x, np.float64), axis=1,
                                                                keepdims=True)
  similarity = unit(queries) @ unit(bank).T
  nearest = np.argsort(-similarity, axis=1, kind='stable')[:, :k]
  votes = np.zeros((len(queries), num_classes))
  for q, row in enumerate(nearest):
    np.add.at(votes[q], np.asarray(bank_labels)[row], np.exp(similarity[q, row] / temperature))
  return float(np.mean(votes.argmax(1) == np.asarray(query_labels)))


# ---- COCO box mAP (pycocotools' COCOeval for 'bbox', area 'all', 100 detections) ----------

def _iou(a_Nx4: np.ndarray, b_Mx4: np.ndarray) -> np.ndarray:
  """[N, M] IoU of (x0, y0, x1, y1) boxes."""
  w = np.clip(np.minimum(a_Nx4[:, None, 2], b_Mx4[None, :, 2])
              - np.maximum(a_Nx4[:, None, 0], b_Mx4[None, :, 0]), 0, None)
  h = np.clip(np.minimum(a_Nx4[:, None, 3], b_Mx4[None, :, 3])
              - np.maximum(a_Nx4[:, None, 1], b_Mx4[None, :, 1]), 0, None)
  area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
  inter = w * h
  return inter / (area(a_Nx4)[:, None] + area(b_Mx4)[None, :] - inter)


def _average_precision(per_image: list, num_truth: int, threshold: float) -> float:
  """One class at one IoU threshold: each image's detections (best score first) take the
  unmatched true box of highest IoU >= threshold; precision made non-increasing, read at the
  101 recall points 0, 0.01, ..., 1 (0 past the largest recall reached), averaged."""
  scores, hits = [], []
  for boxes, image_scores, truth in per_image:
    iou = _iou(boxes, truth) if len(boxes) and len(truth) else np.zeros((len(boxes), 0))
    taken = np.zeros(len(truth), bool)
    for d in range(len(boxes)):
      match, best = -1, min(threshold, 1 - 1e-10)
      for g in range(len(truth)):
        if not taken[g] and iou[d, g] >= best:
          match, best = g, iou[d, g]
      if match >= 0:
        taken[match] = True
      hits.append(match >= 0)
    scores.extend(image_scores)
  order = np.argsort(-np.asarray(scores, np.float64), kind='mergesort')
  hit = np.asarray(hits, np.float64)[order]
  tp, fp = np.cumsum(hit), np.cumsum(1 - hit)
  recall, precision = tp / num_truth, tp / (tp + fp + np.spacing(1))
  precision = np.maximum.accumulate(precision[::-1])[::-1]
  at = np.searchsorted(recall, np.linspace(0, 1, 101), side='left')
  return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in at]))


def coco_map(truth: Sequence[dict], detections: Sequence[dict], num_classes: int,
             max_detections: int = 100) -> dict[str, float]:
  """{'map': mean AP over IoU 0.50:0.05:0.95 and the classes with a true box, 'map50'}, for
  truth and detections as coco_metrics.mean_ap takes them (x0, y0, x1, y1 pixels)."""
  thresholds = np.linspace(0.5, 0.95, 10)
  ap = []
  for c in range(num_classes):
    per_image = []
    for t, d in zip(truth, detections, strict=True):
      mine = np.asarray(d['labels']).reshape(-1) == c
      boxes = np.asarray(d['boxes'], np.float64).reshape(-1, 4)[mine]
      scores = np.asarray(d['scores'], np.float64).reshape(-1)[mine]
      best = np.argsort(-scores, kind='mergesort')[:max_detections]
      per_image.append((boxes[best], scores[best], np.asarray(
          t['boxes'], np.float64).reshape(-1, 4)[np.asarray(t['labels']).reshape(-1) == c]))
    num_truth = sum(len(g) for *_, g in per_image)
    if num_truth:
      ap.append([_average_precision(per_image, num_truth, t) for t in thresholds])
  if not ap:
    return {'map': 0.0, 'map50': 0.0}
  ap = np.asarray(ap)   # [classes with a true box, thresholds]
  return {'map': float(ap.mean()), 'map50': float(ap[:, 0].mean())}
