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


def num_kept(num_patches: int, mask_ratio: float) -> int:
  """Visible patches per example at `mask_ratio` (at least one)."""
  if not 0.0 <= mask_ratio < 1.0:
    raise ValueError(f'config.mae.mask_ratio={mask_ratio} must be in [0, 1) (MAE uses 0.75).')
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
