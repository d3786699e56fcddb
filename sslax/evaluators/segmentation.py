"""`segmentation`: semantic segmentation on a `segfolder:` source, frozen or fine-tuned.

mode='linear': the encoder is frozen and a linear classifier per position of its last
feature map is trained, its logits bilinearly upsampled to the crop (the linear protocol of
DINOv2 and MAE). mode='fine_tune': encoder and a light decoder train together, an FPN on a
ResNet's stages or progressive upsampling on a ViT's tokens (models/dense.py).

Training crops are `image_size` squares (0: config.data.image_size) cut by
`data/dense_augment.scale_crop_flip`: a random scale in `scale_range` of the crop size for
the shorter side, a random window and a left-right flip, the same on image and mask. The loss
is the per-pixel cross-entropy over non-ignored pixels (mask 255 ignored), averaged over the
global batch. Each step runs on the mesh like the trainer's: the batch sharded over the data
axes, weights replicated, so any device count gives the same loss and gradients.

Scoring: each test image is resized whole to image_size x image_size, its logits resized
back to the image's own size (bilinear), and the argmax compared with the original mask.
Pixels are counted into one confusion matrix over the split; `miou` is the mean IoU over the
classes present (in the ground truth or the predictions: a class with an empty union has no
IoU and is left out, as mmsegmentation's nanmean), `pixel_accuracy` the fraction of
non-ignored pixels right. As fine_tune.py, a held-out `val_fraction` of the training images
is scored every `eval_every` steps (0: each epoch) and the test split at the best of those.

Shape suffixes: B batch, S crop side, K classes, H/W a test image's own size.
"""
from collections.abc import Sequence
import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import PIL.Image

from sslax import errors
from sslax.augment import image as image_aug
from sslax.data import dense_augment
from sslax.data import sources
from sslax.data.builders import segfolder
from sslax.evaluators import dense_fit
from sslax.evaluators import fine_tune
from sslax.models import dense

MODES = ('linear', 'fine_tune')
OPTIONS = ('mode', 'epochs', 'batch_size', 'learning_rate', 'weight_decay')
# image_size 0: config.data.image_size; max_train/max_test 0: whole splits (else the first N
# of a fixed shuffle); decoder_width: channels of the fine-tune decoder; num_pictures: test
# images drawn in the report.
OPTIONAL = {'image_size': 0, 'scale_range': (0.5, 2.0), 'flip_prob': 0.5, 'decoder_width': 64,
            'val_fraction': 0.1, 'eval_every': 0, 'warmup_steps': 0, 'max_train': 0,
            'max_test': 0, 'num_pictures': 4}


def check(key: str, ev: ml_collections.ConfigDict, source: str, source_key: str) -> None:
  """Options and source of a segmentation evaluator; ConfigError naming the key."""
  if ev.mode not in MODES:
    raise errors.ConfigError(f'{key}.mode={ev.mode!r} is unknown; choose one of {MODES}.')
  dense_fit.check_fit_options(key, ev, OPTIONAL['scale_range'])
  if sources.parse(source, key=source_key)[0] != 'segfolder':
    raise errors.ConfigError(f'{key} (type {ev.type!r}) reads a segfolder: source, but '
                             f'{source_key}={source!r}; set {key}.source=segfolder:DIR.')


# ---------------------------------------------------------------------------------- metrics

