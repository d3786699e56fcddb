"""Masking for masked-prediction pretext tasks, on device, one key per example.

Token masking (BERT; Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding", section 3.1 and appendix A.1): a fixed fraction of
each sequence's real tokens is chosen for prediction; of those, 80% become [MASK], 10% a
random token and 10% stay unchanged. As in BERT's data generator, the count per sequence
is exact (round(fraction * real tokens), at least one, at most `max_predictions`) and the
chosen positions are returned as a fixed-size list, so the loss can gather those positions
and project only them onto the vocabulary.

Example n of a global batch draws from `fold_in(key, n)`, so masks do not depend on how the
batch is split over devices (DESIGN.md, "Randomness").

Shape suffixes: B = batch, L = sequence length, P = max_predictions.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp


class TokenMask(NamedTuple):
  inputs_BxL: jax.Array      # tokens with the chosen positions replaced (80/10/10)
  positions_BxP: jax.Array   # int32 indices into L of the chosen positions (padded with 0)
  targets_BxP: jax.Array     # int32 original tokens at those positions
  weights_BxP: jax.Array     # float32 1 for a real prediction, 0 for padding of the list


def _mask_one(key: jax.Array, tokens_L: jax.Array, *, num_special: int, vocab_size: int,
              mask_id: int, mask_prob: float, max_predictions: int, replace_prob: float,
              random_prob: float) -> TokenMask:
  select_key, action_key, random_key = jax.random.split(key, 3)
  length = tokens_L.shape[0]
  # Special tokens (PAD, CLS, SEP, ...) are never chosen: only ids >= num_special.
  candidate_L = tokens_L >= num_special
  num_candidates = candidate_L.sum()
  num_select = jnp.clip(jnp.round(mask_prob * num_candidates).astype(jnp.int32),
                        jnp.minimum(num_candidates, 1), max_predictions)
  # A uniformly random subset of exactly num_select candidates: the lowest random scores.
  score_L = jnp.where(candidate_L, jax.random.uniform(select_key, (length,)), 2.0)
  _, positions_P = jax.lax.top_k(-score_L, max_predictions)
  weights_P = jnp.arange(max_predictions) < num_select
  targets_P = tokens_L[positions_P]
  u_P = jax.random.uniform(action_key, (max_predictions,))
  random_P = jax.random.randint(random_key, (max_predictions,), num_special, vocab_size)
  new_P = jnp.where(u_P < replace_prob, mask_id,
                    jnp.where(u_P < replace_prob + random_prob, random_P, targets_P))
  # Unused list slots write the original token back, so they change nothing.
  inputs_L = tokens_L.at[positions_P].set(jnp.where(weights_P, new_P, targets_P))
  return TokenMask(inputs_L, positions_P.astype(jnp.int32), targets_P.astype(jnp.int32),
                   weights_P.astype(jnp.float32))


def bert_mask(key: jax.Array, tokens_BxL: jax.Array, *, num_special: int, vocab_size: int,
              mask_id: int, max_predictions: int, mask_prob: float = 0.15,
              replace_prob: float = 0.8, random_prob: float = 0.1) -> TokenMask:
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

  Returns:
    TokenMask with inputs [B, L] and positions / targets / weights [B, P].
  """
  if max_predictions > tokens_BxL.shape[1]:
    raise ValueError(f'max_predictions={max_predictions} exceeds the sequence length '
                     f'{tokens_BxL.shape[1]}; lower config.mlm.max_predictions.')
  keys_B = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
      key, jnp.arange(tokens_BxL.shape[0]))
  return jax.vmap(lambda k, t: _mask_one(
      k, t, num_special=num_special, vocab_size=vocab_size, mask_id=mask_id,
      mask_prob=mask_prob, max_predictions=max_predictions, replace_prob=replace_prob,
      random_prob=random_prob))(keys_B, tokens_BxL)


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
