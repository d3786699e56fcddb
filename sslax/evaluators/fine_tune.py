"""Fine-tuning: the whole encoder plus a new linear head, trained on labelled data.

Any method's encoder can be fine-tuned through its `embed(params, model_state, batch)`: the
head sits on `embed`'s features and gradients flow into `params`. `model_state` (e.g.
BatchNorm statistics) stays fixed, because `embed` runs the encoder in inference mode; this
is BatchNorm in eval mode throughout, a known simplification (papers update the statistics
during fine-tuning) that makes fine-tuning slightly pessimistic for BatchNorm encoders.

Two tasks: `classification` (softmax cross-entropy on integer labels, reports accuracy) and
`regression` (mean squared error on float targets, reports MSE and R^2 on the test split).

The head starts at zero, or (`head_init='probe'`, classification) at the linear probe fitted
on the frozen encoder's features: LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort
Pretrained Features and Underperform Out-of-Distribution"). From a zero head, the encoder's
early updates serve a head that is still far from fitted and can distort the pretrained
features before the head has learned to use them.

Training runs on the default device with host minibatches: fine-tuning data sets here are
small, and the frozen evaluators carry the sharded path.

Shape suffixes: B = batch, D = feature width, L = outputs (classes, or 1 for regression).
"""
from collections.abc import Callable, Mapping, Sequence
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sslax import optim
from sslax.evaluators import linear_probe

EmbedFn = Callable[[Any, Any, dict[str, jax.Array]], jax.Array]
TASKS = ('classification', 'regression')
HEAD_INITS = ('zeros', 'probe')
# LP-FT's probe: L2 strengths tried (chosen on 20% of train, as linear_probe does).
PROBE_L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def _batches(data: Mapping[str, np.ndarray], batch_size: int):
  """Fixed-size batches over `data` in order, the last one padded; yields (batch, num_valid)."""
  n = len(data['label'])
  for start in range(0, n, batch_size):
    idx = np.minimum(np.arange(start, start + batch_size), n - 1)
    yield {k: v[idx] for k, v in data.items()}, min(batch_size, n - start)


def schedule(learning_rate: float, steps: int, warmup_steps: int) -> optax.Schedule | float:
  """A constant rate, or (warmup_steps > 0) BERT's fine-tuning schedule: linear warmup from 0
  over warmup_steps, then linear decay to 0 at `steps` (Devlin et al. 2019 warm up over 10%).
  Warmup keeps Adam's first, full-size steps from scrambling pretrained weights while the
  zero-initialised head still sends them arbitrary gradients."""
  if not warmup_steps:
    return learning_rate
  return optax.join_schedules(
      [optax.linear_schedule(0.0, learning_rate, warmup_steps),
       optax.linear_schedule(learning_rate, 0.0, steps - warmup_steps)], [warmup_steps])


