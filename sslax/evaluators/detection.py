"""`detection`: a light one-stage detector (FCOS, evaluators/fcos.py) on a `coco:` source,
fine-tuned with the encoder.

The encoder's feature maps (models/dense.py) become a pyramid: on a ResNet an FPN over its
stages, keeping the levels of stride >= `min_stride`, plus one 2x max-pooled level above the
last; on a ViT, ViTDet's simple pyramid from the token grid (strides p/2, p, 2p). An FCOS
head shared by the levels predicts classes, box distances and centre-ness per position.
Encoder, pyramid and head train together (BatchNorm statistics fixed, as fine_tune.py).

Training crops are `image_size` squares from `dense_augment.scale_crop_flip` (random scale of
the shorter side in `scale_range` x the crop side, random window, left-right flip), boxes
moved with the image and clipped to the crop, boxes left without area dropped. FCOS targets
are computed per crop on the host; the step runs on the mesh like the trainer's (batch
sharded, weights replicated). Test images are resized whole to image_size x image_size and
their detections scaled back to the image's own size; COCO mAP@[.5:.95] (`map`) and mAP@0.5
(`map50`) come from pycocotools (coco_metrics.py). A held-out `val_fraction` of the training
images is scored (mAP@0.5) every `eval_every` steps (0: each epoch), the test split at the
best of those.
"""
import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sslax import errors
from sslax.augment import image as image_aug
from sslax.data import dense_augment
from sslax.data import sources
from sslax.data.builders import segfolder
from sslax.evaluators import coco_metrics
from sslax.evaluators import dense_fit
from sslax.evaluators import fcos
from sslax.evaluators import fine_tune
from sslax.models import dense

OPTIONS = ('epochs', 'batch_size', 'learning_rate', 'weight_decay')
OPTIONAL = {'image_size': 0, 'scale_range': (0.8, 1.25), 'flip_prob': 0.5, 'decoder_width': 64,
            'min_stride': 2, 'val_fraction': 0.1, 'eval_every': 0, 'warmup_steps': 0,
            'max_train': 0, 'max_test': 0, 'score_threshold': 0.05, 'nms_iou': 0.6,
            'max_detections': 100, 'num_pictures': 4}


def check(key: str, ev: ml_collections.ConfigDict, source: str, source_key: str) -> None:
  dense_fit.check_fit_options(key, ev, OPTIONAL['scale_range'])
  if int(ev.get('min_stride', 2)) < 1:
    raise errors.ConfigError(f'{key}.min_stride={ev.min_stride} must be >= 1.')
  if sources.parse(source, key=source_key)[0] != 'coco':
    raise errors.ConfigError(f'{key} (type {ev.type!r}) reads a coco: source, but '
                             f'{source_key}={source!r}; set {key}.source=coco:DIR.')


def make_model(model_config: ml_collections.ConfigDict, num_classes: int, width: int,
               min_stride: int):
  """(pyramid + head module pair, forward(variables, stats, images uint8) -> (cls, box, ctr),
  levels(variables, stats, images) -> pyramid maps)."""
  feature_maps = dense.make_feature_maps(model_config)
  vit = model_config.name == 'vit'
  neck = dense.SimplePyramid(width) if vit else dense.FPN(width)
  head = dense.FCOSHead(num_classes, width)

  def levels(variables, batch_stats, images):
    x = image_aug.to_model_range(image_aug.to_float(images))
    maps = feature_maps(variables['encoder'], batch_stats, x)
    if not vit:
      size = images.shape[1]
      maps = [m for m in maps if size // m.shape[1] >= min_stride] or maps[-1:]
    out = neck.apply({'params': variables['neck']}, maps)
    if not vit:
      out = out + [nn_pool(out[-1])]
    return out

  def forward(variables, batch_stats, images):
    return head.apply({'params': variables['head']}, levels(variables, batch_stats, images))

  return neck, head, feature_maps, levels, forward


def nn_pool(x):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), 'SAME')


