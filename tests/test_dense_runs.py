"""The dense evaluators end to end: configs/simclr_microscopy.py:smoke (and :bccd,smoke)
pretrain on small synthetic folders' images and score segmentation (both modes) or detection
at their final evaluation, then `python -m sslax.evaluate --evals NAME` scores one again with
its source named on the command line. (The real dsb2018 and bccd runs are in docs/dense.md.)"""
import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from sslax import train
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


def _assert_two_class_scores(miou, pixel_accuracy, valid, what):
  """pixel_accuracy is k / `valid` (every non-ignored test pixel at its own size, no padding),
  and miou is what some two-class confusion with k right pixels gives: with a = pixels right
  as class 0, both classes' unions are their right pixels plus every wrong one."""
  correct = pixel_accuracy * valid
  assert abs(correct - round(correct)) < 1e-6 * valid, (what, pixel_accuracy, valid)
  correct = round(correct)
  wrong = valid - correct
  possible = []
  for a in range(correct + 1):
    ious = [t / (t + wrong) for t in (a, correct - a) if t + wrong > 0]
    possible.append(float(np.mean(ious)) if ious else 0.0)
  assert np.isclose(possible, miou, rtol=0, atol=1e-6).any(), (what, miou, correct, wrong)


def test_segmentation_from_training_and_from_the_command_line(tmp_path):
  seg = tmp_path / 'seg'
  _segfolder(seg)
  from sslax.configs import simclr_microscopy
  config = simclr_microscopy.get_config('smoke')
  config.data.source = f'folder:{seg}/{{split}}/images'
  config.eval.source = f'segfolder:{seg}'
  config.data.data_dir = str(tmp_path / 'tfds')
  config.progress_bar = False
  results = train.run(config, str(tmp_path / 'run'))
  # Scored at each test image's own size: 4 images, one ignored pixel each.
  valid = sum(np.prod(PIL.Image.open(f).size) - 1
              for f in (seg / 'test' / 'masks').glob('*.png'))
  for name in ('seg_linear', 'seg_fine_tune'):
    for prefix in ('', 'random_init/'):
      key = f'{prefix}{name}'
      _assert_two_class_scores(results[f'{key}/miou'], results[f'{key}/pixel_accuracy'], valid,
                               key)
      assert 0.0 <= results[f'{key}/val_miou'] <= 1.0, key   # held-out images: any subset
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


def test_detection_from_the_command_line(tmp_path):
  """Pretraining without it (the train loop's final evaluation is the segmentation test's
  path), then the detection evaluator through sslax.evaluate."""
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
  out = subprocess.run(
      [sys.executable, '-m', 'sslax.evaluate', '--workdir', str(tmp_path / 'run'),
       '--evals', 'detection', f'--config.evals.detection.source=coco:{det}',
       '--output_dir', str(tmp_path / 'eval')],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env={**os.environ, 'SSLAX_VERBOSE': '1'})
  assert out.returncode == 0, out.stderr[-3000:]
  assert '| detection/map50 |' in out.stdout
  scored = json.loads((tmp_path / 'eval' / 'results.json').read_text())
  for prefix in ('', 'random_init/'):
    key = f'{prefix}detection'
    # COCO's AP at IoU 0.5 bounds the mean over 0.5:0.95 (precision only falls as IoU rises).
    assert 0.0 <= scored[f'{key}/map'] <= scored[f'{key}/map50'] <= 1.0, scored
    assert 0.0 <= scored[f'{key}/val_map50'] <= 1.0, key
  # The printed table is the results.json it wrote, pretrained next to random init.
  assert (f"| detection/map50 | {scored['detection/map50']:.4f} | "
          f"{scored['random_init/detection/map50']:.4f} |") in out.stdout, out.stdout
  assert (tmp_path / 'eval' / 'detection.png').exists()
