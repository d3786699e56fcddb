"""`builtin:digits`: scikit-learn's bundled handwritten digits as a TFDS data set.

1,797 real 8x8 grey images (UCI optical digits) ship inside scikit-learn, so this is the one
labelled image data set every checkout has without a network. Pixels (0..16 in the original)
are rescaled to uint8 0..255 so they look like every other image source; the train/test split
is stratified with a fixed seed so every run and every machine sees the same 1,437 / 360.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from sslax.data.builders import local

NUM_TEST = 360
SPLIT_SEED = 0
IMAGE_SHAPE = (8, 8, 1)


def split_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{'train': (images uint8 [1437,8,8,1], labels int64), 'test': (... [360,...])}.

  Public so tests (and anyone checking the stored data) can compare against the source.
  """
  # Imported here: scikit-learn is slow to import and only a build needs it.
  from sklearn import datasets, model_selection
  digits = datasets.load_digits()
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = digits.target.astype(np.int64)
  x_train, x_test, y_train, y_test = model_selection.train_test_split(
      images, labels, test_size=NUM_TEST, stratify=labels, random_state=SPLIT_SEED)
  return {'train': (x_train, y_train), 'test': (x_test, y_test)}


class SslaxDigits(local.LocalBuilder):
  """scikit-learn digits, 8x8x1 uint8, stratified 1,437 / 360 split."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Pixels 0..16 scaled to 0..255; stratified split, seed 0.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description='scikit-learn load_digits: 1,797 handwritten digits, 8x8 grey.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            'label': tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://scikit-learn.org/stable/datasets/toy_dataset.html',
        # Keep the stored order equal to the split's order (index i == i-th of the split).
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Bundled with scikit-learn: nothing to download.
    return {name: self._generate_examples(x, y) for name, (x, y) in split_arrays().items()}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray) -> Iterator:
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {'image': image, 'label': int(label)}


def fingerprint() -> str:
  """The data is fixed by the scikit-learn release; only the builder VERSION matters."""
  return f'sklearn-digits-{SslaxDigits.VERSION}'


def prepare(data_dir: str | None) -> tfds.core.DatasetBuilder:
  """Builds (once) and returns a read-only builder for `builtin:digits`."""
  return local.ensure_built(
      builder_cls=SslaxDigits,
      config=None,
      source_fingerprint=fingerprint,
      make_builder=lambda root: SslaxDigits(data_dir=root),
      data_dir=data_dir,
  )
