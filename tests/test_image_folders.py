"""Variable-size image folders and catalog sets end to end: storage, bad files, layouts,
host-cropped batches, a smoke run that resumes bit for bit."""
import io
import json
import logging
import os
import pathlib
import pickle

import jax
import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from sslax import artifacts
from sslax import methods
from sslax import sharding
from sslax import train
from sslax.data import catalog
from sslax.data import host_crops
from sslax.data import host_views
from sslax.data import readers
from sslax.data import sources
from sslax.data import train_batches
from sslax.evaluators import knn
from tests import exact_metrics
from tests import test_train
from tests.conftest import assert_fraction_of, without_evaluation


def _save(path: pathlib.Path, image: PIL.Image.Image) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  image.save(path)


def mixed_folder(root: pathlib.Path, per_class: dict[str, int] | None = None) -> pathlib.Path:
  """DIR/<split>/<class>/: RGB and grey JPEGs, PNGs and a CMYK JPEG, 17..120 px a side."""
  rng = np.random.default_rng(0)
  per_class = per_class or {'train': 8, 'test': 4}
  for split, n in per_class.items():
    for c, name in enumerate(('cat', 'dog')):
      for i in range(n):
        h, w = (int(v) for v in rng.integers(17, 120, 2))
        # Class 0 darker than class 1, so the smoke encoder has something to find.
        pixels = rng.integers(0, 128, (h, w, 3), dtype=np.uint8) + np.uint8(100 * c)
        image = PIL.Image.fromarray(pixels)
        kind = i % 4
        if kind == 1:
          image = image.convert('L')
        if kind == 3:
          image = image.convert('CMYK')
        suffix = '.png' if kind == 2 else '.jpg'
        _save(root / split / name / f'{i}{suffix}', image)
  return root


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
  return mixed_folder(tmp_path_factory.mktemp('mixed'))


def _config(source, data_dir, **overrides):
  config = test_train.smoke_config(data_dir, **{
      'data.source': source, 'eval.source': source, 'data.num_workers': 0,
      'batch_size': 8, 'eval.batch_size': 8, 'evals.knn.k': 3, 'eval.raw_input': False,
      **overrides})
  return config


def test_mixed_folder_is_stored_encoded(folder, tmp_path):
  got = sources.info(f'folder:{folder}', data_dir=str(tmp_path))
  assert got.image_shape == (None, None, 3) and got.num_classes == 2
  assert got.split_sizes == {'train': 16, 'test': 8}
  train_split = sources.open_split(f'folder:{folder}', 'train', data_dir=str(tmp_path))
  for i in range(len(train_split)):
    record = train_split[i]
    path = folder / np.asarray(record['file']).item().decode()   # a TFDS Text feature
    assert isinstance(record['image'], bytes)
    with PIL.Image.open(path) as image:
      assert (record['height'], record['width']) == (image.height, image.width)
      cmyk = image.mode == 'CMYK'
    # The file's own bytes; CMYK JPEGs (libjpeg-turbo cannot give RGB) re-encoded once.
    assert (record['image'] == path.read_bytes()) != cmyk
    assert PIL.Image.open(io.BytesIO(record['image'])).mode in ('RGB', 'L', 'P', 'RGBA')


def test_small_same_size_folder_keeps_decoded_storage(tmp_path):
  rng = np.random.default_rng(0)
  for split in ('train', 'test'):
    for name in ('a', 'b'):
      for i in range(2):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        _save(tmp_path / 'f' / split / name / f'{i}.png', PIL.Image.fromarray(pixels))
  got = sources.info(f'folder:{tmp_path / "f"}', data_dir=str(tmp_path / 'tfds'))
  assert got.image_shape == (8, 8, 3)
  assert host_views.host_channels(f'folder:{tmp_path / "f"}', str(tmp_path / 'tfds')) == 0


