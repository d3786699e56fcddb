"""`coco:DIR`: object detection in COCO format, for the `detection` evaluator.

Layout (../shared/data/bccd's): `DIR/<split>.json` in COCO's detection format (`images` with
id, file_name, width, height; `annotations` with image_id, category_id and `bbox` [x, y, w, h]
in pixels; `categories` with id and name) and the images in `DIR/<split>/`. Categories map
to contiguous ids 0..K-1 in the order of their COCO ids (`class_names` in the builder's
metadata). Images without boxes are allowed.

Stored per image: its own encoded bytes, `boxes` [N, 4] float32 as (x0, y0, x1, y1) in pixels
(`dense_augment`'s convention), `labels` [N] int32, height, width, file name and the COCO
image id, in the JSON's image order. Errors name the file: a missing or unreadable image, an
image whose size differs from its JSON entry, a box with w or h <= 0, a box outside its image,
an annotation of an unknown image or category.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from sslax import errors
from sslax.data.builders import local
from sslax.data.builders import pixels
from sslax.data.builders import split_paths

# Box coordinates may exceed the image by rounding error in exported JSON; more is an error.
TOLERANCE = 1e-3


def split_files(root: str) -> dict[str, str]:
  """{split: DIR/<split>.json} for each JSON with a `DIR/<split>/` image folder beside it."""
  return {split: p for split, p in split_paths.in_folder(root, '.json').items()
          if os.path.isdir(os.path.splitext(p)[0])}


def _load(path: str) -> dict[str, Any]:
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise errors.DataError(f'{path}: not readable as JSON ({e}).') from None
  for key in ('images', 'annotations', 'categories'):
    if not isinstance(data.get(key), list):
      raise errors.DataError(f'{path}: no "{key}" list; expected COCO detection format.')
  return data


def categories(path: str) -> list[tuple[int, str]]:
  """[(COCO category id, name)] sorted by id: contiguous id i is the i-th."""
  return sorted((int(c['id']), str(c['name'])) for c in _load(path)['categories'])


def read_split(path: str, class_ids: dict[int, int]) -> list[dict[str, Any]]:
  """One row per image: path, size, image id, boxes (x0, y0, x1, y1) and contiguous labels;
  every box and image checked (see the module doc)."""
  data = _load(path)
  folder = os.path.splitext(path)[0]
  rows, by_id = [], {}
  for image in data['images']:
    file = os.path.join(folder, image['file_name'])
    if not os.path.isfile(file):
      raise errors.DataNotFoundError(
          f'{path}: image {image["file_name"]!r} (id {image["id"]}) not found; looked for '
          f'{file}. Fix: put the images of split {os.path.basename(folder)!r} in {folder}/.')
    probe = pixels.verify_chunk([file])[0]
    if isinstance(probe, str):
      raise errors.DataError(f'{probe}. Fix: replace the image or remove it from {path}.')
    h, w, _ = probe
    if (int(image.get('height', h)), int(image.get('width', w))) != (h, w):
      raise errors.DataError(f'{file}: the image is {w}x{h} but {path} says '
                             f'{image.get("width")}x{image.get("height")}.')
    row = {'file': file, 'height': h, 'width': w, 'image_id': int(image['id']), 'boxes': [],
           'labels': []}
    rows.append(row)
    by_id[int(image['id'])] = row
  for ann in data['annotations']:
    where = f'{path}: annotation {ann.get("id")!r}'
    row = by_id.get(int(ann['image_id']))
    if row is None:
      raise errors.DataError(f'{where} is of image id {ann["image_id"]}, which "images" lacks.')
    if int(ann['category_id']) not in class_ids:
      raise errors.DataError(f'{where} ({row["file"]}): category id {ann["category_id"]} is not '
                             f'in "categories" (ids {sorted(class_ids)}).')
    x, y, bw, bh = (float(v) for v in ann['bbox'])
    if bw <= 0 or bh <= 0:
      raise errors.DataError(f'{where} ({row["file"]}): bbox {ann["bbox"]} has w or h <= 0. '
                             'Fix: remove the annotation or give the box its size.')
    if (x < -TOLERANCE or y < -TOLERANCE or x + bw > row['width'] + TOLERANCE
        or y + bh > row['height'] + TOLERANCE):
      raise errors.DataError(f'{where} ({row["file"]}): bbox {ann["bbox"]} ([x, y, w, h]) lies '
                             f'outside the {row["width"]}x{row["height"]} image.')
    row['boxes'].append([max(x, 0.0), max(y, 0.0), min(x + bw, row['width']),
                         min(y + bh, row['height'])])
    row['labels'].append(class_ids[int(ann['category_id'])])
  return rows


def fingerprint(root: str) -> str:
  entries = []
  for split, path in split_files(root).items():
    entries.append(local.stat_entry(path, split))
    folder = os.path.splitext(path)[0]
    entries += [local.stat_entry(os.path.join(folder, n)) for n in sorted(os.listdir(folder))]
  return local.fingerprint(entries)


def make_config(root: str) -> local.PathConfig:
  root = os.path.abspath(os.path.expanduser(root))
  files = split_files(root)
  if not files:
    raise errors.DataNotFoundError(f'coco:{root} holds no <split>.json with a <split>/ folder.')
  reference = files.get('train', next(iter(files.values())))
  cats = categories(reference)
  if not cats:
    raise errors.DataError(f'{reference}: "categories" is empty.')
  for split, path in files.items():
    if categories(path) != cats:
      raise errors.DataError(f'{path}: its categories differ from {reference}\'s; every split '
                             'must share one category list.')
  class_ids = {coco_id: i for i, (coco_id, _) in enumerate(cats)}
  items = {split: read_split(path, class_ids) for split, path in files.items()}
  return local.PathConfig(name=local.config_name(root), description=f'COCO detection {root}',
                          path=root, num_classes=len(cats),
                          class_names=tuple(name for _, name in cats), payload={'items': items})


class SslaxCoco(local.LocalBuilder):
  """Encoded images with their boxes (x0, y0, x1, y1) and contiguous labels."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'image bytes, boxes [N,4] xyxy, labels [N], size, file, image_id.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=self.builder_config.description,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=(), dtype=np.object_),
            'boxes': tfds.features.Tensor(shape=(None, 4), dtype=np.float32,
                                          encoding=tfds.features.Encoding.BYTES),
            'labels': tfds.features.Tensor(shape=(None,), dtype=np.int32,
                                           encoding=tfds.features.Encoding.BYTES),
            'height': tfds.features.Tensor(shape=(), dtype=np.int32),
            'width': tfds.features.Tensor(shape=(), dtype=np.int32),
            'image_id': tfds.features.Tensor(shape=(), dtype=np.int64),
            'file': tfds.features.Text()}),
        metadata=tfds.core.MetadataDict(class_names=list(self.builder_config.class_names)),
        disable_shuffling=True)

  def _generate_examples(self, rows) -> Iterator:
    for i, row in enumerate(rows):
      with open(row['file'], 'rb') as f:
        data = f.read()
      yield i, {'image': data,
                'boxes': np.asarray(row['boxes'], np.float32).reshape(-1, 4),
                'labels': np.asarray(row['labels'], np.int32).reshape(-1),
                'height': np.int32(row['height']), 'width': np.int32(row['width']),
                'image_id': np.int64(row['image_id']),
                'file': os.path.relpath(row['file'], self.builder_config.path)}


def prepare(root: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """Builds (once per version of the folder) and returns a read-only builder."""
  return local.build_path(SslaxCoco, root, data_dir, fingerprint=fingerprint,
                          make_config=make_config)
