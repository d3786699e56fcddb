"""The dense evaluators end to end: configs/simclr_microscopy.py:smoke pretrains on small
synthetic folders' images and scores segmentation (both modes) at its final evaluation, then
`python -m sslax.evaluate --evals seg_linear` scores it again with its source named on the
command line; :bccd,smoke pretrains and sslax.evaluate's run scores detection. Every score
is recomputed from the run's own predictions (tests/exact_metrics.py). (The real dsb2018 and
bccd runs are in docs/dense.md.)"""
import json
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from sslax import evaluate
from sslax import train
from sslax.data import dense_augment
from sslax.evaluators import coco_metrics
from sslax.evaluators import dense_tasks
from sslax.evaluators import segmentation
from tests import exact_metrics
from tests.conftest import REPO


def _segfolder(root):
  """Dark images with bright rectangles, class 1 under them; a few pixels ignored."""
  rng = np.random.default_rng(0)
  root.mkdir()
  (root / 'classes.txt').write_text('background\nblob\n')
  for split, n in (('train', 12), ('test', 4)):
    (root / split / 'images').mkdir(parents=True)
    (root / split / 'masks').mkdir(parents=True)
    for i in range(n):
      h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
      mask = np.zeros((h, w), np.uint8)
      for _ in range(2):
        y, x = rng.integers(0, h - 6), rng.integers(0, w - 6)
        mask[y:y + 6, x:x + 6] = 1
      mask[0, 0] = 255
      image = (40 + 180 * mask[..., None] + rng.integers(0, 30, (h, w, 3))).astype(np.uint8)
      PIL.Image.fromarray(image).save(root / split / 'images' / f'{i}.png')
      PIL.Image.fromarray(mask).save(root / split / 'masks' / f'{i}.png')


def _masks(root, split, shorter=0):
  """A split's masks as bytes, sorted (the evaluators hold them in their own order); with
  `shorter`, shrunk with their images as the evaluators keep training pairs."""
  out = []
  for f in (root / split / 'masks').glob('*.png'):
    mask = np.asarray(PIL.Image.open(f))
    if shorter:
      image = np.asarray(PIL.Image.open(root / split / 'images' / f.name))
      mask = dense_augment.shrink(image, mask, shorter)[1]
    out.append(mask.tobytes())
  return sorted(out)


def _fine_tunes(log, names):
  """The recorded dense fine-tunes as (result key prefix, evaluator name, held-out scoring
  calls, test scoring call, the dense_tasks.score call): pretrained first, then random init
  (train.evaluate's order), each evaluator once per encoder."""
  out, seen = [], set()
  for *held_out, test, run in exact_metrics.groups(log, 'sslax.evaluators.dense_tasks.score'):
    ev = run.args[1]
    name = next(n for n, e in names.items() if (e.type, e.get('mode')) == (ev.type, ev.get('mode')))
    out.append(('random_init/' if name in seen else '', name, held_out, test, run))
    seen.add(name)
  assert len(out) == 2 * len(names), [(p, n) for p, n, *_ in out]
  return out


