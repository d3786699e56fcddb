"""Downstream evaluation of frozen encoders on `config.eval.source`.

Features of the train and test splits are extracted once per encoder with the
method's `embed` (jitted over sharded batches), then handed to the kNN and
linear-probe evaluators. Each encoder is named by a prefix, so one call scores
the pretrained encoder and its random initialisation side by side.
"""
from collections.abc import Callable, Mapping
from typing import Any

import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np

from sslax import sharding
from sslax.data import pipeline
from sslax.data import sources
from sslax.evaluators import knn
from sslax.evaluators import linear_probe

EmbedFn = Callable[[Any, Any, dict[str, jax.Array]], jax.Array]


def extract(embed_fn: EmbedFn, params: Any, model_state: Any,
            batches) -> tuple[np.ndarray, np.ndarray]:
  """Features [N, D] float32 and labels [N] of one pass over a split (padding dropped)."""
  feats, labels = [], []
  for batch in batches:
    mask = pipeline.gather(batch['mask'])
    feats.append(pipeline.gather(embed_fn(params, model_state, batch))[mask])
    labels.append(pipeline.gather(batch['label'])[mask])
  return np.concatenate(feats).astype(np.float32), np.concatenate(labels)


def run(config: ml_collections.ConfigDict, embed: EmbedFn,
        encoders: Mapping[str, tuple[Any, Any]], mesh: Mesh) -> dict[str, float]:
  """Scores each `{prefix: (params, model_state)}`; keys like 'random_init/knn/accuracy'."""
  e = config.eval
  num_classes = sources.info(e.source, data_dir=config.data.data_dir or None).num_classes
  if not num_classes:
    raise ValueError(f'config.eval.source={e.source!r} has no labels; downstream evaluation '
                     'needs a labelled source.')
  replicated = sharding.replicated(mesh)
  embed_fn = jax.jit(embed, in_shardings=(replicated, replicated, sharding.batch_sharding(mesh)))
  splits = {s: pipeline.Records(e.source, s, data_dir=config.data.data_dir or None,
                                in_memory=True, transform=pipeline.record_transform(config.data))
            for s in (e.train_split, e.test_split)}
  results = {}
  for prefix, (params, model_state) in encoders.items():
    feats = {s: extract(embed_fn, params, model_state,
                        pipeline.eval_batches(records, batch_size=e.batch_size, mesh=mesh))
             for s, records in splits.items()}
    (x_train, y_train), (x_test, y_test) = feats[e.train_split], feats[e.test_split]
    results[f'{prefix}knn/accuracy'] = knn.knn_accuracy(
        x_train, y_train, x_test, y_test, num_classes=num_classes, k=e.knn_k,
        temperature=e.knn_temperature)
    probe = linear_probe.logistic_probe(
        x_train, y_train, x_test, y_test, num_classes=num_classes,
        l2_grid=tuple(e.probe_l2_grid), steps=e.probe_steps, seed=config.seed)
    results[f'{prefix}linear_probe/accuracy'] = probe['accuracy']
    results[f'{prefix}linear_probe/l2'] = probe['l2']
  return {k: float(v) for k, v in results.items()}
