"""`asr`: speech recognition, fine-tuning an audio encoder with a CTC head on its frames.

A linear head maps each frame's contextual features (`embed_sequence` of apc, cpc,
masked_audio, clip_contrast) to logits over the blank (id 0) and the characters of
`builders.asr.ALPHABET` (ids 1..); the loss is CTC (Graves et al. 2006; `optax.ctc_loss`)
over the clip's real frames, summed over the batch and divided by its number of characters,
so long and short transcripts weigh by their length. Decoding is greedy: the best label of
each real frame, repeats collapsed, blanks dropped. WER and CER come from jiwer (a maintained
implementation, not ours) on the normalised transcripts (`builders/asr.py`).

Clips are stored zero-padded to the longest (`config.data.clip_seconds`), but a batch need
not carry all of that padding: with `length_buckets` > 0, training batches are drawn from
pools of `POOL_BATCHES` batches sorted by length (as length-bucketing samplers do), and each
batch is cut to the frames its longest clip needs, rounded up to a multiple of 1/length_buckets
of the full clip (so at most that many compiled shapes). A real frame sees the same samples
either way (the front end frames without centre padding, and padded frames are masked out),
so this changes only which clips share a batch, not any clip's features. On LJSpeech (mean
6.5 s of 10.1 s) configs/cpc_ljspeech.py took 82 CPU-minutes instead of 121 (docs/qa_asr.md).

Encoder and head train on the training clips less a held-out `val_fraction`; held-out CER is
measured every `eval_every` steps (0: each epoch) and the test split is scored once with the
weights of the lowest (`best_step.py`). For the first `freeze_steps` steps only the head
trains (wav2vec 2.0's `freeze_finetune_updates`, Baevski et al. 2020, which keeps the
encoder frozen for 10k of 13k updates on its smallest labelled sets): the head learns to
read the features before its first, arbitrary gradients reach the encoder, and those steps
skip the encoder's backward pass.

Shape suffixes: B = batch, F = frames, D = width, V = 1 + alphabet, S = transcript length.
"""
from collections.abc import Callable, Sequence
import dataclasses
import functools
import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp
import jiwer
import numpy as np
import optax

from sslax import errors
from sslax.data.builders import asr as asr_data
from sslax.evaluators import best_step
from sslax.evaluators import fine_tune

BLANK = 0
VOCAB = BLANK + 1 + len(asr_data.ALPHABET)
NUM_SAMPLES = 5   # transcripts shown next to the truth in the report
# Training batches are sorted by length within pools of this many batches, then the pool's
# batches are shuffled: 8 (64 clips at batch 8) keeps ~73% of the padded frames' cost on
# LJSpeech's lengths (a simulation over 50 epochs: 1 batch 95%, 4 77%, a whole epoch 70%)
# while a clip's batch-mates still change every epoch.
POOL_BATCHES = 8


