"""The online linear probe: a classifier trained inside the train step on frozen features.

SimCLR (Chen et al. 2020, appendix B.9) and solo-learn train a linear classifier alongside
pretraining on `stop_gradient` features, so accuracy is visible at every logged step for one
extra forward pass and no separate evaluation. Here the features are the method's
`embed(params, model_state, batch)` of the unaugmented training batch, so the probe works for
every method; its parameters and optimiser state live in `TrainState.probe` and are
checkpointed with the rest of the state.

Shape suffixes: B = batch, D = feature width, L = classes.
"""
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from sslax import errors
from sslax import methods
from sslax.data import sources


class OnlineProbe(NamedTuple):
  # init(params, model_state, batch) -> probe state {'params', 'opt_state'}; batch may be zeros.
  init: Callable[[Any, Any, methods.Batch], Any]
  # update(probe_state, params, model_state, batch) -> (probe_state, metrics)
  update: Callable[[Any, Any, Any, methods.Batch], tuple[Any, methods.Metrics]]


def make(config: ml_collections.ConfigDict, method: methods.Method) -> OnlineProbe | None:
  """The probe of `config.online_probe`, or None when it is disabled."""
  if not config.online_probe.enabled:
    return None
  num_classes = sources.info(config.data.source, data_dir=config.data.data_dir or None).num_classes
  if not num_classes:
    raise errors.ConfigError(
        f'config.online_probe.enabled=True needs labels in the training data, but '
        f'config.data.source={config.data.source!r} has none; set '
        'config.online_probe.enabled=False or train on a labelled source.')
  tx = optax.adam(config.online_probe.learning_rate)

  def init(params, model_state, batch):
    feat_dim = jax.eval_shape(method.embed, params, model_state, batch).shape[-1]
    probe_params = {'w_DxL': jnp.zeros((feat_dim, num_classes), jnp.float32),
                    'b_L': jnp.zeros((num_classes,), jnp.float32)}
    return {'params': probe_params, 'opt_state': tx.init(probe_params)}

  def update(probe_state, params, model_state, batch):
    # The probe must never shape the representation: no gradient reaches the encoder.
    feats_BxD = jax.lax.stop_gradient(
        method.embed(params, model_state, batch)).astype(jnp.float32)
    labels_B = batch['label']

    def loss_fn(p):
      logits_BxL = feats_BxD @ p['w_DxL'] + p['b_L']
      loss = optax.softmax_cross_entropy_with_integer_labels(logits_BxL, labels_B).mean()
      return loss, jnp.mean(jnp.argmax(logits_BxL, -1) == labels_B)

    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(probe_state['params'])
    updates, opt_state = tx.update(grads, probe_state['opt_state'], probe_state['params'])
    new_state = {'params': optax.apply_updates(probe_state['params'], updates),
                 'opt_state': opt_state}
    return new_state, {'online_probe/loss': loss, 'online_probe/accuracy': accuracy}

  return OnlineProbe(init=init, update=update)
