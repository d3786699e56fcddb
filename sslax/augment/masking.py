"""Masking for masked-prediction pretext tasks, on device, one key per example.

Patch masking (MAE; He et al. 2021, sec. 3): each example keeps a uniformly random subset
of its patches; the encoder sees only those (`random_patch_mask`).

Token masking (BERT; Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding", section 3.1 and appendix A.1): a fixed fraction of
each sequence's real tokens is chosen for prediction; of those, 80% become [MASK], 10% a
random token and 10% stay unchanged. As in BERT's data generator, the count per sequence
is exact (round(fraction * real tokens), at least one, at most `max_predictions`) and the
chosen positions are returned as a fixed-size list, so the loss can gather those positions
and project only them onto the vocabulary.

Span masking (SpanBERT; Joshi et al. 2020, "SpanBERT: Improving Pre-training by Representing
and Predicting Spans", section 3.1), an option: the same budget is filled with contiguous
spans of geometric length instead of single tokens, so a masked word cannot be read off its
unmasked neighbours.

Example n of a global batch draws from `fold_in(key, n)`, so masks do not depend on how the
batch is split over devices (DESIGN.md, "Randomness").

Shape suffixes: B = batch, L = sequence length, P = max_predictions.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from sslax import errors


class TokenMask(NamedTuple):
  inputs_BxL: jax.Array      # tokens with the chosen positions replaced (80/10/10)
  positions_BxP: jax.Array   # int32 indices into L of the chosen positions (padded with 0)
  targets_BxP: jax.Array     # int32 original tokens at those positions
  weights_BxP: jax.Array     # float32 1 for a real prediction, 0 for padding of the list


def _num_select(candidate_L: jax.Array, mask_prob: float, max_predictions: int) -> jax.Array:
  """round(mask_prob * real tokens), at least one (if any), at most max_predictions."""
  num_candidates = candidate_L.sum()
  return jnp.clip(jnp.round(mask_prob * num_candidates).astype(jnp.int32),
                  jnp.minimum(num_candidates, 1), max_predictions)


def _corrupt(key: jax.Array, tokens_L: jax.Array, positions_P: jax.Array, weights_P: jax.Array,
             u_P: jax.Array, *, num_special: int, vocab_size: int, mask_id: int,
             replace_prob: float, random_prob: float) -> TokenMask:
  """Applies 80/10/10 (by the uniforms `u_P`) at the chosen positions; the TokenMask."""
  max_predictions = positions_P.shape[0]
  targets_P = tokens_L[positions_P]
  random_P = jax.random.randint(key, (max_predictions,), num_special, vocab_size)
  new_P = jnp.where(u_P < replace_prob, mask_id,
                    jnp.where(u_P < replace_prob + random_prob, random_P, targets_P))
  # Unused list slots write the original token back, so they change nothing.
  inputs_L = tokens_L.at[positions_P].set(jnp.where(weights_P, new_P, targets_P))
  return TokenMask(inputs_L, positions_P.astype(jnp.int32), targets_P.astype(jnp.int32),
                   weights_P.astype(jnp.float32))


def _mask_one(key: jax.Array, tokens_L: jax.Array, *, num_special: int, vocab_size: int,
              mask_id: int, mask_prob: float, max_predictions: int, replace_prob: float,
              random_prob: float) -> TokenMask:
  select_key, action_key, random_key = jax.random.split(key, 3)
  length = tokens_L.shape[0]
  # Special tokens (PAD, CLS, SEP, ...) are never chosen: only ids >= num_special.
  candidate_L = tokens_L >= num_special
  num_select = _num_select(candidate_L, mask_prob, max_predictions)
  # A uniformly random subset of exactly num_select candidates: the lowest random scores.
  score_L = jnp.where(candidate_L, jax.random.uniform(select_key, (length,)), 2.0)
  _, positions_P = jax.lax.top_k(-score_L, max_predictions)
  weights_P = jnp.arange(max_predictions) < num_select
  u_P = jax.random.uniform(action_key, (max_predictions,))
  return _corrupt(random_key, tokens_L, positions_P, weights_P, u_P, num_special=num_special,
                  vocab_size=vocab_size, mask_id=mask_id, replace_prob=replace_prob,
                  random_prob=random_prob)


def _span_mask_one(key: jax.Array, tokens_L: jax.Array, *, num_special: int, vocab_size: int,
                   mask_id: int, mask_prob: float, max_predictions: int, replace_prob: float,
                   random_prob: float, span_p: float, span_max: int) -> TokenMask:
  """SpanBERT's selection: spans until the budget is met, then 80/10/10 per span."""
  span_key, action_key, random_key = jax.random.split(key, 3)
  length = tokens_L.shape[0]
  idx_L = jnp.arange(length)
  candidate_L = tokens_L >= num_special
  num_select = _num_select(candidate_L, mask_prob, max_predictions)
  # Spans never cross a special token: positions i and j are in one segment iff no
  # non-candidate lies between them, i.e. equal counts of non-candidates up to each.
  segment_L = jnp.cumsum(~candidate_L)

  def add_span(i, carry):
    selected_L, span_id_L = carry
    start_key, length_key = jax.random.split(jax.random.fold_in(span_key, i))
    # Clipped geometric length (SpanBERT: p=0.2, at most 10 tokens; mean 3.8).
    u = jax.random.uniform(length_key, minval=jnp.finfo(jnp.float32).tiny)
    span_len = jnp.minimum(1 + jnp.floor(jnp.log(u) / jnp.log1p(-span_p)), span_max)
    # The start: uniform over candidates not chosen yet, so every span adds >= 1 token and
    # at most max_predictions spans always meet the budget exactly.
    free_L = candidate_L & ~selected_L
    start = jnp.argmax(jnp.where(free_L, jax.random.uniform(start_key, (length,)), -1.0))
    in_span_L = ((idx_L >= start) & (idx_L < start + span_len) & candidate_L
                 & (segment_L == segment_L[start]))
    new_L = in_span_L & ~selected_L
    remaining = num_select - selected_L.sum()
    new_L = new_L & (jnp.cumsum(new_L) <= remaining)   # the last span is cut to the budget
    return selected_L | new_L, jnp.where(new_L, i, span_id_L)

  selected_L, span_id_L = jax.lax.fori_loop(
      0, max_predictions, add_span,
      (jnp.zeros(length, bool), jnp.zeros(length, jnp.int32)))
  # The selected positions in increasing order, then padding slots (weight 0).
  _, positions_P = jax.lax.top_k(jnp.where(selected_L, length - idx_L, 0), max_predictions)
  weights_P = jnp.arange(max_predictions) < num_select
  # One 80/10/10 decision per span: a span is masked, replaced or kept as a whole.
  u_S = jax.random.uniform(action_key, (max_predictions,))
  u_P = u_S[span_id_L[positions_P]]
  return _corrupt(random_key, tokens_L, positions_P, weights_P, u_P, num_special=num_special,
                  vocab_size=vocab_size, mask_id=mask_id, replace_prob=replace_prob,
                  random_prob=random_prob)