@dataclasses.dataclass(frozen=True)
class Frames:
  """The front end's framing (config.audio.n_fft, hop) and the batches' cut (`length_buckets`,
  0: never cut), enough to know which samples a clip's real frames read."""
  n_fft: int
  hop: int
  buckets: int = 0

  def real(self, audio_len_N: np.ndarray) -> np.ndarray:
    """Real frames per clip, as `augment.audio.frame_mask` counts them (centre inside the
    clip; at least one)."""
    centre = np.asarray(audio_len_N, np.int64) - self.n_fft // 2
    return np.maximum(1, -(-centre // self.hop))

  def cut(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`batch` with its audio cut to the whole frames the longest clip needs, rounded up
    to the bucket size; unchanged when that is all of it (or buckets is 0)."""
    if self.buckets <= 0:
      return batch
    total = 1 + (batch['audio'].shape[-1] - self.n_fft) // self.hop
    unit = -(-total // self.buckets)
    frames = min(total, -(-int(self.real(batch['audio_len']).max()) // unit) * unit)
    if frames == total:
      return batch
    return {**batch, 'audio': batch['audio'][:, :self.n_fft + (frames - 1) * self.hop]}


def length_sorted_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                        pool_batches: int = POOL_BATCHES):
  """Index batches of fixed size: pools of `pool_batches` batches from
  `fine_tune.batch_order`'s stream of per-epoch permutations, each sorted by length, cut into
  batches, which are yielded in random order."""
  for pool in fine_tune.batch_order(len(lengths), batch_size * pool_batches, rng):
    batches = pool[np.argsort(lengths[pool], kind='stable')].reshape(pool_batches, batch_size)
    yield from batches[rng.permutation(pool_batches)]


def encode(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
  """(labels [N, S] int32, paddings [N, S] float32: 1 past each transcript's end)."""
  length = max(len(t) for t in texts)
  labels = np.zeros((len(texts), length), np.int32)
  for i, t in enumerate(texts):
    labels[i, :len(t)] = [1 + asr_data.ALPHABET.index(c) for c in t]
  paddings = (np.arange(length)[None] >= np.array([len(t) for t in texts])[:, None])
  return labels, paddings.astype(np.float32)


def greedy_decode(logits_BxFxV: np.ndarray, mask_BxF: np.ndarray) -> list[str]:
  """Best label per real frame, repeats collapsed, then blanks dropped."""
  out = []
  for best_F, mask_F in zip(np.asarray(logits_BxFxV).argmax(-1), np.asarray(mask_BxF)):
    best_F = best_F[mask_F.astype(bool)]
    keep = np.ones(len(best_F), bool)
    keep[1:] = best_F[1:] != best_F[:-1]
    out.append(''.join(asr_data.ALPHABET[i - 1] for i in best_F[keep] if i != BLANK))
  return out


def frame_logits(variables: Any, model_state: Any, batch: dict[str, jax.Array],
                 embed_sequence: Callable) -> tuple[jax.Array, jax.Array]:
  """(logits [B, F, V] float32, real-frame mask [B, F])."""
  h_BxFxD, mask_BxF = embed_sequence(variables['encoder'], model_state, batch)
  head = variables['head']
  return h_BxFxD.astype(jnp.float32) @ head['w_DxV'] + head['b_V'], mask_BxF


def ctc_loss(logits_BxFxV: jax.Array, mask_BxF: jax.Array, labels_BxS: jax.Array,
             paddings_BxS: jax.Array) -> jax.Array:
  """CTC negative log-likelihood per character of the batch."""
  per_clip_B = optax.ctc_loss(logits_BxFxV, 1.0 - mask_BxF.astype(jnp.float32), labels_BxS,
                              paddings_BxS, blank_id=BLANK)
  return per_clip_B.sum() / jnp.maximum((1.0 - paddings_BxS).sum(), 1.0)


@functools.lru_cache(maxsize=8)
def _compiled(embed_sequence: Callable, learning_rate: float, weight_decay: float, steps: int,
              warmup_steps: int, freeze_steps: int):
  """(optimiser, jitted step, jitted logits), shared by the encoders of a run.

  step(..., frozen) with `frozen` static: the head's gradient alone (the encoder's is zero,
  so XLA drops its backward), and the encoder's learning rate is 0 for the first
  `freeze_steps` steps, so AdamW's weight decay leaves it unchanged too."""
  head_lr = fine_tune.schedule(learning_rate, steps, warmup_steps)
  encoder_lr = head_lr
  if freeze_steps:
    encoder_lr = lambda t: jnp.where(t < freeze_steps, 0.0,  # noqa: E731
                                     head_lr(t) if callable(head_lr) else head_lr)
  tx = optax.multi_transform(
      {'encoder': optax.adamw(encoder_lr, weight_decay=weight_decay),
       'head': optax.adamw(head_lr, weight_decay=weight_decay)},
      {'encoder': 'encoder', 'head': 'head'})

  def loss_fn(variables, model_state, batch, frozen):
    if frozen:
      variables = {**variables, 'encoder': jax.lax.stop_gradient(variables['encoder'])}
    logits, mask = frame_logits(variables, model_state, batch, embed_sequence)
    return ctc_loss(logits, mask, batch['labels'], batch['paddings'])

  @functools.partial(jax.jit, static_argnums=4)
  def step(variables, opt_state, model_state, batch, frozen):
    loss, grads = jax.value_and_grad(loss_fn)(variables, model_state, batch, frozen)
    updates, opt_state = tx.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state, loss

  return tx, step, jax.jit(lambda v, s, b: frame_logits(v, s, b, embed_sequence))


def transcribe(logits_fn, variables, model_state, audio: dict[str, np.ndarray],
               batch_size: int, frames: Frames | None = None) -> list[str]:
  """Greedy transcripts of every clip, in order; batches of clips sorted by length, each cut
  by `frames` (when given)."""
  n = len(audio['audio'])
  order = (np.argsort(audio['audio_len'], kind='stable') if frames and frames.buckets
           else np.arange(n))
  out = [''] * n
  for lo in range(0, n, batch_size):
    idx = order[np.minimum(np.arange(lo, lo + batch_size), n - 1)]   # fixed batch size
    batch = {k: v[idx] for k, v in audio.items()}
    logits, mask = logits_fn(variables, model_state, frames.cut(batch) if frames else batch)
    for i, text in zip(idx[:min(batch_size, n - lo)], greedy_decode(logits, mask)):
      out[i] = text
  return out


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
  """{'wer', 'cer'} over the whole split (errors summed over clips / reference length)."""
  return {'wer': float(jiwer.wer(list(references), list(hypotheses))),
          'cer': float(jiwer.cer(list(references), list(hypotheses)))}


def evaluate(embed_sequence: Callable, params: Any, model_state: Any,
             train: dict[str, np.ndarray], train_text: Sequence[str],
             test: dict[str, np.ndarray], test_text: Sequence[str], *, epochs: float,
             batch_size: int, learning_rate: float, weight_decay: float = 0.0,
             warmup_steps: int = 0, freeze_steps: int = 0, val_fraction: float = 0.1,
             eval_every: int = 0, seed: int = 0, frames: Frames | None = None,
             progress: str = '',
             key: str = 'config.evals.asr') -> tuple[dict[str, float], list[dict[str, str]]]:
  """Fine-tunes `params` + a CTC head on `train` ('audio', 'audio_len' and transcripts);
  ({'wer', 'cer', 'val_cer', 'best_step'} on `test` at the best held-out step, samples).
  `frames` (with buckets > 0): length-sorted batches cut to their longest clip. `progress`:
  a progress bar's description ('': none). `key`: the evaluator's config key, which errors
  name."""
  # sequence_tasks.check refuses these config values before training: here they are a
  # caller's bug, not a user's setting.
  if not epochs > 0 or not 0 < val_fraction < 1:
    raise ValueError(f'asr needs epochs > 0 and val_fraction in (0, 1); got {epochs}, '
                     f'{val_fraction}.')
  order = np.random.default_rng(seed).permutation(len(train_text))
  num_val = max(1, int(round(val_fraction * len(train_text))))
  val_idx, fit_idx = np.sort(order[:num_val]), np.sort(order[num_val:])
  audio_keys = ('audio', 'audio_len')
  fit = {k: train[k][fit_idx] for k in audio_keys}
  fit['labels'], fit['paddings'] = encode([train_text[i] for i in fit_idx])
  val = {k: train[k][val_idx] for k in audio_keys}
  val_text = [train_text[i] for i in val_idx]
  per_epoch = math.ceil(len(fit_idx) / batch_size)
  steps = max(1, math.ceil(epochs * per_epoch))
  for name, value in (('warmup_steps', warmup_steps), ('freeze_steps', freeze_steps)):
    if not 0 <= value < steps:
      # Known only now (the steps follow from the data): a setting the user can change.
      raise errors.ConfigError(
          f'{key}.{name}={value} must be in [0, {steps}) (the steps of {epochs} epochs of '
          f'{len(fit_idx)} clips at batch {batch_size}); lower it.')
  tx, step, logits_fn = _compiled(embed_sequence, learning_rate, weight_decay, steps,
                                  warmup_steps, freeze_steps)
  feat_dim = jax.eval_shape(embed_sequence, params, model_state,
                            {k: v[:1] for k, v in fit.items()})[0].shape[-1]
  variables = {'encoder': params, 'head': {'w_DxV': jnp.zeros((feat_dim, VOCAB), jnp.float32),
                                           'b_V': jnp.zeros((VOCAB,), jnp.float32)}}
  run = functools.partial(transcribe, logits_fn, batch_size=batch_size, frames=frames)
  validate = lambda v: -error_rates(val_text, run(v, model_state, val))['cer']
  taken = itertools.count()   # steps taken so far: the first freeze_steps train the head only
  cut = frames.cut if frames else (lambda b: b)
  order = None
  if frames and frames.buckets:
    order = length_sorted_order(frames.real(fit['audio_len']), batch_size,
                                np.random.default_rng(seed))
  best, best_t, neg_cer, _ = best_step.train(
      lambda v, o, b: step(v, o, model_state, cut(b), next(taken) < freeze_steps), variables,
      tx.init(variables), fit,
      batch_size=batch_size, steps=steps, every=eval_every or per_epoch, validate=validate,
      seed=seed, order=order, progress=progress)
  hypotheses = run(best, model_state, {k: test[k] for k in audio_keys})
  samples = [{'reference': r, 'predicted': h}
             for r, h in zip(test_text[:NUM_SAMPLES], hypotheses)]
  return ({**error_rates(test_text, hypotheses), 'val_cer': -neg_cer,
           'best_step': float(best_t)}, samples)
