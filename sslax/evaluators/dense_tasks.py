"""The evaluators with a head per pixel or position, `segmentation` and `detection`, as the
Suite runs them (as sequence_tasks.py for qa and asr).

They read their own sources (`segfolder:`, `coco:`) and train on the feature maps of any
image method's encoder (models/dense.py); their splits are config.eval.train_split and
config.eval.test_split. Each returns its metrics and a picture for the report.
"""
from typing import Any

import ml_collections

from sslax import errors
from sslax.evaluators import detection
from sslax.evaluators import segmentation

MODULES = {'segmentation': segmentation, 'detection': detection}
OPTIONS = {name: m.OPTIONS for name, m in MODULES.items()}
OPTIONAL = {name: m.OPTIONAL for name, m in MODULES.items()}
# The options that decide what `load` keeps in memory: evaluators that share them share it.
_DATA_OPTIONS = ('image_size', 'scale_range', 'max_train', 'max_test')


def check(key: str, ev: ml_collections.ConfigDict, source: str, source_key: str) -> None:
  MODULES[ev.type].check(key, ev, source, source_key)


def data_key(ev: ml_collections.ConfigDict, source: str) -> tuple[str, str, str]:
  options = tuple(ev.get(k, OPTIONAL[ev.type][k]) for k in _DATA_OPTIONS)
  return ev.type, source, repr(options)


def load(config: ml_collections.ConfigDict, name: str, source: str) -> dict[str, Any]:
  ev = config.evals[name]
  if config.model.name not in ('resnet', 'vit'):
    raise errors.ConfigError(f'config.evals.{name} (type {ev.type!r}) trains on image feature '
                             f'maps, which config.model.name={config.model.name!r} does not '
                             "give; use an image method with a 'resnet' or 'vit' encoder.")
  return MODULES[ev.type].load(config, ev, source)


def score(config: ml_collections.ConfigDict, ev: ml_collections.ConfigDict, data: dict,
          encoder: tuple[Any, Any], seed: int, mesh, progress: str = '', *,
          key: str) -> tuple[dict[str, float], dict]:
  """({metric: value}, picture) of one encoder; `progress`: a bar's description ('': none);
  `key`: the evaluator's config key (config.evals.NAME), which errors name."""
  return MODULES[ev.type].evaluate(config, ev, data, encoder, seed, mesh, progress, key=key)
