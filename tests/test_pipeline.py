"""The input pipeline: order is a function of (seed, step), epochs cover the data, eval pads."""
import itertools

import jax
import numpy as np
import pytest

from sslax import config_base
from sslax import sharding
from sslax.data import readers
from sslax.data import train_batches


def _config(tmp_path, batch_size=16, in_memory=True, seed=0):
  c = config_base.base()
  c.data.source = 'npz:' + str(tmp_path / 'toy.npz')
  c.data.data_dir = str(tmp_path / 'tfds')
  c.data.in_memory = in_memory
  c.batch_size = batch_size
  c.seed = seed
  return c


@pytest.fixture
def toy(tmp_path):
  n = 40
  images = np.arange(n, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
  np.savez(tmp_path / 'toy.npz', images=images, labels=np.arange(n) % 10)
  return tmp_path


def _ids(batches, steps):
  return [np.asarray(b['image'])[:, 0, 0, 0].tolist() for b in itertools.islice(batches, steps)]


def test_start_step_continues_the_same_stream(toy):
  mesh = sharding.make_mesh({'data': -1})
  config = _config(toy)
  straight = _ids(train_batches.make_train(config, mesh), 6)
  resumed = _ids(train_batches.make_train(config, mesh, start_step=3), 3)
  assert resumed == straight[3:]


def test_each_epoch_is_a_fresh_permutation(toy):
  mesh = sharding.make_mesh({'data': -1})
  ids = sum(_ids(train_batches.make_train(_config(toy, batch_size=8), mesh), 10), [])
  first, second = ids[:40], ids[40:]
  assert sorted(first) == sorted(second) == list(range(40))
  assert first != second


def test_order_does_not_depend_on_device_count_or_memory_mode(toy):
  config = _config(toy)
  one = sharding.make_mesh({'data': 1}, jax.devices()[:1])
  all_devices = sharding.make_mesh({'data': -1})
  reference = _ids(train_batches.make_train(config, one), 4)
  eight = _ids(train_batches.make_train(config, all_devices), 4)
  streamed = _ids(train_batches.make_train(_config(toy, in_memory=False), all_devices), 4)
  assert reference == eight == streamed
  other_seed = _ids(train_batches.make_train(_config(toy, seed=1), all_devices), 4)
  assert other_seed != reference


def test_eval_batches_pad_and_mask(toy):
  mesh = sharding.make_mesh({'data': -1})
  records = readers.Records('npz:' + str(toy / 'toy.npz'), 'train',
                            data_dir=str(toy / 'tfds'), in_memory=True)
  batches = list(readers.eval_batches(records, batch_size=16, mesh=mesh))
  assert len(batches) == 3
  masks = np.concatenate([np.asarray(b['mask']) for b in batches])
  ids = np.concatenate([np.asarray(b['image'])[:, 0, 0, 0] for b in batches])
  assert masks.sum() == 40 and not masks[40:].any()
  assert ids[masks].tolist() == list(range(40))


@pytest.mark.parametrize('in_memory', [True, False])
def test_max_examples_spreads_over_a_split_stored_class_by_class(tmp_path, in_memory):
  # 4 classes of 10 records stored in class order, like an audio folder: the first 8 would
  # be class 0 only; 8 evenly spaced records hold every class twice.
  images = np.arange(40, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
  np.savez(tmp_path / 'sorted.npz', images=images, labels=np.arange(40) // 10)
  records = readers.Records(f'npz:{tmp_path}/sorted.npz', 'train', data_dir=str(tmp_path / 'tfds'),
                            in_memory=in_memory, max_examples=8)
  assert len(records) == 8
  taken = records.take(np.arange(8))
  assert taken['image'][:, 0, 0, 0].tolist() == [0, 6, 11, 17, 22, 28, 33, 39]
  assert np.bincount(taken['label']).tolist() == [2, 2, 2, 2]