def test_segmentation_from_training_and_from_the_command_line(tmp_path, monkeypatch):
  seg = tmp_path / 'seg'
  _segfolder(seg)
  from sslax.configs import simclr_microscopy
  config = simclr_microscopy.get_config('smoke')
  config.data.source = f'folder:{seg}/{{split}}/images'
  config.eval.source = f'segfolder:{seg}'
  config.data.data_dir = str(tmp_path / 'tfds')
  config.progress_bar = False
  log = []
  exact_metrics.record(monkeypatch, log, segmentation, 'split_scores')
  exact_metrics.record(monkeypatch, log, dense_tasks, 'score')
  results = train.run(config, str(tmp_path / 'run'))
  # Every score recomputed from the run's own predicted masks (tests/exact_metrics.py): the
  # test one over the 4 test masks at their own size, `val_miou` the best over the held-out
  # training images.
  test_masks = _masks(seg, 'test')
  fine_tunes = _fine_tunes(log, {n: config.evals[n] for n in ('seg_linear', 'seg_fine_tune')})
  for prefix, name, held_out, test, _ in fine_tunes:
    key, ev = f'{prefix}{name}', config.evals[name]
    train_masks = _masks(seg, 'train', dense_augment.max_shorter_side(ev.image_size,
                                                                      ev.scale_range))
    assert sorted(m.tobytes() for _, m in test.args[1]) == test_masks, key
    assert held_out, key
    for call in (*held_out, test):
      predicted, views, num_classes = call.args
      assert call.result == pytest.approx(exact_metrics.segmentation_scores(
          [m for _, m in views], predicted, num_classes), rel=1e-12, abs=1e-12), key
    for call in held_out:
      assert {m.tobytes() for _, m in call.args[1]} <= set(train_masks), key
    assert results[f'{key}/miou'] == test.result['miou'], key
    assert results[f'{key}/pixel_accuracy'] == test.result['pixel_accuracy'], key
    assert results[f'{key}/val_miou'] == max(c.result['miou'] for c in held_out), key
  for name in ('seg_linear', 'seg_fine_tune'):
    assert (tmp_path / 'run' / f'{name}.png').exists()
  assert 'raw_input/logistic/accuracy' not in results
  out = subprocess.run(
      [sys.executable, '-m', 'sslax.evaluate', '--workdir', str(tmp_path / 'run'),
       '--evals', 'seg_linear', f'--config.evals.seg_linear.source=segfolder:{seg}',
       '--config.evals.seg_linear.epochs=2', '--output_dir', str(tmp_path / 'eval')],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert '| seg_linear/miou |' in out.stdout
  scored = json.loads((tmp_path / 'eval' / 'results.json').read_text())
  assert {'seg_linear/miou', 'random_init/seg_linear/pixel_accuracy'} <= set(scored)
  assert (tmp_path / 'eval' / 'seg_linear.png').exists()


def test_a_source_of_the_wrong_kind_is_refused_naming_the_key(tmp_path):
  from sslax.configs import simclr_microscopy
  from sslax.evaluators import options
  config = simclr_microscopy.get_config('smoke')
  _segfolder(tmp_path / 'seg')
  config.evals.seg_linear.source = f'folder:{tmp_path}/seg/{{split}}/images'
  with pytest.raises(ValueError, match=r'config.evals.seg_linear .* reads a segfolder: source'):
    options.check(config)
  config.evals.seg_linear.source = ''
  config.evals.seg_linear.mode = 'frozen'
  with pytest.raises(ValueError, match=r"seg_linear.mode='frozen' is unknown"):
    options.check(config)


def _coco(root):
  """Two bright rectangles per dark 48x64 image, as COCO JSON + flat image folders."""
  rng = np.random.default_rng(1)
  for split, n in (('train', 12), ('test', 4)):
    (root / split).mkdir(parents=True)
    images, annotations = [], []
    for i in range(n):
      image = rng.integers(0, 30, (48, 64, 3)).astype(np.uint8)
      for j in range(2):
        x, y, w, h = int(rng.integers(0, 40)), int(rng.integers(0, 28)), 16, 12 + 4 * j
        image[y:y + h, x:x + w] += 180
        annotations.append({'id': len(annotations), 'image_id': i, 'category_id': j,
                            'bbox': [x, y, w, h]})
      PIL.Image.fromarray(image).save(root / split / f'{i}.png')
      images.append({'id': i, 'file_name': f'{i}.png', 'width': 64, 'height': 48})
    (root / f'{split}.json').write_text(json.dumps({
        'images': images, 'annotations': annotations,
        'categories': [{'id': 0, 'name': 'a'}, {'id': 1, 'name': 'b'}]}))


def _xyxy(root, split):
  """Each image's true boxes (x0, y0, x1, y1) and labels, in file order, from the COCO JSON."""
  data = json.loads((root / f'{split}.json').read_text())
  out = {i['id']: ([], []) for i in data['images']}
  for a in data['annotations']:
    x, y, w, h = a['bbox']
    out[a['image_id']][0].append([x, y, x + w, y + h])
    out[a['image_id']][1].append(a['category_id'])
  return [(np.asarray(b, np.float64), np.asarray(l)) for b, l in out.values()]


def test_detection_through_sslax_evaluate(tmp_path, monkeypatch, capsys):
  """Pretraining without it (the train loop's final evaluation is the segmentation test's
  path, the command line too), then the detection evaluator through sslax.evaluate's run,
  its source named as --config.evals.detection.source would, and every mAP recomputed from
  the boxes it predicted."""
  det = tmp_path / 'det'
  _coco(det)
  from sslax.configs import simclr_microscopy
  config = simclr_microscopy.get_config('bccd,smoke')
  config.data.source = f'folder:{det}'
  config.eval.source = f'coco:{det}'
  config.data.data_dir = str(tmp_path / 'tfds')
  config.progress_bar = False
  config.evals.detection.enabled = False
  train.run(config, str(tmp_path / 'run'))
  capsys.readouterr()
  log = []
  exact_metrics.record(monkeypatch, log, coco_metrics, 'mean_ap')
  exact_metrics.record(monkeypatch, log, dense_tasks, 'score')
  saved = evaluate.load_config(str(tmp_path / 'run'))
  saved.evals.detection.source = f'coco:{det}'
  # A one-epoch head scores every box under the default 0.05: keep them all (NMS and the
  # 100 best still apply), so the mAPs below are computed over real detections.
  saved.evals.detection.score_threshold = 0.0
  scored = evaluate.run(saved, str(tmp_path / 'run'), evals=['detection'],
                        output_dir=str(tmp_path / 'eval'))
  assert json.loads((tmp_path / 'eval' / 'results.json').read_text()) == pytest.approx(scored)
  test_truth, train_truth = _xyxy(det, 'test'), _xyxy(det, 'train')
  for prefix, _, held_out, test, _ in _fine_tunes(log, {'detection': saved.evals.detection}):
    truth, found, num_classes = test.args
    assert num_classes == 2 and len(truth) == len(test_truth)
    assert all(len(f['boxes']) for f in found), prefix
    for t, (boxes, labels) in zip(truth, test_truth):   # test boxes at the image's own size
      np.testing.assert_allclose(t['boxes'], boxes, atol=1e-4)
      np.testing.assert_array_equal(t['labels'], labels)
    assert held_out, prefix
    for call in held_out:   # a held-out training image, its boxes scaled with it
      for t in call.args[0]:
        scale = np.array([t['width'] / 64, t['height'] / 48] * 2)
        assert any(np.allclose(t['boxes'], boxes * scale, atol=1e-3)
                   and np.array_equal(t['labels'], labels) for boxes, labels in train_truth)
    for call in (*held_out, test):
      assert call.result == pytest.approx(exact_metrics.coco_map(*call.args), abs=1e-9)
    assert scored[f'{prefix}detection/map'] == test.result['map'], prefix
    assert scored[f'{prefix}detection/map50'] == test.result['map50'], prefix
    assert scored[f'{prefix}detection/val_map50'] == max(c.result['map50'] for c in held_out)
  # The printed table is the results.json it wrote, pretrained next to random init.
  out = capsys.readouterr().out
  assert (f"| detection/map50 | {scored['detection/map50']:.4f} | "
          f"{scored['random_init/detection/map50']:.4f} |") in out, out
  assert (tmp_path / 'eval' / 'detection.png').exists()


def test_map_of_boxes_made_for_it():
  """mAP in closed form: class 0's one detection overlaps its box with IoU 0.625 (a hit at
  IoU thresholds 0.50, 0.55, 0.60 of the ten: AP 1 at 0.5, 0.3 over 0.50:0.95); class 1's
  exact box ranks second behind a miss (precision 1/2 at full recall: AP 0.5 everywhere)."""
  truth = [{'height': 48, 'width': 64, 'boxes': np.array([[0, 0, 20, 10], [30, 20, 50, 40]]),
            'labels': np.array([0, 1])}]
  found = [{'boxes': np.array([[0, 0, 12.5, 10], [0, 30, 10, 40], [30, 20, 50, 40]]),
            'scores': np.array([0.9, 0.8, 0.7]), 'labels': np.array([0, 1, 1])}]
  for scores in (coco_metrics.mean_ap(truth, found, 2), exact_metrics.coco_map(truth, found, 2)):
    assert scores == pytest.approx({'map': (0.3 + 0.5) / 2, 'map50': (1 + 0.5) / 2}, abs=1e-9)