def bert_mask(key: jax.Array, tokens_BxL: jax.Array, *, num_special: int, vocab_size: int,
              mask_id: int, max_predictions: int, mask_prob: float = 0.15,
              replace_prob: float = 0.8, random_prob: float = 0.1, span_p: float = 0.0,
              span_max: int = 10) -> TokenMask:
  """BERT's masked-LM corruption of a (global) batch of token ids.

  Args:
    key: the step key; example n uses fold_in(key, n).
    tokens_BxL: int token ids; ids below `num_special` (PAD, MASK, CLS, ...) are never chosen.
    num_special: number of special ids (they are 0..num_special-1).
    vocab_size: random replacements are drawn from [num_special, vocab_size).
    mask_id: the [MASK] id.
    max_predictions: P, the most positions chosen per sequence (the list's fixed size).
    mask_prob: fraction of a sequence's real tokens chosen (0.15 in BERT).
    replace_prob, random_prob: of the chosen, the fraction set to [MASK] and to a random
      token (0.8, 0.1); the rest stay unchanged but are still predicted.
    span_p: 0 chooses single tokens (BERT). > 0 chooses contiguous spans (SpanBERT) with
      lengths ~ Geometric(span_p) clipped at `span_max` (SpanBERT: 0.2 and 10, mean 3.8),
      within runs of real tokens, until the same budget is met; 80/10/10 is then drawn
      once per span.
    span_max: the longest span.

  Returns:
    TokenMask with inputs [B, L] and positions / targets / weights [B, P].
  """
  if max_predictions > tokens_BxL.shape[1]:
    raise errors.ConfigError(f'max_predictions={max_predictions} exceeds the sequence length '
                             f'{tokens_BxL.shape[1]}; lower config.mlm.max_predictions.')
  if not 0.0 <= span_p < 1.0 or span_max < 1:
    raise errors.ConfigError(f'span_p={span_p} must be in [0, 1) and span_max={span_max} >= 1; set '
                             'config.mlm.span_p (0: token masking) and config.mlm.span_max.')
  keys_B = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
      key, jnp.arange(tokens_BxL.shape[0]))
  kwargs = dict(num_special=num_special, vocab_size=vocab_size, mask_id=mask_id,
                mask_prob=mask_prob, max_predictions=max_predictions, replace_prob=replace_prob,
                random_prob=random_prob)
  if span_p > 0:
    one = functools.partial(_span_mask_one, span_p=span_p, span_max=span_max, **kwargs)
  else:
    one = functools.partial(_mask_one, **kwargs)
  return jax.vmap(one)(keys_B, tokens_BxL)


