"""TFDS catalog data sets replaced by TFDS's own mock data, in this process.

For what needs a catalog set's shapes but not its pixels: the compile-only fit check
(`python -m sslax.preflight --topology ... --mock_data`), experiments/accelerator_check.py's
`--mock_data`, and the paper configs' smoke tests, where ImageNet or LibriSpeech are absent.
"""
import contextlib
import functools
from collections.abc import Iterator
from unittest import mock

import tensorflow_datasets as tfds
from tensorflow_datasets.testing import mocking

from sslax.data import catalog
from sslax.data import sources


@contextlib.contextmanager
def catalog_mock(num_examples: int = 48) -> Iterator[None]:
  """Every `tfds:` source reads `num_examples` random records of its feature spec.

  Each unknown dimension is 10 (one shape per feature), so a step's shapes come from the
  config (crop size, clip length), not from the mock. Grain worker processes would reopen the
  real (absent) data set: callers keep `data.num_workers=0`.
  """
  init = mocking.RandomFakeGenerator.__init__
  with mock.patch.object(mocking.RandomFakeGenerator, '__init__',
                         functools.partialmethod(init, constant_dynamic_shape=True)), \
      mock.patch.object(sources.RandomAccess, '__getitems__', None), \
      mock.patch.object(catalog, 'decoders', lambda builder: None), \
      tfds.testing.mock_data(num_examples=num_examples):
    # TFDS 4.9.10's mocked data source breaks on batched reads (`__getitems__`), and it
    # encodes through TensorFlow when decoders are asked for, so images stay decoded.
    yield