def confusion(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
  """[K, K] pixel counts, rows = truth, columns = prediction; IGNORE pixels left out."""
  truth, predicted = np.asarray(truth).ravel(), np.asarray(predicted).ravel()
  keep = truth != segfolder.IGNORE
  if np.any(truth[keep] >= num_classes) or np.any(predicted >= num_classes):
    raise ValueError(f'class ids must be < num_classes={num_classes} (or {segfolder.IGNORE}).')
  index = truth[keep].astype(np.int64) * num_classes + predicted[keep]
  return np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def scores(confusion_KxK: np.ndarray) -> dict[str, float]:
  """{'miou': mean IoU over classes with a non-empty union, 'pixel_accuracy'}."""
  c = np.asarray(confusion_KxK, np.float64)
  intersection = np.diag(c)
  union = c.sum(0) + c.sum(1) - intersection
  present = union > 0
  return {'miou': float(np.mean(intersection[present] / union[present])) if present.any()
                  else 0.0,
          'pixel_accuracy': float(intersection.sum() / max(c.sum(), 1.0))}


def pixel_loss(logits_BxSxSxK: jax.Array, mask_BxSxS: jax.Array) -> jax.Array:
  """Mean cross-entropy over the batch's non-ignored pixels."""
  valid = mask_BxSxS != segfolder.IGNORE
  labels = jnp.where(valid, mask_BxSxS, 0).astype(jnp.int32)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits_BxSxSxK.astype(jnp.float32), labels)
  return jnp.sum(ce * valid) / jnp.maximum(jnp.sum(valid), 1)


# ---------------------------------------------------------------------------------- model

def make_logits_fn(model_config: ml_collections.ConfigDict, mode: str, num_classes: int,
                   width: int):
  """(head module, logits(variables, batch_stats, images_BxSxSxC uint8) -> [B, S, S, K])."""
  feature_maps = dense.make_feature_maps(model_config)
  head = dense.make_head(mode, model_config, num_classes, width)

  def logits(variables, batch_stats, images):
    x = image_aug.to_model_range(image_aug.to_float(images))
    maps = feature_maps(variables['encoder'], batch_stats, x)
    if mode == 'linear':
      maps = [jax.lax.stop_gradient(m) for m in maps]
    out = head.apply({'params': variables['head']}, maps)
    return dense.resize(out, images.shape[1], images.shape[2])

  return head, feature_maps, logits


@functools.lru_cache(maxsize=8)
def _compiled(model_config_json: str, mode: str, num_classes: int, width: int, lr: float,
              weight_decay: float, steps: int, warmup_steps: int, mesh):
  """(optimiser, step, logits), jitted on `mesh` with the batch sharded; cached per options so
  every encoder and seed of a run shares one compilation."""
  model_config = ml_collections.ConfigDict(json.loads(model_config_json))
  head, feature_maps, logits = make_logits_fn(model_config, mode, num_classes, width)
  tx = optax.adamw(fine_tune.schedule(lr, steps, warmup_steps), weight_decay=weight_decay)
  if mode == 'linear':   # only the head trains: the encoder's updates are zero, not decayed
    tx = optax.multi_transform({'train': tx, 'frozen': optax.set_to_zero()},
                               {'encoder': 'frozen', 'head': 'train'})

  def loss_fn(variables, batch_stats, data):
    return pixel_loss(logits(variables, batch_stats, data['image']), data['mask'])

  step, predict, grads = dense_fit.jit_on_mesh(loss_fn, logits, tx, mesh)
  return head, feature_maps, tx, step, predict, grads


def compiled(model_config, mode, num_classes, width, lr=1e-3, weight_decay=0.0, steps=1,
             warmup_steps=0, *, mesh):
  return _compiled(model_config.to_json(), mode, int(num_classes), int(width), float(lr),
                   float(weight_decay), int(steps), int(warmup_steps), mesh)


def init_variables(head, feature_maps, encoder_params, batch_stats, image_size: int,
                   seed: int) -> dict[str, Any]:
  x = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  maps = jax.eval_shape(feature_maps, encoder_params, batch_stats, x)
  maps = [jnp.zeros(m.shape, m.dtype) for m in maps]
  return {'encoder': encoder_params,
          'head': head.init(jax.random.key(seed), maps)['params']}


# ---------------------------------------------------------------------------------- data

def load(config: ml_collections.ConfigDict, ev: ml_collections.ConfigDict,
         source: str) -> dict[str, Any]:
  """Classes, training pairs (shrunk to the largest scale a crop uses) and test images
  (resized to the crop size) with their full-size masks, read once per source."""
  def prepare(record, role, size, shorter):
    image, mask = segfolder.decode(record)
    if role == 'train':
      return dense_augment.shrink(image, mask, shorter)
    return dense_augment.eval_view(image, size), mask

  return dense_fit.load(config, {**OPTIONAL, **ev.to_dict()}, source, prepare)


