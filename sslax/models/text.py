"""Transformer over token ids: a bidirectional encoder (BERT) or a causal decoder (GPT).

Both are the same stack of pre-LN blocks (Xiong et al. 2020, "On Layer Normalization in the
Transformer Architecture": LayerNorm before attention and MLP, a final LayerNorm after the
last block), with learned absolute positions (Devlin et al. 2019; Radford et al. 2019);
`causal` only changes the attention mask. The vocabulary projection is a separate method
(`logits`) so a masked-token loss can project just the gathered masked positions, and it
can reuse the input embedding table (`tie_embeddings`, Press & Wolf 2017).

`dtype` (config.model.dtype) is the compute dtype of every layer; parameters stay float32
and the attention softmax runs in float32 (`force_fp32_for_softmax`): bf16 exp/sum over
hundreds of keys loses the small weights.

Shape suffixes: B = batch, L = sequence length, D = width, V = vocabulary, P = positions.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from sslax import errors
from sslax.models import precision

PAD_ID = 0   # every tokenizer in sslax/data/tokenizers.py pads with id 0


def _named(init: nn.initializers.Initializer, *names: str | None):
  """`init` whose parameter carries logical axis names (flax boxes them; the trainer unboxes
  them and maps the names to mesh axes with sharding.LOGICAL_AXIS_RULES)."""
  return nn.with_logical_partitioning(init, names)


class Block(nn.Module):
  """Pre-LN transformer block: x + Attn(LN(x)), then x + MLP(LN(x)).

  Weights carry logical axis names for tensor parallelism (Shoeybi et al. 2019, Megatron-LM):
  the attention heads and the MLP's hidden units ('heads', 'mlp') are split over devices, so
  query/key/value and mlp_in are column-parallel and the attention output and mlp_out are
  row-parallel; 'embed' is the model width (FSDP's dimension).
  """
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32   # compute dtype; parameters stay float32

  @nn.compact
  def __call__(self, x_BxLxD: jnp.ndarray, mask_Bx1xLxL: jnp.ndarray) -> jnp.ndarray:
    kernel, zeros = nn.initializers.lecun_normal(), nn.initializers.zeros_init()
    h_BxLxD = nn.LayerNorm(dtype=self.dtype, name='ln_attn')(x_BxLxD)
    h_BxLxD = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, name='attn', dtype=self.dtype, force_fp32_for_softmax=True,
        kernel_init=_named(kernel, 'embed', 'heads', 'head_dim'),
        bias_init=_named(zeros, 'heads', 'head_dim'),
        out_kernel_init=_named(kernel, 'heads', 'head_dim', 'embed'),
        out_bias_init=_named(zeros, 'embed'))(h_BxLxD, h_BxLxD, mask=mask_Bx1xLxL)
    x_BxLxD = x_BxLxD + h_BxLxD
    h_BxLxD = nn.LayerNorm(dtype=self.dtype, name='ln_mlp')(x_BxLxD)
    h_BxLxF = nn.gelu(nn.Dense(self.mlp_dim, name='mlp_in', dtype=self.dtype,
                               kernel_init=_named(kernel, 'embed', 'mlp'),
                               bias_init=_named(zeros, 'mlp'))(h_BxLxD))
    return x_BxLxD + nn.Dense(x_BxLxD.shape[-1], name='mlp_out', dtype=self.dtype,
                              kernel_init=_named(kernel, 'mlp', 'embed'),
                              bias_init=_named(zeros, 'embed'))(h_BxLxF)


class Transformer(nn.Module):
  """Token ids [B, L] → final hidden states [B, L, D]; `logits` maps [..., D] → [..., V]."""
  vocab_size: int
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  max_len: int
  causal: bool = False
  tie_embeddings: bool = True
  dtype: Any = jnp.float32   # compute dtype (the vocabulary logits too); parameters float32

  def setup(self):
    self.token_embed = nn.Embed(self.vocab_size, self.width, dtype=self.dtype,
                                embedding_init=nn.initializers.normal(0.02))
    self.pos_embed = self.param('pos_embed', nn.initializers.normal(0.02),
                                (self.max_len, self.width))
    self.blocks = [Block(self.num_heads, self.mlp_dim, self.dtype, name=f'block{i}')
                   for i in range(self.depth)]
    self.ln_final = nn.LayerNorm(dtype=self.dtype)
    if not self.tie_embeddings:
      self.out_proj = nn.Dense(self.vocab_size, dtype=self.dtype)

  def __call__(self, tokens_BxL: jnp.ndarray) -> jnp.ndarray:
    """Hidden states [B, L, D] after the final LayerNorm; PAD keys are never attended to."""
    length = tokens_BxL.shape[-1]
    if length > self.max_len:
      raise errors.ConfigError(
          f'sequences of {length} tokens exceed config.model.max_len={self.max_len} learned '
          'positions; raise config.model.max_len or lower config.data.seq_len.')
    # The float32 position table is cast, or it would promote the whole stream to float32.
    x_BxLxD = self.token_embed(tokens_BxL) + self.pos_embed[:length].astype(self.dtype)
    keep_BxL = tokens_BxL != PAD_ID
    mask_Bx1xLxL = nn.make_attention_mask(keep_BxL, keep_BxL)
    if self.causal:
      mask_Bx1xLxL = nn.combine_masks(mask_Bx1xLxL, nn.make_causal_mask(tokens_BxL))
    # A PAD query has no key left; let it attend to itself so no row is empty (its output is
    # never used, but an all-masked softmax row is a waste of numerics care).
    mask_Bx1xLxL = jnp.logical_or(mask_Bx1xLxL, jnp.eye(length, dtype=bool))
    for block in self.blocks:
      x_BxLxD = block(x_BxLxD, mask_Bx1xLxL)
    h_BxLxD = self.ln_final(x_BxLxD)
    if self.is_initializing() and not self.tie_embeddings:
      self.out_proj(h_BxLxD[:, :1])   # init() runs only __call__: create the output layer too
    return h_BxLxD

  def logits(self, h_xD: jnp.ndarray) -> jnp.ndarray:
    """Vocabulary logits [..., V] of hidden states [..., D]."""
    if self.tie_embeddings:
      return self.token_embed.attend(h_xD)
    return self.out_proj(h_xD)


def mean_pool(h_BxLxD: jnp.ndarray, tokens_BxL: jnp.ndarray) -> jnp.ndarray:
  """Mean of the hidden states over non-PAD tokens, [B, D] float32 (zeros for an all-PAD
  row): summed in float32, since a bfloat16 sum over hundreds of tokens loses the mean."""
  keep_BxLx1 = (tokens_BxL != PAD_ID)[..., None].astype(jnp.float32)
  return (h_BxLxD.astype(jnp.float32) * keep_BxLx1).sum(1) / jnp.maximum(keep_BxLx1.sum(1), 1.0)


def from_config(model_config: ml_collections.ConfigDict, *, vocab_size: int,
                causal: bool) -> Transformer:
  """A Transformer sized by `config.model` (width, depth, num_heads, mlp_dim, max_len)."""
  m = model_config
  if m.width % m.num_heads:
    raise errors.ConfigError(
        f'config.model.width={m.width} is not divisible by config.model.num_heads='
        f'{m.num_heads}; pick a head count that divides the width.')
  return Transformer(vocab_size=vocab_size, width=m.width, depth=m.depth,
                     num_heads=m.num_heads, mlp_dim=m.mlp_dim, max_len=m.max_len,
                     causal=causal, tie_embeddings=m.get('tie_embeddings', True),
                     dtype=precision.compute_dtype(m))
