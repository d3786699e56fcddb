"""`folder:DIR`: a folder of JPEG/PNG images as a TFDS data set.

Layouts (`list_images`): `DIR/<split>/<class>/*.jpg` (labelled; class names, sorted, become
label ids, one mapping for all splits taken from `train` or the first split),
`DIR/<split>/*.jpg` (unlabelled, for pretraining), or a path holding `{split}` such as
`dsb2018/{split}/images`. Files with other extensions are ignored (counted in the log).

Storage is chosen per folder, automatically:
- decoded: every image has one size, at most DECODED_MAX_SIDE per side (CIFAR-10, digits):
  uint8 pixel tensors decoded once at build time, read into memory, cropped on device.
- encoded: anything else (ImageNet, microscopy, photos): each file's own JPEG/PNG bytes
  (CMYK and other odd JPEGs re-encoded once), with height, width and the file's name. Stored
  size is about the source's; decoding and cropping happen on the host at training time
  (`sslax/data/host_crops.py`).
Grey files become [H,W,1] in an all-grey folder; in a folder that holds any colour file they
are expanded to RGB (real folders mix a few grey JPEGs into colour data). Alpha is dropped.

Every file is checked at build time (header, then all its data: JPEGs by a 1/8-scale
decode), so truncated or corrupt files stop the build naming the file
(`config.data.bad_files='error'`), or are left out and counted (`'skip'`).

Checking and decoding run in worker processes on machines with 4+ cores, while TFDS writes
(see `pixels.chunked_map`: a script that builds a large folder wants the usual
`if __name__ == '__main__':` guard). CIFAR-10's 60k JPEGs take ~20 s on 2 cores.
"""
from __future__ import annotations

import collections
import logging
import os
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from sslax import errors
from sslax.data.builders import class_folders
from sslax.data.builders import local
from sslax.data.builders import pixels
from sslax.data.builders import split_paths

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
# Seed of the fixed permutation of each split's stored order (see `stored_order`).
ORDER_SEED = 0


def stored_order(n: int) -> np.ndarray:
  """Position i of a stored split holds sorted item `stored_order(n)[i]` (items sorted by
  class, then file name). A fixed permutation, so an index names a file reproducibly, yet a
  slice such as `train[:10000]` is a random sample of every class: stored class by class, the
  first 10k CIFAR-10 images would be classes 0 and 1 only."""
  return np.random.default_rng(ORDER_SEED).permutation(n)


# Folders whose images all share one size no larger than this (per side) keep decoded uint8
# pixels: decoding once beats decoding every step, and the bytes are small (CIFAR-10: 150 MB).
DECODED_MAX_SIDE = 128
# Above this many files the fingerprint lists names (no per-file stat), see `fingerprint`.
LARGE_FOLDER_FILES = 100_000


def base_dir(root: str) -> str:
  """The folder that stored file names are relative to: `root`, or the part of it before
  `{split}` (so a name starts with its split)."""
  field = split_paths.SPLIT_FIELD
  return root.partition(field)[0].rstrip(os.sep) or os.sep if field in root else root


def _image_files(directory: str) -> list[str]:
  return class_folders.files(directory, IMAGE_EXTENSIONS)