# ---------------------------------------------------------------------------------- run

def predict_masks(predict, variables, batch_stats, views: Sequence[tuple[np.ndarray, Any]],
                  batch_size: int, mesh) -> list[np.ndarray]:
  """Argmax class ids at each mask's own size, for (view [S, S, 3], mask [H, W]) pairs."""
  images = np.stack([v for v, _ in views])
  out = []
  for lo in range(0, len(images), batch_size):
    idx = np.minimum(np.arange(lo, lo + batch_size), len(images) - 1)   # one shape
    batch = dense_fit.to_mesh({'image': images[idx]}, mesh)
    logits = np.asarray(jax.device_get(predict(variables, batch_stats, batch['image'])))
    for j in range(min(batch_size, len(images) - lo)):
      h, w = views[lo + j][1].shape
      out.append(np.argmax(np.stack(
          [np.asarray(PIL.Image.fromarray(logits[j, ..., k]).resize((w, h), PIL.Image.BILINEAR))
           for k in range(logits.shape[-1])], axis=-1), axis=-1).astype(np.uint8))
  return out


def split_scores(predicted: Sequence[np.ndarray], views, num_classes: int) -> dict[str, float]:
  total = sum(confusion(mask, p, num_classes) for p, (_, mask) in zip(predicted, views))
  return scores(total)


def evaluate(config: ml_collections.ConfigDict, ev: ml_collections.ConfigDict, data: dict,
             encoder: tuple[Any, Any], seed: int, mesh, progress: str = '',
             key: str = 'config.evals.segmentation') -> tuple[dict[str, float], dict]:
  """({'miou', 'pixel_accuracy', 'val_miou', 'best_step'}, picture data) of one encoder;
  `key`: the evaluator's config key, for errors."""
  ev = {**OPTIONAL, **ev.to_dict()}
  size, num_classes = data['size'], len(data['classes'])
  batch_size = int(ev['batch_size'])
  fit_plan = dense_fit.plan(data['train'], ev, seed, key)
  val = [(dense_augment.eval_view(image, size), mask) for image, mask in fit_plan.val]
  fit = fit_plan.fit
  head, feature_maps, tx, step, predict, _ = compiled(
      config.model, ev['mode'], num_classes, ev['decoder_width'], ev['learning_rate'],
      ev['weight_decay'], fit_plan.steps, ev['warmup_steps'], mesh=mesh)
  encoder_params, batch_stats = dense.encoder_variables(*encoder)
  variables = init_variables(head, feature_maps, encoder_params, batch_stats, size, seed)
  counter = iter(range(1, fit_plan.steps + 1))

  def train_step(variables, opt_state, batch):
    rng = np.random.default_rng([seed, next(counter)])
    crops = [dense_augment.scale_crop_flip(*fit[i], size=size,
                                           scale_range=tuple(ev['scale_range']),
                                           flip_prob=float(ev['flip_prob']), rng=rng)[:2]
             for i in batch['index']]
    host = {'image': np.stack([c[0] for c in crops]), 'mask': np.stack([c[1] for c in crops])}
    return step(variables, opt_state, batch_stats, dense_fit.to_mesh(host, mesh))

  run = lambda v, views: predict_masks(predict, v, batch_stats, views, batch_size, mesh)
  validate = lambda v: split_scores(run(v, val), val, num_classes)['miou']
  best, best_t, val_miou = dense_fit.train(train_step, variables, tx, fit_plan, ev, validate,
                                           seed, progress)
  predicted = run(best, data['test'])
  picture = dense_fit.picture(data['test'], predicted, data['classes'], int(ev['num_pictures']))
  return ({**split_scores(predicted, data['test'], num_classes), 'val_miou': val_miou,
           'best_step': float(best_t)}, picture)
