"""`folder:DIR`: an image folder `DIR/<split>/<class>/*.{jpg,jpeg,png}` as a TFDS data set.

Class names, sorted, become label ids (one mapping for all splits, taken from `train`, or
from the first split when there is no `train`). Images are decoded once, at build time, and
stored as uint8 pixel tensors, so training never decodes JPEGs. Every image of a folder must
have one height and width. Grey files become [H,W,1] in an all-grey folder; in a folder that
holds any colour file they are expanded to RGB, since real folders (ImageNet-style) mix a few
grey JPEGs into colour data and failing on them would help nobody. Alpha is dropped.

Decoding is the slow part (~150 us per small JPEG, mostly PIL's Python), so on machines with
4+ cores large folders are decoded in worker processes while TFDS writes (see
`pixels.chunked_map`: a script that builds a large folder wants the usual
`if __name__ == '__main__':` guard). CIFAR-10's 60k JPEGs take ~20 s on 2 cores.
"""
from __future__ import annotations

import collections
import os
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from sslax import errors
from sslax.data.builders import class_folders
from sslax.data.builders import local
from sslax.data.builders import pixels

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
# Seed of the fixed permutation of each split's stored order (see `stored_order`).
ORDER_SEED = 0


def stored_order(n: int) -> np.ndarray:
  """Position i of a stored split holds sorted item `stored_order(n)[i]` (items sorted by
  class, then file name). A fixed permutation, so an index names a file reproducibly, yet a
  slice such as `train[:10000]` is a random sample of every class: stored class by class, the
  first 10k CIFAR-10 images would be classes 0 and 1 only."""
  return np.random.default_rng(ORDER_SEED).permutation(n)


def fingerprint(root: str) -> str:
  return class_folders.fingerprint(root, IMAGE_EXTENSIONS)


def make_config(root: str) -> local.PathConfig:
  """Lists the folder and probes every header: class ids, one (H, W, C), errors up front."""
  root = os.path.abspath(os.path.expanduser(root))
  layout = class_folders.list_files(root, IMAGE_EXTENSIONS)
  reference = 'train' if 'train' in layout else next(iter(layout))
  class_names = tuple(sorted(layout[reference]))
  paths = [p for classes in layout.values() for name in sorted(classes) for p in classes[name]]
  # Headers are probed here, not in workers: nothing overlaps with it, and on 2 cores starting
  # workers cost more than the ~60 us per file it saves.
  probes = pixels.probe_chunk(paths)
  sizes = collections.Counter((h, w) for h, w, _ in probes)
  (height, width), _ = sizes.most_common(1)[0]
  odd = [(p, (h, w)) for p, (h, w, _) in zip(paths, probes) if (h, w) != (height, width)]
  if odd:
    listed = '; '.join(f'{p} is {h}x{w}' for p, (h, w) in odd[:5])
    raise errors.DataError(f'images under {root} must share one size; most are {height}x{width} '
                           f'(HxW) but {len(odd)} differ: {listed}. Resize them or remove them.')
  channels = 3 if any(colour for _, _, colour in probes) else 1
  items = {split: [(p, class_names.index(name)) for name in sorted(classes)
                   for p in classes[name]] for split, classes in layout.items()}
  items = {split: [listed[i] for i in stored_order(len(listed))]
           for split, listed in items.items()}
  return local.PathConfig(
      name=local.config_name(root),
      description=f'Image folder {root}',
      path=root,
      image_shape=(height, width, channels),
      num_classes=len(class_names),
      class_names=class_names,
      payload={'items': items},
  )


class SslaxImageFolder(local.LocalBuilder):
  """Decoded images of a class-per-folder tree; one config per folder path."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'uint8 pixels [H,W,C]; ClassLabel from sorted class folders.',
                   '1.1.0': 'Stored order is a fixed permutation (slices sample all classes).'}

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    return self.dataset_info_from_configs(
        description=config.description,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=config.image_shape, dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            'label': tfds.features.ClassLabel(names=list(config.class_names)),
        }),
        supervised_keys=('image', 'label'),
        # Stored order = `stored_order` of the sorted (class, file name) list: reproducible.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Local files only.
    return {split: self._generate_examples(items)
            for split, items in self.builder_config.payload['items'].items()}

  def _generate_examples(self, items: list[tuple[str, int]]) -> Iterator:
    paths = [p for p, _ in items]
    shape = self.builder_config.image_shape
    decoded = pixels.chunked_map(pixels.decode_chunk, paths, shape)
    for i, ((_, label), image) in enumerate(zip(items, decoded)):
      yield i, {'image': image, 'label': label}


def prepare(root: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """Builds (once per version of the folder) and returns a read-only builder for `folder:root`."""
  return local.ensure_built(
      builder_cls=SslaxImageFolder,
      config=local.config_name(root),
      source_fingerprint=lambda: fingerprint(root),
      make_builder=lambda data_root: SslaxImageFolder(data_dir=data_root,
                                                      config=make_config(root)),
      data_dir=data_dir,
  )