def list_images(root: str) -> dict[str, dict[str | None, list[str]]]:
  """{split: {class: [paths]}} of `root`; class None for an unlabelled split.

  Layouts: DIR/<split>/<class>/*.jpg (labelled), DIR/<split>/*.jpg (unlabelled), and a
  path holding `{split}`, e.g. dsb2018/{split}/images, whose expansions are the splits.
  """
  root = os.path.abspath(os.path.expanduser(root))
  if split_paths.SPLIT_FIELD in root:
    base, _, rest = root.partition(split_paths.SPLIT_FIELD)
    base = base.rstrip(os.sep) or os.sep
    split_dirs = {s: os.path.join(base, s, rest.lstrip(os.sep)) for s in
                  class_folders.visible_dirs(base)
                  if os.path.isdir(os.path.join(base, s, rest.lstrip(os.sep)))}
    if not split_dirs:
      raise errors.DataError(
          f'no folder matches {root} with {split_paths.SPLIT_FIELD} replaced by a split name.')
  else:
    split_dirs = {s: os.path.join(root, s) for s in class_folders.visible_dirs(root)}
  flat = {s: _image_files(d) for s, d in split_dirs.items()}
  if flat and all(flat.values()):
    return {s: {None: paths} for s, paths in flat.items()}
  if any(flat.values()):
    mixed = sorted(s for s, paths in flat.items() if paths)
    raise errors.DataError(f'{root}: splits {mixed} hold images directly (unlabelled) but others '
                           'hold class folders; use one layout for every split.')
  if split_paths.SPLIT_FIELD in root:
    raise errors.DataError(
        f'{root}: the folders it names hold no {"/".join(IMAGE_EXTENSIONS)} files.')
  return class_folders.list_files(root, IMAGE_EXTENSIONS)


def ignored_files(layout: dict[str, dict[str | None, list[str]]]) -> int:
  """Visible files next to the listed images whose extension is not an image's: counted in
  a log line, since a folder of .webp or .tif files otherwise looks empty for no reason."""
  dirs = {os.path.dirname(p) for classes in layout.values() for paths in classes.values()
          for p in paths[:1]}
  return sum(1 for d in dirs for e in os.scandir(d)
             if e.is_file() and not e.name.startswith('.')
             and not e.name.lower().endswith(IMAGE_EXTENSIONS))


def fingerprint(root: str) -> str:
  """Names, sizes and mtimes of every image; above LARGE_FOLDER_FILES files, names plus each
  directory's mtime instead (no stat per file: ~1 s for ImageNet's 1.28M names on local disk,
  and far less than a stat each on network disks). A file rewritten in place under the same
  name is then missed: delete the build, or touch its folder."""
  root = os.path.abspath(os.path.expanduser(root))
  layout = list_images(root)
  paths = [p for classes in layout.values() for ps in classes.values() for p in ps]
  if len(paths) <= LARGE_FOLDER_FILES:
    return local.fingerprint([local.stat_entry(p) for p in paths])
  dirs = sorted({os.path.dirname(p) for p in paths})
  return local.fingerprint([(p, 0, 0) for p in paths] + [local.stat_entry(d) for d in dirs])


def _verified(paths: list[str], bad_files: str, root: str) -> tuple[list, list[str]]:
  """Header probe + full-data check of every file, in worker processes for large folders."""
  probes, skipped = [], []
  for path, result in zip(paths, pixels.chunked_map(pixels.verify_chunk, paths)):
    if isinstance(result, str):
      if bad_files == 'error':
        raise errors.DataError(f"{result}. Fix: remove or replace the file, or set "
                               "config.data.bad_files='skip' to leave such files out (counted in "
                               "the log).")
      skipped.append(result)
      result = None
    probes.append(result)
  if skipped:
    logging.warning("sslax: skipped %d unreadable image(s) under %s (config.data.bad_files="
                    "'skip'); first: %s", len(skipped), root, skipped[0])
  return probes, skipped


