"""Masked-token prediction (BERT; Devlin et al. 2019, "BERT: Pre-training of Deep
Bidirectional Transformers for Language Understanding").

Each step corrupts the batch's tokens on device (15% of real tokens chosen, 80% [MASK] /
10% random / 10% unchanged; `augment/masking.py`), runs a bidirectional transformer over the
corrupted sequence and predicts the original tokens at the chosen positions. Only those
P positions per sequence are projected onto the vocabulary, which is cheaper than the full
[B, L, V] projection whenever P < L. The evaluators use the mean of the final hidden states
over non-PAD tokens. `check_tokens` and `token_features` serve lm.py too.
"""
from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from sslax import errors
from sslax import losses
from sslax import methods
from sslax import models
from sslax.augment import masking
from sslax.data import tokenizers
from sslax.models import text


def check_tokens(config: ml_collections.ConfigDict, batch) -> None:
  """Errors a config can cause before init: no tokens, or longer than the model's positions."""
  if 'tokens' not in batch:
    raise errors.ConfigError(
        f'config.method={config.method!r} needs token ids, but config.data.source='
        f'{config.data.source!r} gives {sorted(batch)}; use a text:/tsv: source '
        'with config.data.tokenizer set.')
  if batch['tokens'].shape[-1] > config.model.max_len:
    raise errors.ConfigError(
        f'config.data.seq_len={batch["tokens"].shape[-1]} exceeds '
        f'config.model.max_len={config.model.max_len}; raise config.model.max_len '
        'or lower config.data.seq_len.')


def token_features(model: nn.Module) -> tuple[Callable, Callable]:
  """(embed, embed_sequence) of a text encoder, as mlm and lm both give them: the mean of
  the final hidden states over non-PAD tokens, and those states with the non-PAD mask."""
  def embed(params, model_state, batch):
    del model_state
    h_BxLxD = model.apply({'params': params}, batch['tokens'])
    return text.mean_pool(h_BxLxD, batch['tokens'])

  def embed_sequence(params, model_state, batch):
    del model_state
    return model.apply({'params': params}, batch['tokens']), batch['tokens'] != text.PAD_ID

  return embed, embed_sequence


def make(config: ml_collections.ConfigDict) -> methods.Method:
  tokenizer = tokenizers.make(config.data)
  model = models.make_encoder(config.model, vocab_size=tokenizer.vocab_size, causal=False)
  m = config.mlm

  def init(rng, batch):
    check_tokens(config, batch)
    return model.init(rng, batch['tokens'][:1])['params'], {}, {}

  def loss(params, model_state, extra, batch, rng):
    del extra
    masked = masking.bert_mask(
        rng, batch['tokens'], num_special=tokenizer.NUM_SPECIAL, vocab_size=tokenizer.vocab_size,
        mask_id=tokenizer.MASK, max_predictions=m.max_predictions, mask_prob=m.mask_prob,
        replace_prob=m.replace_prob, random_prob=m.random_prob, span_p=m.get('span_p', 0.0),
        span_max=m.get('span_max', 10))
    h_BxLxD = model.apply({'params': params}, masked.inputs_BxL)
    h_BxPxD = jnp.take_along_axis(h_BxLxD, masked.positions_BxP[..., None], axis=1)
    logits_BxPxV = model.apply({'params': params}, h_BxPxD, method=text.Transformer.logits)
    value = losses.masked_token_xent(logits_BxPxV, masked.targets_BxP, masked.weights_BxP)
    metrics = {
        'masked_token_accuracy': losses.token_accuracy(logits_BxPxV, masked.targets_BxP,
                                                       masked.weights_BxP),
        'perplexity': jnp.exp(value),
        'masked_fraction': masked.weights_BxP.sum() / jnp.maximum(
            (batch['tokens'] >= tokenizer.NUM_SPECIAL).sum(), 1),
    }
    return value, (model_state, metrics)

  embed, embed_sequence = token_features(model)
  return methods.Method(init=init, loss=loss, update_extra=methods.no_extra, embed=embed,
                        embed_sequence=embed_sequence)
