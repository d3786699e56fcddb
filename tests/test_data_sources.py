"""Tests for sslax.data.sources and the local TFDS builders (digits, npz, image folder).

Every build goes into pytest's tmp_path. Real data under ../shared/data is used where it is
quick (MNIST .npz); the CIFAR-10 folder build links the real test split and a tenth of train.
"""
from __future__ import annotations

import os
import pathlib
import pickle

import grain
import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from sslax import errors
from sslax.data import sources
from sslax.data.builders import digits as digits_builder
from sslax.data.builders import image_folder
from sslax.data.builders import local
from sslax.data.builders import pixels
from tests.conftest import shared_data

@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
  """One TFDS data dir per module, so builds are shared between tests that only read."""
  return os.fspath(tmp_path_factory.mktemp('tfds'))


@pytest.mark.parametrize('source, expected', [
    ('builtin:digits', ('builtin', 'digits')),
    ('npz:../x/mnist_{split}.npz', ('npz', '../x/mnist_{split}.npz')),
    ('folder:/data/cifar:10', ('folder', '/data/cifar:10')),
    ('tfds:mnist:3.0.1', ('tfds', 'mnist:3.0.1')),
    ('text:corpus.txt', ('text', 'corpus.txt')),
    ('tsv:sst2/{split}.tsv', ('tsv', 'sst2/{split}.tsv')),
])
def test_parse(source, expected):
  assert sources.parse(source) == expected


@pytest.mark.parametrize('source', ['nope:x', 'folder:', 'digits', '', 'txt:a.txt', 'text:'])
def test_parse_errors_name_key_and_forms(source):
  with pytest.raises(ValueError, match='eval.source') as e:
    sources.parse(source, key='eval.source')
  assert 'folder:DIR' in str(e.value) and 'builtin:digits' in str(e.value)