def make_config(root: str, bad_files: str = 'error') -> local.PathConfig:
  """Lists the folder and checks every file: class ids, storage (decoded or encoded), errors
  up front."""
  class_folders.check_bad_files(bad_files)
  root = os.path.abspath(os.path.expanduser(root))
  layout = list_images(root)
  reference = 'train' if 'train' in layout else next(iter(layout))
  labelled = None not in layout[reference]
  class_names = tuple(sorted(layout[reference])) if labelled else ()
  paths = [p for classes in layout.values() for name in sorted(classes, key=str)
           for p in classes[name]]
  ignored = ignored_files(layout)
  if ignored:
    logging.warning('sslax: %d file(s) under %s are not %s images and are ignored.', ignored,
                    root, '/'.join(IMAGE_EXTENSIONS))
  probes, skipped = _verified(paths, bad_files, root)
  good = {p: probe for p, probe in zip(paths, probes) if probe is not None}
  if not good:
    raise errors.DataError(f'no readable image under {root}.')
  sizes = collections.Counter((h, w) for h, w, _ in good.values())
  channels = 3 if any(colour for _, _, colour in good.values()) else 1
  (height, width), _ = sizes.most_common(1)[0]
  decoded = len(sizes) == 1 and max(height, width) <= DECODED_MAX_SIDE
  items = {split: [(p, class_names.index(name) if labelled else -1)
                   for name in sorted(classes, key=str) for p in classes[name] if p in good]
           for split, classes in layout.items()}
  items = {split: [listed[i] for i in stored_order(len(listed))]
           for split, listed in items.items()}
  return local.PathConfig(
      name=class_folders.config_name(root, bad_files),
      description=f'Image folder {root}',
      path=root,
      image_shape=(height, width, channels) if decoded else (None, None, channels),
      num_classes=len(class_names) if labelled else None,
      class_names=class_names if labelled else None,
      payload={'items': items, 'skipped': len(skipped)},
  )


class SslaxImageFolder(local.LocalBuilder):
  """A folder of images, stored decoded (small same-size images) or encoded (any sizes)."""

  VERSION = tfds.core.Version('1.2.0')
  RELEASE_NOTES = {'1.0.0': 'uint8 pixels [H,W,C]; ClassLabel from sorted class folders.',
                   '1.1.0': 'Stored order is a fixed permutation (slices sample all classes).',
                   '1.2.0': 'Images of different sizes (or large ones) stored as their encoded '
                            'bytes with height/width; unlabelled flat folders; bad files.'}

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    shape = tuple(config.image_shape)
    if None in shape:
      # Encoded JPEG/PNG bytes; `image_shape` (None, None, C) tells readers the channels.
      features = {'image': tfds.features.Tensor(shape=(), dtype=np.object_),
                  'height': tfds.features.Tensor(shape=(), dtype=np.int32),
                  'width': tfds.features.Tensor(shape=(), dtype=np.int32),
                  'file': tfds.features.Text()}   # split/class/name.jpg: what errors name
    else:
      features = {'image': tfds.features.Tensor(shape=shape, dtype=np.uint8,
                                                encoding=tfds.features.Encoding.BYTES)}
    if config.class_names is not None:
      features['label'] = tfds.features.ClassLabel(names=list(config.class_names))
    return self.dataset_info_from_configs(
        description=config.description,
        features=tfds.features.FeaturesDict(features),
        supervised_keys=('image', 'label') if config.class_names is not None else None,
        # Read back by sources.info: the channels every decoded view has (1: all grey).
        metadata=tfds.core.MetadataDict(channels=int(shape[2])),
        # Stored order = `stored_order` of the sorted (class, file name) list: reproducible.
        disable_shuffling=True,
    )

  def _generate_examples(self, items: list[tuple[str, int]]) -> Iterator:
    config = self.builder_config
    paths = [p for p, _ in items]
    shape = tuple(config.image_shape)
    labelled = config.class_names is not None
    if None in shape:
      for i, ((path, label), (data, h, w)) in enumerate(
          zip(items, pixels.chunked_map(pixels.encoded_chunk, paths))):
        example = {'image': data, 'height': np.int32(h), 'width': np.int32(w),
                   'file': os.path.relpath(path, base_dir(config.path))}
        yield i, {**example, 'label': label} if labelled else example
      return
    decoded = pixels.chunked_map(pixels.decode_chunk, paths, shape)
    for i, ((_, label), image) in enumerate(zip(items, decoded)):
      yield i, {'image': image, 'label': label} if labelled else {'image': image}


def prepare(root: str, data_dir: str | None,
            bad_files: str = 'error') -> tfds.core.DatasetBuilder:
  """Builds (once per version of the folder) and returns a read-only builder for `folder:root`."""
  class_folders.check_bad_files(bad_files)
  return local.build_path(SslaxImageFolder, root, data_dir, fingerprint=fingerprint,
                          make_config=lambda path: make_config(path, bad_files),
                          config=class_folders.config_name(root, bad_files))
