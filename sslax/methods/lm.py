"""Next-token prediction (GPT; Radford et al. 2018, "Improving Language Understanding by
Generative Pre-Training", and 2019, "Language Models are Unsupervised Multitask Learners").

A causal transformer reads each sequence once and predicts token t+1 from tokens <= t at
every position; PAD targets are ignored. The evaluators use the mean of the final hidden
states over non-PAD tokens (a causal model's last state is the usual alternative).
"""
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax import methods
from sslax import models
from sslax.data import tokenizers
from sslax.methods import mlm
from sslax.models import text


def make(config: ml_collections.ConfigDict) -> methods.Method:
  tokenizer = tokenizers.make(config.data)
  model = models.make_encoder(config.model, vocab_size=tokenizer.vocab_size, causal=True)

  def init(rng, batch):
    mlm.check_tokens(config, batch)
    return model.init(rng, batch['tokens'][:1])['params'], {}, {}

  def loss(params, model_state, extra, batch, rng):
    del extra, rng   # deterministic: no corruption, no dropout
    tokens_BxL = batch['tokens']
    h_BxLxD = model.apply({'params': params}, tokens_BxL)
    logits_BxLxV = model.apply({'params': params}, h_BxLxD, method=text.Transformer.logits)
    valid_BxL = tokens_BxL != tokenizer.PAD
    value = losses.next_token_xent(logits_BxLxV, tokens_BxL, valid_BxL)
    metrics = {
        'next_token_accuracy': losses.token_accuracy(
            logits_BxLxV[:, :-1], tokens_BxL[:, 1:], valid_BxL[:, 1:]),
        'perplexity': jnp.exp(value),
    }
    return value, (model_state, metrics)

  embed, embed_sequence = mlm.token_features(model)
  return methods.Method(init=init, loss=loss, update_extra=methods.no_extra, embed=embed,
                        embed_sequence=embed_sequence)