@functools.lru_cache(maxsize=8)
def _compiled(model_json: str, num_classes: int, width: int, min_stride: int, lr: float,
              weight_decay: float, steps: int, warmup_steps: int, mesh):
  model_config = ml_collections.ConfigDict(json.loads(model_json))
  neck, head, feature_maps, levels, forward = make_model(model_config, num_classes, width,
                                                         min_stride)
  tx = optax.adamw(fine_tune.schedule(lr, steps, warmup_steps), weight_decay=weight_decay)

  def loss_fn(variables, batch_stats, data):
    cls, box, ctr = forward(variables, batch_stats, data['image'])
    return fcos.loss(cls, box, ctr, data)

  step, forward_jit, grads = dense_fit.jit_on_mesh(loss_fn, forward, tx, mesh)
  return {'neck': neck, 'head': head, 'feature_maps': feature_maps, 'levels': levels, 'tx': tx,
          'step': step, 'forward': forward_jit, 'grads': grads}


def compiled(model_config, num_classes, width, min_stride=2, lr=1e-3, weight_decay=0.0,
             steps=1, warmup_steps=0, *, mesh) -> dict[str, Any]:
  return _compiled(model_config.to_json(), int(num_classes), int(width), int(min_stride),
                   float(lr), float(weight_decay), int(steps), int(warmup_steps), mesh)


