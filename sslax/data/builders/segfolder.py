"""`segfolder:DIR`: images with per-pixel class masks, for the `segmentation` evaluator.

Layout (../shared/data/dsb2018's): `DIR/classes.txt`, one class name a line, id = line
number (from 0); `DIR/<split>/images/<id>.png|jpg|jpeg` and `DIR/<split>/masks/<id>.png`, a
single-channel PNG of uint8 class ids the size of its image, where IGNORE (255) marks pixels
no class is scored on. Images may have any size.

Every pair is checked at build time, and an error names the file: an image without a mask
or a mask without an image, a mask that is not single-channel, a mask whose size differs
from its image's, a class id >= the number of classes in classes.txt (other than IGNORE),
and an unreadable image. Images are stored as their own encoded bytes (as an image folder
stored encoded, `image_folder.py`), masks as PNG bytes; both are decoded by the reader
(`decode`), so a build costs about the folder's size on disk.

Stored order is the sorted file ids of each split; the class names go into the builder's
metadata (`class_names`), which `sources.dense_classes` reads back.
"""
from __future__ import annotations

import io
import os
from typing import Iterator

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

from sslax import errors
from sslax.data.builders import local
from sslax.data.builders import pixels

IGNORE = 255
CLASSES_FILE = 'classes.txt'
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')


def read_classes(root: str) -> list[str]:
  path = os.path.join(root, CLASSES_FILE)
  if not os.path.isfile(path):
    raise errors.DataNotFoundError(
        f'{path} not found. Fix: a segfolder: source needs DIR/{CLASSES_FILE}, one class name a '
        'line (line 1 is class id 0).')
  with open(path, encoding='utf-8') as f:
    names = [line.strip() for line in f if line.strip()]
  if not names:
    raise errors.DataError(f'{path} names no class.')
  if len(names) > IGNORE:
    raise errors.DataError(f'{path} names {len(names)} classes; masks are uint8 with '
                           f'{IGNORE} meaning ignore, so at most {IGNORE} classes fit.')
  return names


def splits(root: str) -> dict[str, str]:
  """{split: DIR/<split>} for every sub-folder holding images/ and masks/."""
  root = os.path.abspath(os.path.expanduser(root))
  if not os.path.isdir(root):
    return {}
  return {name: os.path.join(root, name) for name in sorted(os.listdir(root))
          if os.path.isdir(os.path.join(root, name, 'images'))}


def pairs(split_dir: str) -> list[tuple[str, str]]:
  """[(image path, mask path)] of one split, by sorted id; DataError naming the file that
  lacks its partner."""
  images = {os.path.splitext(n)[0]: os.path.join(split_dir, 'images', n)
            for n in sorted(os.listdir(os.path.join(split_dir, 'images')))
            if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith('.')}
  mask_dir = os.path.join(split_dir, 'masks')
  masks = ({os.path.splitext(n)[0]: os.path.join(mask_dir, n) for n in os.listdir(mask_dir)
            if n.lower().endswith('.png') and not n.startswith('.')}
           if os.path.isdir(mask_dir) else {})
  for key, mask in sorted(masks.items()):
    if key not in images:
      raise errors.DataNotFoundError(
          f'{mask}: no image for this mask (looked for {os.path.join(split_dir, "images", key)}'
          f'{{{",".join(IMAGE_EXTENSIONS)}}}). Fix: add the image or remove the mask.')
  for key, image in sorted(images.items()):
    if key not in masks:
      raise errors.DataNotFoundError(
          f'{image}: no mask for this image (looked for {os.path.join(mask_dir, key + ".png")}).'
          ' Fix: add its mask (uint8 class ids, 255 = ignore) or remove the image.')
  if not images:
    raise errors.DataError(f'{split_dir}/images holds no {"/".join(IMAGE_EXTENSIONS)} file.')
  return [(images[k], masks[k]) for k in sorted(images)]


def read_mask(path: str) -> np.ndarray:
  """uint8 [H, W] class ids of a mask PNG (mode L or P: the palette index is the id)."""
  try:
    with PIL.Image.open(path) as img:
      if img.mode not in ('L', 'P'):
        raise errors.DataError(f'{path}: mask mode {img.mode!r}; a mask is a single-channel '
                               '(L or P) PNG of uint8 class ids.')
      return np.asarray(img, np.uint8)
  except (OSError, SyntaxError) as e:
    raise errors.DataError(f'{path}: unreadable mask ({e}).') from None


