"""`qa`: extractive question answering, fine-tuning a text encoder with a start/end span head.

BERT's SQuAD recipe (Devlin et al. 2019) on any method with `embed_sequence` (mlm, lm): a
linear head maps each token's final hidden state to a start and an end logit; the loss is
the cross-entropy of the gold start and of the gold end over the window's CLS and context
positions (the question, separators and padding are never answers). Questions and contexts
are packed into windows with a document stride (`qa_windows.py`); a question's answer is the
best span over its windows, mapped back to context characters through tokenizer offsets, and
scored with the official SQuAD v1.1 EM and F1 (`squad_metrics.py`) over all gold answers.

The encoder and head train on windows of the training questions less a held-out
`val_fraction` of them; held-out F1 is measured every `eval_every` steps (0: each epoch) and
the test split is scored once with the best weights (`best_step.py`).

Shape suffixes: B = batch, L = seq_len, D = width.
"""
from collections.abc import Callable, Sequence
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sslax import errors
from sslax.data.builders import squad
from sslax.evaluators import best_step
from sslax.evaluators import fine_tune
from sslax.evaluators import qa_windows
from sslax.evaluators import squad_metrics

NUM_SAMPLES = 5   # predicted answers shown next to the truth in the report
NEG = -1e9        # logit of positions that cannot be an answer


def span_logits(variables: Any, model_state: Any, tokens_BxL: jax.Array, begin_BxL: jax.Array,
                embed_sequence: Callable) -> tuple[jax.Array, jax.Array]:
  """(start, end) logits [B, L]; positions other than CLS (0) and context tokens get NEG."""
  h_BxLxD, _ = embed_sequence(variables['encoder'], model_state, {'tokens': tokens_BxL})
  out_BxLx2 = h_BxLxD.astype(jnp.float32) @ variables['head']['w_Dx2'] + variables['head']['b_2']
  allowed_BxL = (begin_BxL >= 0).at[:, 0].set(True)
  out_BxLx2 = jnp.where(allowed_BxL[..., None], out_BxLx2, NEG)
  return out_BxLx2[..., 0], out_BxLx2[..., 1]


def span_loss(start_BxL: jax.Array, end_BxL: jax.Array, start_B: jax.Array,
              end_B: jax.Array) -> jax.Array:
  """Mean of the start and end cross-entropies over the batch."""
  xent = optax.softmax_cross_entropy_with_integer_labels
  return 0.5 * (xent(start_BxL, start_B).mean() + xent(end_BxL, end_B).mean())