def test_host_cropped_batches_do_not_depend_on_workers(folder, tmp_path):
  config = _config(f'folder:{folder}', tmp_path)
  mesh = sharding.make_mesh(config.mesh)
  with pytest.raises(ValueError, match=r'varying size.*crops=methods.host_crops'):
    next(train_batches.make_train(config, mesh))   # which views to cut is the caller's to say
  crops = methods.train_crops(config)   # the method's two views, as train.run passes them
  inline = [jax.device_get(b)
            for _, b in zip(range(3), train_batches.make_train(config, mesh, crops=crops))]
  assert inline[0]['image'].shape == (8, 2, 16, 16, 3)
  assert inline[0]['image'].dtype == np.uint8 and sorted(inline[0]) == ['image', 'label']
  config.data.num_workers = 2
  resumed = train_batches.make_train(config, mesh, crops=crops, start_step=1)
  for expected, got in zip(inline[1:], resumed):
    jax.tree.map(np.testing.assert_array_equal, expected, jax.device_get(got))
  # Read threads (here in the training process) finish batches out of order; they must
  # still come in step order.
  config.data.update(num_workers=0, read_threads=3)
  threaded = train_batches.make_train(config, mesh, crops=crops)
  for expected, got in zip(inline, threaded):
    jax.tree.map(np.testing.assert_array_equal, expected, jax.device_get(got))


def test_mixed_folder_trains_and_resumes_bit_exact(folder, tmp_path, monkeypatch):
  config = _config(f'folder:{folder}', tmp_path / 'tfds')
  results = train.run(config, str(tmp_path / 'straight'))
  for key in ('knn/accuracy', 'linear_probe/accuracy'):
    assert_fraction_of(results[key], 8, key)   # the folder's 8 test images
  straight, _ = test_train._params(tmp_path / 'straight', config)
  # The encoder leaves the trainer taking eval views, not the training batch's host views.
  from sslax import encoder as encoder_lib
  spec = json.loads((tmp_path / 'straight' / artifacts.INPUT_SPEC).read_text())
  assert spec['image'] == {'shape': [16, 16, 3], 'dtype': 'uint8'}
  loaded = encoder_lib.load(str(tmp_path / 'straight'))
  assert loaded.embed(list(np.full((2, 40, 30, 3), 90, np.uint8))).shape[0] == 2
  # Scored above; the resumed run only needs to train.
  test_train.run_killed_after(without_evaluation(config), tmp_path / 'resumed', monkeypatch,
                              steps=2)
  train.run(config, str(tmp_path / 'resumed'))
  resumed, meta = test_train._params(tmp_path / 'resumed', config)
  assert meta['step'] == 4
  jax.tree.map(np.testing.assert_array_equal, resumed.params, straight.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.model_state, straight.model_state)