def num_kept(num_patches: int, mask_ratio: float) -> int:
  """Visible patches per example at `mask_ratio` (at least one)."""
  if not 0.0 <= mask_ratio < 1.0:
    raise errors.ConfigError(
        f'config.mae.mask_ratio={mask_ratio} must be in [0, 1) (MAE uses 0.75).')
  return max(1, int(round(num_patches * (1.0 - mask_ratio))))


def random_patch_mask(key: jax.Array, batch_size: int, num_patches: int,
                      mask_ratio: float) -> tuple[jax.Array, jax.Array]:
  """MAE's per-example uniform random masking (He et al. 2021, sec. 3).

  Returns:
    keep_BxK: int32 indices of the K visible patches of each example, ascending.
    mask_BxL: float32, 1 where the patch is masked (hidden from the encoder), 0 where visible.
  """
  k = num_kept(num_patches, mask_ratio)
  def one(i):
    noise_L = jax.random.uniform(jax.random.fold_in(key, i), (num_patches,))
    # The K patches with the smallest noise are kept: a uniform random subset.
    return jnp.sort(jnp.argsort(noise_L)[:k]).astype(jnp.int32)
  keep_BxK = jax.vmap(one)(jnp.arange(batch_size))
  mask_BxL = jnp.ones((batch_size, num_patches), jnp.float32)
  mask_BxL = jax.vmap(lambda m, idx: m.at[idx].set(0.0))(mask_BxL, keep_BxK)
  return keep_BxK, mask_BxL


def frame_span_mask(key: jax.Array, valid_BxF: jax.Array, *, start_prob: float,
                    span: int) -> jax.Array:
  """Spans of frames to hide, as in wav2vec 2.0 (Baevski et al. 2020, section 3.1): every
  real frame starts a span of `span` frames with probability `start_prob` (spans may
  overlap), and at least one span per example is drawn so no example goes unused.

  Args:
    key: the step key; example n uses fold_in(key, n).
    valid_BxF: [B, F] true for real frames; padded frames are never masked.
    start_prob: probability that a frame starts a span.
    span: frames per span.

  Returns:
    [B, F] bool, true where a frame is hidden (and is a target).
  """
  frames = valid_BxF.shape[1]

  def one(k, valid_F):
    start_key, fallback_key = jax.random.split(k)
    starts_F = (jax.random.uniform(start_key, (frames,)) < start_prob) & valid_F
    fallback = jax.random.randint(fallback_key, (), 0, jnp.maximum(valid_F.sum(), 1))
    starts_F = starts_F | ((jnp.arange(frames) == fallback) & ~starts_F.any())
    # Frame f is hidden when a span started at one of f - span + 1 .. f.
    covered_F = jnp.convolve(starts_F.astype(jnp.float32), jnp.ones(span), mode='full')[:frames]
    return (covered_F > 0) & valid_F

  keys_B = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(valid_BxF.shape[0]))
  return jax.vmap(one)(keys_B, valid_BxF)
