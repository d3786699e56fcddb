"""`segfolder:` sources: layout, round trip of images and masks, and the errors that name a file."""
import numpy as np
import PIL.Image
import pytest

from sslax import errors
from sslax.data import sources
from sslax.data.builders import segfolder


def _write(root, split, name, image_hw=(20, 30), mask=None, ext='png'):
  (root / split / 'images').mkdir(parents=True, exist_ok=True)
  (root / split / 'masks').mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(len(name))
  if image_hw is not None:
    image = rng.integers(0, 255, (*image_hw, 3), dtype=np.uint8)
    PIL.Image.fromarray(image).save(root / split / 'images' / f'{name}.{ext}')
  if mask is not False:
    if mask is None:
      mask = rng.integers(0, 3, image_hw, dtype=np.uint8)
    PIL.Image.fromarray(mask).save(root / split / 'masks' / f'{name}.png')
    return mask
  return None


def _folder(tmp_path):
  root = tmp_path / 'seg'
  root.mkdir()
  (root / 'classes.txt').write_text('background\ncell\nother\n')
  masks = {}
  for split, names in (('train', ('a', 'b')), ('test', ('c',))):
    for n in names:
      masks[n] = _write(root, split, n, image_hw=(20 + len(n), 30))
  return root, masks


def test_round_trip_and_classes(tmp_path):
  root, masks = _folder(tmp_path)
  masks['b'][0, 0] = segfolder.IGNORE   # 255 is allowed anywhere
  PIL.Image.fromarray(masks['b']).save(root / 'train' / 'masks' / 'b.png')
  source = f'segfolder:{root}'
  assert sources.dense_classes(source, data_dir=str(tmp_path / 'tfds')) == [
      'background', 'cell', 'other']
  train = sources.open_split(source, 'train', data_dir=str(tmp_path / 'tfds'))
  assert len(train) == 2
  image, mask = segfolder.decode(train[1])
  assert image.shape == (21, 30, 3) and mask.dtype == np.uint8
  np.testing.assert_array_equal(mask, masks['b'])
  assert train[1]['file'].item().decode() == 'train/images/b.png'


@pytest.mark.parametrize('break_it, match', [
    (lambda r: _write(r, 'train', 'a', image_hw=(20, 30), mask=np.zeros((20, 31), np.uint8)),
     r'a\.png: mask is 31x20 \(WxH\) but its image .*a\.png is 30x20'),
    (lambda r: _write(r, 'train', 'a', mask=np.full((20, 30), 3, np.uint8)),
     r'a\.png: class id 3 is out of range: classes\.txt names 3 classes'),
    (lambda r: _write(r, 'test', 'orphan', image_hw=None, mask=np.zeros((4, 4), np.uint8)),
     r'orphan\.png: no image for this mask'),
    (lambda r: _write(r, 'test', 'lonely', mask=False), r'lonely\.png: no mask for this image'),
    (lambda r: (r / 'train' / 'images' / 'a.png').write_bytes(b'not a png'),
     r'cannot read image .*a\.png'),
])
def test_bad_inputs_name_the_file(tmp_path, break_it, match):
  root = tmp_path / 'seg'
  root.mkdir()
  (root / 'classes.txt').write_text('background\ncell\nother\n')
  _write(root, 'train', 'a')
  _write(root, 'test', 'c')
  break_it(root)
  with pytest.raises((errors.DataError, errors.DataNotFoundError), match=match):
    sources.open_split(f'segfolder:{root}', 'train', data_dir=str(tmp_path / 'tfds'))


def test_missing_folder_and_classes(tmp_path):
  with pytest.raises(FileNotFoundError, match='holds no <split>/images folder'):
    sources.check(f'segfolder:{tmp_path}/nothing', key='evals.seg.source')
  _write(tmp_path / 'x', 'train', 'a')
  with pytest.raises(errors.DataNotFoundError, match=r'classes\.txt not found'):
    sources.open_split(f'segfolder:{tmp_path / "x"}', 'train', data_dir=str(tmp_path / 'tfds'))
