"""`coco:` sources: boxes become (x0, y0, x1, y1) with contiguous labels, images without boxes
are kept, and bad inputs stop the build naming the file."""
import json

import numpy as np
import PIL.Image
import pytest

from sslax import errors
from sslax.data import sources


def _coco(root, annotations=None, images=None, skip_file=None):
  """train: two 40x30 images, one with two boxes and one with none; test: one image."""
  cats = [{'id': 7, 'name': 'wbc'}, {'id': 3, 'name': 'rbc'}]   # ids not contiguous, unsorted
  for split, n in (('train', 2), ('test', 1)):
    (root / split).mkdir(parents=True)
    imgs = images if images is not None and split == 'train' else [
        {'id': 10 + i, 'file_name': f'{split}{i}.jpg', 'width': 40, 'height': 30}
        for i in range(n)]
    for im in imgs:
      if im['file_name'] != skip_file:
        PIL.Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(root / split / im['file_name'])
    anns = annotations if annotations is not None and split == 'train' else [
        {'id': 1, 'image_id': 10, 'category_id': 3, 'bbox': [1, 2, 10, 5]},
        {'id': 2, 'image_id': 10, 'category_id': 7, 'bbox': [20, 10, 20, 20]}]
    (root / f'{split}.json').write_text(json.dumps(
        {'images': imgs, 'annotations': anns, 'categories': cats}))


def test_boxes_labels_and_empty_images(tmp_path):
  _coco(tmp_path / 'c')
  source = f'coco:{tmp_path / "c"}'
  data_dir = str(tmp_path / 'tfds')
  assert sources.dense_classes(source, data_dir=data_dir) == ['rbc', 'wbc']   # by COCO id
  train = sources.open_split(source, 'train', data_dir=data_dir)
  assert len(train) == 2
  np.testing.assert_allclose(train[0]['boxes'], [[1, 2, 11, 7], [20, 10, 40, 30]])
  np.testing.assert_array_equal(train[0]['labels'], [0, 1])
  assert train[1]['boxes'].shape == (0, 4) and train[1]['labels'].shape == (0,)
  assert int(train[0]['image_id']) == 10 and int(train[0]['height']) == 30


@pytest.mark.parametrize('kwargs, match', [
    (dict(annotations=[{'id': 5, 'image_id': 10, 'category_id': 3, 'bbox': [35, 2, 10, 5]}]),
     r'train\.json: annotation 5 \(.*train0\.jpg\): bbox .* lies outside the 40x30 image'),
    (dict(annotations=[{'id': 6, 'image_id': 10, 'category_id': 3, 'bbox': [1, 2, 0, 5]}]),
     r'annotation 6 \(.*train0\.jpg\): bbox .* has w or h <= 0'),
    (dict(skip_file='train1.jpg'), r"train\.json: image 'train1\.jpg' \(id 11\) not found"),
    (dict(annotations=[{'id': 8, 'image_id': 10, 'category_id': 9, 'bbox': [1, 2, 3, 4]}]),
     r'annotation 8 .*category id 9 is not in "categories"'),
    (dict(images=[{'id': 10, 'file_name': 'train0.jpg', 'width': 41, 'height': 30}]),
     r'train0\.jpg: the image is 40x30 but .*train\.json says 41x30'),
])
def test_bad_inputs_name_the_file(tmp_path, kwargs, match):
  _coco(tmp_path / 'c', **kwargs)
  with pytest.raises((errors.DataError, errors.DataNotFoundError), match=match):
    sources.open_split(f'coco:{tmp_path / "c"}', 'train', data_dir=str(tmp_path / 'tfds'))


def test_check_names_the_layout(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'holds no <split>\.json'):
    sources.check(f'coco:{tmp_path}', key='evals.det.source')