def test_check_errors_name_key_and_path(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    sources.check('folder:/nope', key='eval.source')
  assert 'eval.source' in str(e.value) and '/nope' in str(e.value)
  with pytest.raises(FileNotFoundError, match='data.source.*{split}'):
    sources.check(f'npz:{tmp_path}/none_{{split}}.npz')
  with pytest.raises(FileNotFoundError, match='data.source'):
    sources.check(f'npz:{tmp_path}/none.npz')
  with pytest.raises(ValueError, match='eval.source.*builtin:digits'):
    sources.check('builtin:nope', key='eval.source')
  with pytest.raises(ValueError, match='eval.source.*nosuchdataset'):
    sources.check('tfds:nosuchdataset', key='eval.source')
  for ok in ('builtin:digits', 'tfds:mnist:3.0.1', f'folder:{tmp_path}'):
    sources.check(ok)


def test_default_data_dir_honours_env(monkeypatch, tmp_path):
  monkeypatch.setenv('TFDS_DATA_DIR', os.fspath(tmp_path))
  assert local.default_data_dir() == os.fspath(tmp_path)
  monkeypatch.delenv('TFDS_DATA_DIR')
  assert local.default_data_dir() == os.path.expanduser('~/tensorflow_datasets')


def test_digits_matches_sklearn_split(data_dir):
  from sklearn import datasets, model_selection
  raw = datasets.load_digits()
  x_train, x_test, y_train, y_test = model_selection.train_test_split(
      raw.images, raw.target, test_size=360, stratify=raw.target, random_state=0)
  assert sources.info('builtin:digits', data_dir=data_dir) == sources.SourceInfo(
      num_classes=10, split_sizes={'train': 1437, 'test': 360}, image_shape=(8, 8, 1))
  for split, x, y in (('train', x_train, y_train), ('test', x_test, y_test)):
    data = sources.open_split('builtin:digits', split, data_dir=data_dir)
    assert len(data) == len(y)
    for i in (0, 1, len(y) // 2, len(y) - 1):
      example = data[i]
      assert example['image'].dtype == np.uint8 and example['image'].shape == (8, 8, 1)
      assert example['label'].dtype == np.int64 and example['label'] == y[i]
      np.testing.assert_array_equal(example['image'][..., 0], np.round(x[i] * 255 / 16))
  images = np.stack([data[i]['image'] for i in range(len(data))])
  assert images.min() == 0 and images.max() == 255


def test_second_open_does_not_rebuild(data_dir, monkeypatch):
  sources.open_split('builtin:digits', 'test', data_dir=data_dir)
  version_dir = pathlib.Path(data_dir) / 'sslax_digits' / '1.0.0'
  mtimes = {p: p.stat().st_mtime_ns for p in version_dir.iterdir()}

  def fail(*args, **kwargs):
    raise AssertionError('rebuilt an up-to-date data set')
  monkeypatch.setattr(digits_builder.SslaxDigits, '_split_generators', fail)
  assert len(sources.open_split('builtin:digits', 'test', data_dir=data_dir)) == 360
  assert {p: p.stat().st_mtime_ns for p in version_dir.iterdir()} == mtimes


def test_a_build_leaves_no_temp_dirs(tmp_path, monkeypatch):
  import tempfile
  scratch = tmp_path / 'scratch'
  scratch.mkdir()
  monkeypatch.setattr(tempfile, 'tempdir', str(scratch))
  np.savez(tmp_path / 'x.npz', images=np.zeros((4, 2, 2, 1), np.uint8))
  assert len(sources.open_split(f'npz:{tmp_path}/x.npz', 'train',
                                data_dir=str(tmp_path / 'tfds'))) == 4
  assert not list(scratch.iterdir())


@pytest.mark.parametrize('source', ['builtin:digits', 'npz:x.npz', 'text:corpus.txt'])
def test_local_source_refuses_a_url_data_dir(source, tmp_path, monkeypatch):
  # Local builders write with local file APIs: a gs:// data_dir is refused before any build,
  # with the fix in the message, and nothing lands in ./gs:/.
  monkeypatch.chdir(tmp_path)
  np.savez('x.npz', images=np.zeros((4, 2, 2, 1), np.uint8))
  pathlib.Path('corpus.txt').write_text('some text\n')
  with pytest.raises(errors.ConfigError, match=r"data_dir='gs://b/tfds'.*gcsfuse"):
    sources.info(source, data_dir='gs://b/tfds')
  assert sorted(p.name for p in tmp_path.iterdir()) == ['corpus.txt', 'x.npz']


def test_unknown_split_lists_available(data_dir):
  with pytest.raises(ValueError, match='validation.*test, train'):
    sources.open_split('builtin:digits', 'validation', data_dir=data_dir)


def test_grain_and_pickle(data_dir):
  data = sources.open_split('builtin:digits', 'train', data_dir=data_dir)
  dataset = grain.MapDataset.source(data)
  assert dataset[3]['label'] == data[3]['label']
  batch = dataset.batch(4)[0]
  assert batch['image'].shape == (4, 8, 8, 1) and batch['label'].shape == (4,)
  clone = pickle.loads(pickle.dumps(data))
  np.testing.assert_array_equal(clone[7]['image'], data[7]['image'])
  assert [x['label'] for x in data._getitems([5, 6])] == [data[5]['label'], data[6]['label']]


def _write_npz(path: pathlib.Path, n: int, shape=(4, 5), seed=0, labels=True) -> dict:
  rng = np.random.default_rng(seed)
  arrays = {'images': rng.integers(0, 256, (n, *shape), dtype=np.uint8)}
  if labels:
    arrays['labels'] = rng.integers(0, 3, n).astype(np.uint8)
  np.savez(path, **arrays)
  return arrays


def test_npz_split_pattern(tmp_path, data_dir):
  train = _write_npz(tmp_path / 'toy_train.npz', 12, seed=1)
  test = _write_npz(tmp_path / 'toy_test.npz', 5, seed=2)
  source = f'npz:{tmp_path}/toy_{{split}}.npz'
  got = sources.info(source, data_dir=data_dir)
  assert got.split_sizes == {'train': 12, 'test': 5} and got.image_shape == (4, 5, 1)
  assert got.num_classes == 1 + max(train['labels'].max(), test['labels'].max())
  data = sources.open_split(source, 'test', data_dir=data_dir)
  for i in range(5):  # Stored order is the file's order.
    np.testing.assert_array_equal(data[i]['image'][..., 0], test['images'][i])
    assert data[i]['label'] == test['labels'][i]


def test_npz_single_file_is_train_and_unlabelled_rgb(tmp_path, data_dir):
  arrays = _write_npz(tmp_path / 'rgb.npz', 6, shape=(3, 2, 3), labels=False)
  source = f'npz:{tmp_path}/rgb.npz'
  assert sources.info(source, data_dir=data_dir) == sources.SourceInfo(
      num_classes=None, split_sizes={'train': 6}, image_shape=(3, 2, 3))
  example = sources.open_split(source, 'train', data_dir=data_dir)[4]
  assert set(example) == {'image'}
  np.testing.assert_array_equal(example['image'], arrays['images'][4])
  with pytest.raises(ValueError, match=r'\{split\}'):
    sources.open_split(source, 'test', data_dir=data_dir)


def test_npz_same_name_other_folder_and_rebuild_on_change(tmp_path, data_dir):
  (tmp_path / 'a').mkdir()
  (tmp_path / 'b').mkdir()
  a = _write_npz(tmp_path / 'a' / 'x.npz', 3, seed=3)
  b = _write_npz(tmp_path / 'b' / 'x.npz', 4, seed=4)
  first = sources.open_split(f'npz:{tmp_path}/a/x.npz', 'train', data_dir=data_dir)
  second = sources.open_split(f'npz:{tmp_path}/b/x.npz', 'train', data_dir=data_dir)
  assert (len(first), len(second)) == (3, 4)
  np.testing.assert_array_equal(first[0]['image'][..., 0], a['images'][0])
  np.testing.assert_array_equal(second[0]['image'][..., 0], b['images'][0])
  changed = _write_npz(tmp_path / 'a' / 'x.npz', 7, seed=5)
  os.utime(tmp_path / 'a' / 'x.npz', ns=(1, 1))  # A different mtime even on coarse clocks.
  again = sources.open_split(f'npz:{tmp_path}/a/x.npz', 'train', data_dir=data_dir)
  assert len(again) == 7
  np.testing.assert_array_equal(again[6]['image'][..., 0], changed['images'][6])


def test_npz_bad_arrays(tmp_path, data_dir):
  np.savez(tmp_path / 'f.npz', images=np.zeros((2, 3, 3), np.float32), labels=np.zeros(2, int))
  with pytest.raises(ValueError, match='f.npz.*uint8'):
    sources.open_split(f'npz:{tmp_path}/f.npz', 'train', data_dir=data_dir)
  np.savez(tmp_path / 'g.npz', images=np.zeros((2, 3, 3), np.uint8), labels=np.zeros(3, int))
  with pytest.raises(ValueError, match='g.npz.*labels'):
    sources.open_split(f'npz:{tmp_path}/g.npz', 'train', data_dir=data_dir)


def test_npz_real_mnist(tmp_path):
  folder = shared_data('mnist')
  got = sources.info(f'npz:{folder}/mnist_{{split}}.npz', data_dir=os.fspath(tmp_path))
  assert got == sources.SourceInfo(num_classes=10, split_sizes={'train': 60000, 'test': 10000},
                                   image_shape=(28, 28, 1))
  with np.load(folder / 'mnist_test.npz') as raw:
    expected_image, expected_label = raw['images'][123], raw['labels'][123]
  example = sources.open_split(f'npz:{folder}/mnist_{{split}}.npz', 'test',
                               data_dir=os.fspath(tmp_path))[123]
  np.testing.assert_array_equal(example['image'][..., 0], expected_image)
  assert example['label'] == expected_label


def _pixels(seed: int, shape: tuple[int, ...]) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _make_folder(root: pathlib.Path, grey: bool = False) -> dict[str, np.ndarray]:
  """train/{ant,bee}, test/{ant,bee}; 6x5 PNGs (lossless, so pixels compare exactly)."""
  written = {}
  for split, per_class in (('train', 3), ('test', 2)):
    for c, name in enumerate(('bee', 'ant')):  # Written unsorted on purpose.
      (root / split / name).mkdir(parents=True)
      for j in range(per_class):
        shape = (6, 5) if grey or (split, name, j) == ('train', 'bee', 1) else (6, 5, 3)
        pixels_ = _pixels(100 * c + 10 * j + len(split), shape)
        path = root / split / name / f'{j}.png'
        PIL.Image.fromarray(pixels_).save(path)
        written[f'{split}/{name}/{j}'] = pixels_
  return written


def test_folder_build(tmp_path, data_dir):
  written = _make_folder(tmp_path / 'imgs')
  smooth = np.broadcast_to(np.arange(0, 240, 8, dtype=np.uint8).reshape(6, 5, 1), (6, 5, 3))
  PIL.Image.fromarray(np.ascontiguousarray(smooth)).save(tmp_path / 'imgs/test/ant/9.jpg',
                                                         quality=95)
  source = f'folder:{tmp_path}/imgs'
  assert sources.info(source, data_dir=data_dir) == sources.SourceInfo(
      num_classes=2, split_sizes={'train': 6, 'test': 5}, image_shape=(6, 5, 3))
  train = sources.open_split(source, 'train', data_dir=data_dir)
  # Sorted order: classes sorted (ant=0, bee=1), then file names; stored permuted by it.
  at = np.argsort(image_folder.stored_order(6))   # sorted item -> stored position
  assert [int(train[int(at[i])]['label']) for i in range(6)] == [0, 0, 0, 1, 1, 1]
  np.testing.assert_array_equal(train[int(at[0])]['image'], written['train/ant/0'])
  grey = train[int(at[4])]['image']  # train/bee/1.png is grey: RGB in a colour folder.
  assert grey.shape == (6, 5, 3)
  for channel in range(3):
    np.testing.assert_array_equal(grey[..., channel], written['train/bee/1'])
  jpeg = sources.open_split(source, 'test', data_dir=data_dir)[
      int(np.argsort(image_folder.stored_order(5))[2])]['image']
  assert jpeg.shape == (6, 5, 3) and np.abs(jpeg.astype(int) - smooth).mean() < 8


def test_folder_all_grey_and_worker_processes(tmp_path, data_dir, monkeypatch, caplog):
  written = _make_folder(tmp_path / 'grey', grey=True)
  # Exercise the spawn pool even on a 2-core machine.
  monkeypatch.setattr(pixels, 'MIN_FILES_FOR_WORKERS', 1)
  monkeypatch.setattr(pixels, 'MIN_CPUS_FOR_WORKERS', 1)
  data = sources.open_split(f'folder:{tmp_path}/grey', 'train', data_dir=data_dir)
  assert 'workers failed' not in caplog.text  # The pool ran; no fallback.
  last = data[int(np.argsort(image_folder.stored_order(6))[5])]['image']  # train/bee/2
  assert last.shape == (6, 5, 1)
  np.testing.assert_array_equal(last[..., 0], written['train/bee/2'])


def _truncated(root: pathlib.Path) -> None:
  (root / 'train/ant/cut.png').write_bytes((root / 'train/ant/0.png').read_bytes()[:60])


def _empty_class(root: pathlib.Path) -> None:
  (root / 'train/cat').mkdir()
  (root / 'train/cat/notes.txt').write_text('not an image')


def _class_mismatch(root: pathlib.Path) -> None:
  (root / 'test/cat').mkdir()
  PIL.Image.fromarray(_pixels(0, (6, 5, 3))).save(root / 'test/cat/0.png')


@pytest.mark.parametrize('spoil, patterns', [
    (lambda root: (root / 'train/ant/broken.jpg').write_bytes(b'not a jpeg'), ['broken.jpg']),
    (_truncated, ['cut.png']),
    (_empty_class, ['train/cat', 'no .jpg']),
    (_class_mismatch, ['imgs/test ', 'imgs/train ', "'cat'"]),
])
def test_folder_errors(tmp_path, data_dir, spoil, patterns):
  _make_folder(tmp_path / 'imgs')
  spoil(tmp_path / 'imgs')
  with pytest.raises(ValueError) as e:
    sources.open_split(f'folder:{tmp_path}/imgs', 'train', data_dir=data_dir)
  for pattern in patterns:
    assert pattern in str(e.value), str(e.value)


def test_folder_real_cifar10(tmp_path):
  # The real CIFAR-10 test split (10,000 JPEGs) and 100 train images per class, linked into a
  # folder: a real build at a tenth of the 60,000 images' cost (the whole set took minutes).
  real = shared_data('cifar10')
  folder = tmp_path / 'cifar10'
  for split, per_class in (('test', None), ('train', 100)):
    for class_dir in sorted((real / split).iterdir()):
      (folder / split / class_dir.name).mkdir(parents=True)
      for path in sorted(class_dir.iterdir())[:per_class]:
        (folder / split / class_dir.name / path.name).symlink_to(path)
  got = sources.info(f'folder:{folder}', data_dir=os.fspath(tmp_path / 'tfds'))
  assert got == sources.SourceInfo(num_classes=10, split_sizes={'train': 1000, 'test': 10000},
                                   image_shape=(32, 32, 3))
  first = sorted((real / 'test' / 'airplane').iterdir())[0]
  test = sources.open_split(f'folder:{folder}', 'test', data_dir=os.fspath(tmp_path / 'tfds'))
  example = test[int(np.argsort(image_folder.stored_order(10000))[0])]
  np.testing.assert_array_equal(example['image'], np.asarray(PIL.Image.open(first)))
  assert example['label'] == 0
  # The first 10% of the stored split is a sample of every class, not class 0 alone.
  labels = np.array([int(test[i]['label']) for i in range(1000)])
  assert np.bincount(labels, minlength=10).min() >= 70


def test_stored_order_is_a_fixed_permutation():
  order = image_folder.stored_order(1000)
  np.testing.assert_array_equal(np.sort(order), np.arange(1000))
  np.testing.assert_array_equal(order, image_folder.stored_order(1000))
  # Class-sorted items (10 classes of 100): the first 100 stored positions hold most classes.
  assert len(set(order[:100] // 100)) == 10


def test_tfds_mnist_mocked(tmp_path):
  with tfds.testing.mock_data(num_examples=6):
    data = sources.open_split('tfds:mnist', 'train', data_dir=os.fspath(tmp_path))
    assert len(data) == 6
    example = grain.MapDataset.source(data)[2]
    assert example['image'].shape == (28, 28, 1) and example['image'].dtype == np.uint8
    assert example['label'].dtype == np.int64 and 0 <= example['label'] < 10
    got = sources.info('tfds:mnist', data_dir=os.fspath(tmp_path))
  assert got.num_classes == 10 and got.image_shape == (28, 28, 1)