def check_pair(image: str, mask: str, num_classes: int) -> tuple[int, int]:
  """(height, width) of a checked image-mask pair; DataError naming the file otherwise."""
  result = pixels.verify_chunk([image])[0]
  if isinstance(result, str):
    raise errors.DataError(f'{result}. Fix: replace or remove the image and its mask.')
  h, w, _ = result
  ids = read_mask(mask)
  if ids.shape != (h, w):
    raise errors.DataError(f'{mask}: mask is {ids.shape[1]}x{ids.shape[0]} (WxH) but its image '
                           f'{image} is {w}x{h}; a mask must be the size of its image.')
  bad = np.unique(ids[(ids >= num_classes) & (ids != IGNORE)])
  if bad.size:
    raise errors.DataError(f'{mask}: class id {int(bad[0])} is out of range: {CLASSES_FILE} '
                           f'names {num_classes} classes (ids 0..{num_classes - 1}; '
                           f'{IGNORE} = ignore).')
  return h, w


def fingerprint(root: str) -> str:
  read_classes(root)   # a missing classes.txt is named here, before anything is built
  entries = [local.stat_entry(os.path.join(root, CLASSES_FILE))]
  for split_dir in splits(root).values():
    for folder in ('images', 'masks'):
      d = os.path.join(split_dir, folder)
      if os.path.isdir(d):
        entries += [local.stat_entry(os.path.join(d, n)) for n in sorted(os.listdir(d))]
  return local.fingerprint(entries)


def make_config(root: str) -> local.PathConfig:
  root = os.path.abspath(os.path.expanduser(root))
  names = read_classes(root)
  found = splits(root)
  if not found:
    raise errors.DataNotFoundError(f'segfolder:{root} has no <split>/images folder.')
  items = {}
  for split, split_dir in found.items():
    items[split] = [(image, mask, *check_pair(image, mask, len(names)))
                    for image, mask in pairs(split_dir)]
  return local.PathConfig(name=local.config_name(root), description=f'Segmentation folder {root}',
                          path=root, num_classes=len(names), class_names=tuple(names),
                          payload={'items': items})


class SslaxSegFolder(local.LocalBuilder):
  """Encoded images with PNG masks of class ids, in sorted id order per split."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'image bytes, mask PNG bytes, height, width, file.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=self.builder_config.description,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=(), dtype=np.object_),
            'mask': tfds.features.Tensor(shape=(), dtype=np.object_),
            'height': tfds.features.Tensor(shape=(), dtype=np.int32),
            'width': tfds.features.Tensor(shape=(), dtype=np.int32),
            'file': tfds.features.Text()}),
        metadata=tfds.core.MetadataDict(class_names=list(self.builder_config.class_names)),
        disable_shuffling=True)

  def _generate_examples(self, rows) -> Iterator:
    for i, (image, mask, h, w) in enumerate(rows):
      with open(image, 'rb') as f:
        data = f.read()
      with open(mask, 'rb') as f:
        mask_bytes = f.read()
      yield i, {'image': data, 'mask': mask_bytes, 'height': np.int32(h), 'width': np.int32(w),
                'file': os.path.relpath(image, self.builder_config.path)}


def prepare(root: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """Builds (once per version of the folder) and returns a read-only builder."""
  return local.build_path(SslaxSegFolder, root, data_dir, fingerprint=fingerprint,
                          make_config=make_config)


def decode_image(data: bytes) -> np.ndarray:
  """uint8 [H, W, 3] of stored image bytes (segfolder: and coco: records)."""
  with PIL.Image.open(io.BytesIO(bytes(data))) as img:
    return np.asarray(img.convert('RGB'))


def decode(record: dict) -> tuple[np.ndarray, np.ndarray]:
  """(image uint8 [H, W, 3], mask uint8 [H, W]) of a stored record."""
  image = decode_image(record['image'])
  with PIL.Image.open(io.BytesIO(bytes(record['mask']))) as img:
    mask = np.asarray(img, np.uint8)
  return image, mask