def _bad_folder(root: pathlib.Path, bad: str) -> pathlib.Path:
  mixed_folder(root, {'train': 2})
  path = root / 'train' / 'cat' / 'bad.jpg'
  if bad == 'empty':
    path.write_bytes(b'')
  else:   # a JPEG cut in the middle of its data
    good = (root / 'train' / 'cat' / '0.jpg').read_bytes()
    path.write_bytes(good[:len(good) // 2])
  return path


@pytest.mark.parametrize('bad', ['empty', 'truncated'])
def test_bad_files_error_names_the_file_or_are_skipped(tmp_path, bad, caplog):
  path = _bad_folder(tmp_path / 'f', bad)
  source = f'folder:{tmp_path / "f"}'
  with pytest.raises(ValueError, match=f"{path}.*bad_files='skip'"):
    sources.info(source, data_dir=str(tmp_path / 'tfds'))
  with caplog.at_level(logging.WARNING):
    got = sources.info(source, data_dir=str(tmp_path / 'tfds'), bad_files='skip')
  assert got.split_sizes == {'train': 4}
  assert 'skipped 1 unreadable image' in caplog.text


def test_unknown_extensions_are_ignored_and_counted(tmp_path, caplog):
  mixed_folder(tmp_path / 'f', {'train': 2})
  (tmp_path / 'f' / 'train' / 'cat' / 'notes.txt').write_text('not an image')
  (tmp_path / 'f' / 'train' / 'dog' / 'x.webp').write_bytes(b'RIFF')
  with caplog.at_level(logging.WARNING):
    got = sources.info(f'folder:{tmp_path / "f"}', data_dir=str(tmp_path / 'tfds'))
  assert got.split_sizes == {'train': 4}
  assert '2 file(s)' in caplog.text and 'ignored' in caplog.text


def test_unlabelled_flat_and_split_field_layouts(tmp_path):
  rng = np.random.default_rng(0)
  for split in ('train', 'test'):
    for i in range(3):
      pixels = rng.integers(0, 256, (20 + 10 * i, 30, 3), dtype=np.uint8)
      _save(tmp_path / 'flat' / split / f'{i}.jpg', PIL.Image.fromarray(pixels))
      _save(tmp_path / 'seg' / split / 'images' / f'{i}.png', PIL.Image.fromarray(pixels))
      _save(tmp_path / 'seg' / split / 'masks' / f'{i}.png', PIL.Image.fromarray(pixels[..., 0]))
  for source in (f'folder:{tmp_path / "flat"}', f'folder:{tmp_path}/seg/{{split}}/images'):
    sources.check(source)
    got = sources.info(source, data_dir=str(tmp_path / 'tfds'))
    assert got.num_classes is None and got.split_sizes == {'train': 3, 'test': 3}
    assert got.image_shape == (None, None, 3)
    assert 'label' not in sources.open_split(source, 'train', data_dir=str(tmp_path / 'tfds'))[0]


def test_variable_size_catalog_data_set_is_cropped_on_the_host(tmp_path, monkeypatch):
  # TFDS 4.9.10's mocked data source breaks on batched reads (see test_audio_data.py).
  monkeypatch.setattr(sources.RandomAccess, '__getitems__', None)
  # The mock encodes through TensorFlow when decoders are asked for (catalog.decoders), so
  # its images stay decoded here; test_catalog_images_reach_the_host_crops_encoded reads bytes.
  monkeypatch.setattr(catalog, 'decoders', lambda builder: None)
  config = _config('tfds:imagenette', tmp_path)
  with tfds.testing.mock_data(num_examples=8):
    raw = sources.open_split('tfds:imagenette', 'train', data_dir=str(tmp_path))
    sizes = {raw[i]['image'].shape for i in range(8)}
    assert len(sizes) > 1   # mock images of several sizes
    assert host_views.host_channels('tfds:imagenette', str(tmp_path)) == 3
    mesh = sharding.make_mesh(config.mesh)
    batch = next(train_batches.make_train(config, mesh, crops=methods.train_crops(config)))
    assert batch['image'].shape == (8, 2, 16, 16, 3) and batch['label'].shape == (8,)
    records = readers.Records('tfds:imagenette', 'train', data_dir=str(tmp_path),
                              in_memory=True, image_size=16)
    assert records.take(np.arange(8))['image'].shape == (8, 16, 16, 3)


class SslaxTestJpegs(tfds.core.GeneratorBasedBuilder):
  """A catalog-style data set: a TFDS `Image` feature of variable size, as imagenet2012's.
  Built from JPEG paths, whose bytes TFDS stores as they are, so no TensorFlow is needed."""
  VERSION = tfds.core.Version('1.0.0')
  FILES: list[str] = []

  def _info(self):
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(None, None, 3)),
        'label': tfds.features.ClassLabel(num_classes=2)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    for i, path in enumerate(self.FILES):
      yield i, {'image': path, 'label': i % 2}


def test_catalog_images_reach_the_host_crops_encoded(tmp_path, monkeypatch):
  """A variable-size catalog `Image` is read as its JPEG bytes (TFDS's SkipDecoding), so the
  host crops decode it at reduced scale instead of TFDS decoding it whole first."""
  rng = np.random.default_rng(3)
  files = []
  for i in range(8):
    h, w = (int(v) for v in rng.integers(64, 200, 2))
    _save(tmp_path / 'jpegs' / f'{i}.jpg',
          PIL.Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    files.append(str(tmp_path / 'jpegs' / f'{i}.jpg'))
  monkeypatch.setattr(SslaxTestJpegs, 'FILES', files)
  source, data_dir = 'tfds:sslax_test_jpegs', str(tmp_path / 'tfds')
  src = sources.open_split(source, 'train', data_dir=data_dir)
  reopened = pickle.loads(pickle.dumps(src))   # as grain worker processes receive it
  stored = {src[i]['image'] for i in range(8)}
  assert stored == {reopened[i]['image'] for i in range(8)}
  assert stored == {pathlib.Path(f).read_bytes() for f in files}
  assert host_views.host_channels(source, data_dir) == 3
  decodes = []
  decode = host_crops.decode
  monkeypatch.setattr(host_crops, 'decode',
                      lambda data, channels, *shape: decodes.append(shape) or
                      decode(data, channels, *shape))
  config = _config(source, tmp_path / 'tfds')
  batch = next(train_batches.make_train(config, sharding.make_mesh(config.mesh),
                                        crops=methods.train_crops(config)))
  assert batch['image'].shape == (8, 2, 16, 16, 3) and batch['label'].shape == (8,)
  # 16² views from >= 64² images: every decode was asked for a reduced size.
  assert len(decodes) == 8 and all(0 < h < 200 for h, _ in decodes), decodes
  records = readers.Records(source, 'train', data_dir=data_dir, in_memory=True, image_size=16)
  assert records.take(np.arange(8))['image'].shape == (8, 16, 16, 3)


@pytest.mark.parametrize('method', ['dino', 'mae'])
def test_multi_crop_and_mae_train_on_a_mixed_folder(folder, tmp_path, monkeypatch, method):
  """DINO's local crops come from the host as `image_local`; MAE asks for one view."""
  import importlib
  config = importlib.import_module(f'sslax.configs.{method}_images').get_config('smoke')
  config.update_from_flattened_dict({
      'data.source': f'folder:{folder}', 'eval.source': f'folder:{folder}',
      'data.data_dir': str(tmp_path / 'tfds'), 'data.num_workers': 0, 'batch_size': 8,
      'eval.batch_size': 8, 'evals.knn.k': 3, 'eval.raw_input': False, 'progress_bar': False})
  record = train_batches.first_train_record(config, methods.train_crops(config))
  if method == 'dino':
    assert record['image'].shape[0] == config.dino.num_global
    assert record['image_local'].shape == (config.dino.num_local, config.dino.local_size,
                                           config.dino.local_size, 3)
  else:
    assert record['image'].shape == (1, config.data.image_size, config.data.image_size, 3)
  log = []
  exact_metrics.record(monkeypatch, log, knn, 'knn_accuracy')
  results = train.run(config, str(tmp_path / 'run'))
  assert results['step'] == config.total_steps
  # kNN of the pretrained, then the random-init encoder (train.evaluate's order) over the
  # folder's 16 train and 8 test images, recomputed in float64 from the very features.
  assert len(log) == 2, log
  for prefix, call in zip(('', 'random_init/'), log):
    bank, bank_labels, queries, query_labels = call.args
    assert bank.shape[0] == 16 and queries.shape[0] == 8, (bank.shape, queries.shape)
    assert sorted(bank_labels) == [0] * 8 + [1] * 8 and sorted(query_labels) == [0] * 4 + [1] * 4
    assert call.result == exact_metrics.knn_accuracy(*call.args, **call.kwargs), prefix
    assert results[f'{prefix}knn/accuracy'] == call.result, prefix
    assert_fraction_of(call.result, 8, prefix)