@functools.lru_cache(maxsize=8)
def _compiled(embed_sequence: Callable, learning_rate: float, weight_decay: float, steps: int,
              warmup_steps: int):
  """(optimiser, jitted step, jitted logits), once per encoder family and options: the
  pretrained and random-init encoders of a run share one compilation."""
  tx = optax.adamw(fine_tune.schedule(learning_rate, steps, warmup_steps),
                   weight_decay=weight_decay)

  def loss_fn(variables, model_state, batch):
    start, end = span_logits(variables, model_state, batch['tokens'], batch['begin'],
                             embed_sequence)
    return span_loss(start, end, batch['start'], batch['end'])

  @jax.jit
  def step(variables, opt_state, model_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(variables, model_state, batch)
    updates, opt_state = tx.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state, loss

  logits = jax.jit(lambda v, s, t, b: span_logits(v, s, t, b, embed_sequence))
  return tx, step, logits


def predict(logits_fn, variables, model_state, questions: Sequence[squad.Question],
            windows: qa_windows.Windows, *, batch_size: int, max_answer_tokens: int) -> list[str]:
  """The predicted answer text of every question."""
  starts, ends = [], []
  n = len(windows.question_W)
  for lo in range(0, n, batch_size):
    idx = np.minimum(np.arange(lo, lo + batch_size), n - 1)   # fixed shape: one compilation
    s, e = logits_fn(variables, model_state, windows.tokens_WxL[idx], windows.begin_WxL[idx])
    starts.append(np.asarray(s)[:min(batch_size, n - lo)])
    ends.append(np.asarray(e)[:min(batch_size, n - lo)])
  return qa_windows.best_spans(np.concatenate(starts), np.concatenate(ends), windows,
                               [q.context for q in questions],
                               max_answer_tokens=max_answer_tokens)


def _arrays(w: qa_windows.Windows) -> dict[str, np.ndarray]:
  return {'tokens': w.tokens_WxL, 'begin': w.begin_WxL.astype(np.int32), 'start': w.start_W,
          'end': w.end_W}


def evaluate(embed_sequence: Callable, params: Any, model_state: Any, tokenizer,
             train: Sequence[squad.Question], test: Sequence[squad.Question], *, seq_len: int,
             epochs: float, batch_size: int, learning_rate: float, weight_decay: float = 0.0,
             warmup_steps: int = 0, doc_stride: int = 128, max_query_tokens: int = 64,
             max_answer_tokens: int = 30, val_fraction: float = 0.1, eval_every: int = 0,
             seed: int = 0, progress: str = '',
             key: str = 'config.evals.qa') -> tuple[dict[str, float], list[dict[str, Any]]]:
  """Fine-tunes `params` + a span head on `train`; ({'exact_match', 'f1', 'val_f1',
  'best_step'} on `test` at the best held-out step, a few test predictions). `progress`: a
  progress bar's description ('': none). `key`: the evaluator's config key, which errors name."""
  # sequence_tasks.check refuses these config values before training: here they are a
  # caller's bug, not a user's setting.
  if not epochs > 0 or not 0 < val_fraction < 1:
    raise ValueError(f'qa needs epochs > 0 and val_fraction in (0, 1); got {epochs}, '
                     f'{val_fraction}.')
  order = np.random.default_rng(seed).permutation(len(train))
  num_val = max(1, int(round(val_fraction * len(train))))
  val = [train[i] for i in np.sort(order[:num_val])]
  fit = [train[i] for i in np.sort(order[num_val:])]
  make = functools.partial(qa_windows.make, tokenizer, seq_len=seq_len, doc_stride=doc_stride,
                           max_query_tokens=max_query_tokens, key=key)
  fit_w, val_w, test_w = make(fit), make(val), make(test)
  data = _arrays(fit_w)
  per_epoch = math.ceil(len(fit_w.question_W) / batch_size)
  steps = max(1, math.ceil(epochs * per_epoch))
  if not 0 <= warmup_steps < steps:
    # Known only now (the steps follow from the data): a setting the user can change.
    raise errors.ConfigError(
        f'{key}.warmup_steps={warmup_steps} must be in [0, {steps}) (the steps of {epochs} '
        f'epochs of {len(fit_w.question_W)} windows at batch {batch_size}); lower it.')
  tx, step, logits_fn = _compiled(embed_sequence, learning_rate, weight_decay, steps,
                                  warmup_steps)
  feat_dim = jax.eval_shape(embed_sequence, params, model_state,
                            {'tokens': data['tokens'][:1]})[0].shape[-1]
  variables = {'encoder': params, 'head': {'w_Dx2': jnp.zeros((feat_dim, 2), jnp.float32),
                                           'b_2': jnp.zeros((2,), jnp.float32)}}
  answer = functools.partial(predict, logits_fn, batch_size=batch_size,
                             max_answer_tokens=max_answer_tokens)
  golds = lambda qs: [[a for a, _ in q.answers] for q in qs]
  validate = lambda v: squad_metrics.score(answer(v, model_state, val, val_w), golds(val))['f1']
  best, best_t, val_f1, _ = best_step.train(
      lambda v, o, b: step(v, o, model_state, b), variables, tx.init(variables), data,
      batch_size=batch_size, steps=steps, every=eval_every or per_epoch, validate=validate,
      seed=seed, progress=progress)
  predictions = answer(best, model_state, test, test_w)
  scores = squad_metrics.score(predictions, golds(test))
  samples = [{'question': q.question, 'predicted': p, 'gold': [a for a, _ in q.answers]}
             for q, p in zip(test[:NUM_SAMPLES], predictions)]
  return {**scores, 'val_f1': val_f1, 'best_step': float(best_t)}, samples