def init_variables(parts: dict[str, Any], encoder_params, batch_stats, size: int,
                   seed: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """(variables, the positions' geometry: centres, strides, ranges) at crop size `size`."""
  x = jnp.zeros((1, size, size, 3), jnp.float32)
  maps = jax.eval_shape(parts['feature_maps'], encoder_params, batch_stats, x)
  maps = [jnp.zeros(m.shape, m.dtype) for m in maps]
  k1, k2 = jax.random.split(jax.random.key(seed))
  variables = {'encoder': encoder_params, 'neck': None, 'head': None}
  if parts['neck'].__class__.__name__ == 'FPN':
    maps = [m for m in maps if size // m.shape[1] >= parts['min_stride']] or maps[-1:]
  variables['neck'] = parts['neck'].init(k1, maps)['params']
  pyramid = parts['neck'].apply({'params': variables['neck']}, maps)
  if parts['neck'].__class__.__name__ == 'FPN':
    pyramid = pyramid + [nn_pool(pyramid[-1])]
  variables['head'] = parts['head'].init(k2, pyramid)['params']
  shapes = [(m.shape[1], m.shape[2]) for m in pyramid]
  strides = [size // h for h, _ in shapes]
  centres, strides_p = fcos.positions(shapes, strides)
  ranges = np.concatenate([np.tile(r, (h * w, 1)) for r, (h, w) in
                           zip(fcos.level_ranges(strides), shapes)]).astype(np.float32)
  return variables, {'centres': centres, 'strides': strides_p, 'ranges': ranges}


def load(config: ml_collections.ConfigDict, ev: ml_collections.ConfigDict,
         source: str) -> dict[str, Any]:
  """Classes, training images (shrunk to the largest scale a crop uses) with their boxes,
  test views with their boxes at the image's own size."""
  def prepare(record, role, size, shorter):
    image = segfolder.decode_image(record['image'])   # any stored image bytes
    h, w = image.shape[:2]
    truth = {'height': h, 'width': w, 'boxes': np.asarray(record['boxes'], np.float32),
             'labels': np.asarray(record['labels'], np.int32)}
    if role == 'test':
      return dense_augment.eval_view(image, size), truth
    small, _ = dense_augment.shrink(image, None, shorter)
    scale = small.shape[0] / h, small.shape[1] / w
    return small, {**truth, 'boxes': dense_augment.boxes_resize(truth['boxes'], *scale)}

  return dense_fit.load(config, {**OPTIONAL, **ev.to_dict()}, source, prepare)


def detect(parts, variables, batch_stats, views, geometry, ev, batch_size, mesh) -> list[dict]:
  """Detections of (view [S, S, 3], truth) pairs, in each image's own pixels."""
  images = np.stack([v for v, _ in views])
  size = images.shape[1]
  out = []
  for lo in range(0, len(images), batch_size):
    idx = np.minimum(np.arange(lo, lo + batch_size), len(images) - 1)
    cls, box, ctr = jax.device_get(parts['forward'](
        variables, batch_stats, dense_fit.to_mesh({'image': images[idx]}, mesh)['image']))
    for j in range(min(batch_size, len(images) - lo)):
      boxes, scores, labels = fcos.decode(
          np.asarray(cls[j]), np.asarray(box[j]), np.asarray(ctr[j]), geometry['centres'],
          geometry['strides'], score_threshold=float(ev['score_threshold']),
          nms_iou=float(ev['nms_iou']), max_detections=int(ev['max_detections']))
      truth = views[lo + j][1]
      scale = np.array([truth['width'], truth['height']] * 2, np.float32) / size
      out.append({'boxes': boxes * scale, 'scores': scores, 'labels': labels})
  return out


def evaluate(config: ml_collections.ConfigDict, ev: ml_collections.ConfigDict, data: dict,
             encoder: tuple[Any, Any], seed: int, mesh, progress: str = '',
             key: str = 'config.evals.detection') -> tuple[dict[str, float], dict]:
  """({'map', 'map50', 'val_map50', 'best_step'}, picture data) of one encoder; `key`: the
  evaluator's config key, for errors."""
  ev = {**OPTIONAL, **ev.to_dict()}
  size, num_classes, batch_size = data['size'], len(data['classes']), int(ev['batch_size'])
  fit_plan = dense_fit.plan(data['train'], ev, seed, key)
  val = [(dense_augment.eval_view(image, size),
          {**t, 'height': image.shape[0], 'width': image.shape[1]})
         for image, t in fit_plan.val]
  fit = fit_plan.fit
  parts = compiled(config.model, num_classes, ev['decoder_width'], ev['min_stride'],
                   ev['learning_rate'], ev['weight_decay'], fit_plan.steps, ev['warmup_steps'],
                   mesh=mesh)
  parts = {**parts, 'min_stride': int(ev['min_stride'])}
  encoder_params, batch_stats = dense.encoder_variables(*encoder)
  variables, geometry = init_variables(parts, encoder_params, batch_stats, size, seed)
  counter = iter(range(1, fit_plan.steps + 1))

  def train_step(variables, opt_state, batch):
    rng = np.random.default_rng([seed, next(counter)])
    images, cls, ltrb, ctr = [], [], [], []
    for i in batch['index']:
      image, truth = fit[i]
      crop, _, (boxes, keep) = dense_augment.scale_crop_flip(
          image, None, truth['boxes'], size=size, scale_range=tuple(ev['scale_range']),
          flip_prob=float(ev['flip_prob']), rng=rng)
      t = fcos.targets(boxes[keep], truth['labels'][keep], geometry['centres'],
                       geometry['strides'], geometry['ranges'])
      images.append(crop)
      cls.append(t[0])
      ltrb.append(t[1])
      ctr.append(t[2])
    host = {'image': np.stack(images), 'cls': np.stack(cls), 'ltrb': np.stack(ltrb),
            'ctr': np.stack(ctr)}
    return parts['step'](variables, opt_state, batch_stats, dense_fit.to_mesh(host, mesh))

  run = lambda v, views: detect(parts, v, batch_stats, views, geometry, ev, batch_size, mesh)
  validate = lambda v: coco_metrics.mean_ap([t for _, t in val], run(v, val),
                                            num_classes)['map50']
  best, best_t, val_map50 = dense_fit.train(train_step, variables, parts['tx'], fit_plan, ev,
                                            validate, seed, progress)
  found = run(best, data['test'])
  picture = dense_fit.picture(data['test'], found, data['classes'], int(ev['num_pictures']),
                              kind='boxes')
  return ({**coco_metrics.mean_ap([t for _, t in data['test']], found, num_classes),
           'val_map50': val_map50, 'best_step': float(best_t)}, picture)