@functools.lru_cache(maxsize=16)
def _compiled(embed: EmbedFn, task: str, learning_rate: float, weight_decay: float,
              steps: int, warmup_steps: int, layer_decay: float = 1.0):
  """(optimiser, jitted step, jitted predict), built once per embed and options: every seed
  and encoder (pretrained, random init) of a run reuses one compilation."""
  tx = optax.adamw(schedule(learning_rate, steps, warmup_steps), weight_decay=weight_decay)
  if layer_decay < 1.0:
    tx = optax.chain(tx, optim.scale_by_layer_decay(layer_decay))   # the head: full rate

  def predict(variables, model_state, batch):
    feats_BxD = embed(variables['encoder'], model_state, batch).astype(jnp.float32)
    return feats_BxD @ variables['head']['w_DxL'] + variables['head']['b_L']

  def loss_fn(variables, model_state, batch):
    out_BxL = predict(variables, model_state, batch)
    if task == 'classification':
      return optax.softmax_cross_entropy_with_integer_labels(out_BxL, batch['label']).mean()
    return jnp.mean(jnp.square(out_BxL[:, 0] - batch['label'].astype(jnp.float32)))

  @jax.jit
  def step(variables, opt_state, model_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(variables, model_state, batch)
    updates, opt_state = tx.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state, loss

  return tx, step, jax.jit(predict), jax.jit(embed)


def _probe_head(embed_fn, params: Any, model_state: Any, train: Mapping[str, np.ndarray],
                batch_size: int, num_classes: int, seed: int) -> dict[str, jax.Array]:
  """LP-FT's starting head: the logistic probe on the encoder's frozen training features."""
  feats = [np.asarray(embed_fn(params, model_state, batch), np.float32)[:valid]
           for batch, valid in _batches(train, batch_size)]
  fit = linear_probe.fit_logistic(np.concatenate(feats), train['label'],
                                  num_classes=num_classes, l2_grid=PROBE_L2_GRID, seed=seed)
  return {'w_DxL': jnp.asarray(fit['w_DxL']), 'b_L': jnp.asarray(fit['b_L'])}


def fine_tune(embed: EmbedFn, params: Any, model_state: Any, train: Mapping[str, np.ndarray],
              test: Mapping[str, np.ndarray], *, task: str, num_outputs: int, steps: int,
              batch_size: int, learning_rate: float, weight_decay: float = 0.0,
              warmup_steps: int = 0, head_init: str = 'zeros', seed: int = 0,
              score_at: Sequence[int] = (), layer_decay: float = 1.0) -> dict[str, float]:
  """Trains encoder `params` and a linear head; scores on `test`.

  Args:
    embed: the method's embed(params, model_state, batch) -> [B, D].
    params, model_state: the encoder to start from (not modified: JAX arrays are immutable).
    train, test: host arrays, each with 'label' ([N] int class ids, or float targets for
      regression) and the inputs `embed` reads (e.g. 'image').
    task: 'classification' or 'regression'.
    num_outputs: classes L for classification; 1 for regression.
    steps, batch_size, learning_rate, weight_decay: AdamW on minibatches drawn with `seed`.
    warmup_steps: 0 keeps learning_rate constant; > 0 warms up, then decays (`schedule`).
    head_init: 'zeros', or 'probe' (classification only): start from the linear probe (LP-FT).
    score_at: steps in [0, steps) after which the test split is also scored (a learning curve).
    layer_decay: < 1 scales a ViT encoder's block i lr by layer_decay^(L-i) (MAE, BEiT).

  Returns:
    classification: {'accuracy'}; regression: {'mse', 'r2'} on the test split; and for each
    t in `score_at`, the same keys suffixed '@t' (e.g. 'accuracy@100').
  """
  if task not in TASKS:
    raise ValueError(f'fine-tune task must be one of {TASKS}; got {task!r}.')
  if steps < 1 or batch_size < 1:
    raise ValueError(f'fine-tune steps and batch_size must be >= 1; got {steps}, {batch_size}.')
  if not 0 <= warmup_steps < steps:
    raise ValueError(f'fine-tune warmup_steps must be in [0, steps={steps}); got {warmup_steps}.')
  if head_init not in HEAD_INITS or (head_init == 'probe' and task != 'classification'):
    raise ValueError(f"fine-tune head_init must be one of {HEAD_INITS} ('probe' only for "
                     f'classification); got {head_init!r} for task {task!r}.')
  probe_batch = {k: v[:batch_size] for k, v in train.items()}
  feat_dim = jax.eval_shape(embed, params, model_state, probe_batch).shape[-1]
  tx, step, predict, embed_fn = _compiled(embed, task, learning_rate, weight_decay, steps,
                                          warmup_steps, layer_decay)
  head = {'w_DxL': jnp.zeros((feat_dim, num_outputs), jnp.float32),
          'b_L': jnp.zeros((num_outputs,), jnp.float32)}
  if head_init == 'probe':
    head = _probe_head(embed_fn, params, model_state, train, batch_size, num_outputs, seed)
  variables = {'encoder': params, 'head': head}
  rng = np.random.default_rng(seed)
  n = len(train['label'])
  opt_state = tx.init(variables)
  curve = {}
  if 0 in score_at:
    curve = {f'{k}@0': v for k, v in _score(predict, variables, model_state, test, task,
                                            batch_size).items()}
  for t in range(1, steps + 1):
    idx = rng.integers(0, n, size=batch_size)
    variables, opt_state, _ = step(variables, opt_state, model_state,
                                   {k: v[idx] for k, v in train.items()})
    if t in score_at and t < steps:
      curve.update({f'{k}@{t}': v for k, v in _score(predict, variables, model_state, test,
                                                     task, batch_size).items()})
  return {**_score(predict, variables, model_state, test, task, batch_size), **curve}


def _score(predict, variables: Any, model_state: Any, test: Mapping[str, np.ndarray],
           task: str, batch_size: int) -> dict[str, float]:
  outputs = [np.asarray(predict(variables, model_state, batch))[:valid]
             for batch, valid in _batches(test, batch_size)]
  out_MxL = np.concatenate(outputs)
  if task == 'classification':
    return {'accuracy': float(np.mean(out_MxL.argmax(-1) == test['label']))}
  target_M = np.asarray(test['label'], np.float64)
  mse = float(np.mean(np.square(out_MxL[:, 0] - target_M)))
  return {'mse': mse, 'r2': float(1.0 - mse / max(np.var(target_M), 1e-12))}
