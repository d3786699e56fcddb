"""`npz:PATH`: NumPy .npz files of images (+ optional labels) as a TFDS data set.

Each file holds `images` uint8 [N,H,W] or [N,H,W,C] and, when labelled, `labels` [N] of
non-negative integers (classes) or floats (regression targets, stored float32); other arrays,
e.g. MNIST's `ids`, are ignored. A PATH containing
`{split}` names one file per split (`mnist_{split}.npz` → splits `train`, `test`, ... found on
disk); a PATH without it is a single file that is the `train` split.
"""
from __future__ import annotations

import os
import zipfile
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from sslax import errors
from sslax.data.builders import local
from sslax.data.builders import split_paths

def fingerprint(pattern: str) -> str:
  """Names, sizes and mtimes of every split file."""
  return split_paths.fingerprint(split_paths.from_pattern(pattern))


def _load(path: str) -> tuple[np.ndarray, np.ndarray | None]:
  """Reads and validates one split file; errors name the file and what is wrong."""
  try:
    data = np.load(path, allow_pickle=False)
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise errors.DataError(f'{path} is not a readable .npz file: {e}') from e
  if not isinstance(data, np.lib.npyio.NpzFile):
    raise errors.DataError(f'{path} holds a single array; npz sources need an .npz with "images" '
                           '(and "labels").')
  with data:
    if 'images' not in data:
      raise errors.DataError(f'{path} has no array named "images" (it has {sorted(data.files)}).')
    images = data['images']
    labels = data['labels'] if 'labels' in data else None
  if images.dtype != np.uint8 or images.ndim not in (3, 4):
    raise errors.DataError(f'{path}: "images" must be uint8 [N,H,W] or [N,H,W,C], '
                           f'got {images.dtype} {list(images.shape)}.')
  if labels is not None:
    numeric = np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
    if labels.shape != (len(images),) or not numeric:
      raise errors.DataError(f'{path}: "labels" must be integers (classes) or floats (regression '
                             f'targets) of shape [{len(images)}] to match "images", got '
                             f'{labels.dtype} {list(labels.shape)}.')
    if np.issubdtype(labels.dtype, np.floating) and not np.all(np.isfinite(labels)):
      raise errors.DataError(f'{path}: "labels" holds NaN or inf; regression targets must be '
                             'finite.')
    if np.issubdtype(labels.dtype, np.integer) and len(labels) and labels.min() < 0:
      raise errors.DataError(f'{path}: "labels" must be >= 0 (found {labels.min()}).')
  return (images[..., None] if images.ndim == 3 else images), labels


def make_config(pattern: str) -> local.PathConfig:
  """Loads every split file once and records what the features need (shape, classes)."""
  files = split_paths.from_pattern(pattern)
  if not files:
    raise errors.DataNotFoundError(f'no .npz file matches {pattern!r}.')
  arrays = {split: _load(path) for split, path in files.items()}
  shapes = {split: images.shape[1:] for split, (images, _) in arrays.items()}
  if len(set(shapes.values())) > 1:
    raise errors.DataError(f'{pattern}: splits disagree on the image shape {shapes}; every split '
                           'must hold images of one (H, W, C).')
  labelled = {split: labels is not None for split, (_, labels) in arrays.items()}
  if len(set(labelled.values())) > 1:
    raise errors.DataError(f'{pattern}: some splits have "labels" and some do not {labelled}.')
  num_classes = None
  # Float labels in any split make every split's labels float32 regression targets.
  regression = any(np.issubdtype(labels.dtype, np.floating)
                   for _, labels in arrays.values() if labels is not None)
  if all(labelled.values()) and not regression:
    num_classes = 1 + max((int(labels.max()) for _, labels in arrays.values() if len(labels)),
                          default=0)
  return local.PathConfig(
      name=local.config_name(pattern),
      description=f'Arrays from {pattern}',
      path=os.path.abspath(os.path.expanduser(pattern)),
      image_shape=tuple(int(d) for d in next(iter(shapes.values()))),
      num_classes=num_classes,
      payload={'arrays': arrays, 'regression': regression},
  )


class SslaxArrays(local.LocalBuilder):
  """Images (and labels) from .npz files; one config per source path."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'images uint8 [H,W,C] + optional ClassLabel (or float32 targets).'}

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    features = {'image': tfds.features.Tensor(
        shape=config.image_shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES)}
    if config.num_classes is not None:
      features['label'] = tfds.features.ClassLabel(num_classes=config.num_classes)
    elif config.payload.get('regression'):
      features['label'] = tfds.features.Scalar(dtype=np.float32)
    return self.dataset_info_from_configs(
        description=config.description,
        features=tfds.features.FeaturesDict(features),
        # The stored order is the file's order, so index i is row i of the .npz.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Local files only.
    return {split: self._generate_examples(images, labels)
            for split, (images, labels) in self.builder_config.payload['arrays'].items()}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray | None) -> Iterator:
    for i, image in enumerate(images):
      example = {'image': image}
      if labels is not None:
        example['label'] = (float(labels[i]) if self.builder_config.payload.get('regression')
                            else int(labels[i]))
      yield i, example


def prepare(pattern: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """Builds (once per version of the files) and returns a read-only builder for `npz:pattern`."""
  return local.build_path(SslaxArrays, pattern, data_dir, fingerprint=fingerprint,
                          make_config=make_config)
