"""Encoders by name, built from `config.model`."""
import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from sslax import errors

ENCODERS = ('resnet', 'transformer', 'vit', 'audio_transformer')


DTYPES = ('float32', 'bfloat16')


def compute_dtype(model_config: ml_collections.ConfigDict) -> jnp.dtype:
  """config.model.dtype: activations and matmuls; parameters and optimiser state stay float32."""
  name = model_config.get('dtype', 'float32')
  if name not in DTYPES:
    raise errors.ConfigError(f'config.model.dtype={name!r} is unknown; choose one of {DTYPES}.')
  return jnp.dtype(name)


def make_encoder(model_config: ml_collections.ConfigDict, **kwargs) -> nn.Module:
  """The encoder `config.model.name` names; `kwargs` are what the data or method decide
  (the transformer's `vocab_size` from the tokenizer, `causal` from the method)."""
  name = model_config.name
  if name == 'audio_transformer':
    from sslax.models import audio
    return audio.from_config(model_config, **kwargs)
  if name == 'transformer':
    from sslax.models import text
    return text.from_config(model_config, **kwargs)
  if name == 'resnet':
    from sslax.models import resnet
    return resnet.ResNet(widths=tuple(model_config.widths), blocks=tuple(model_config.blocks),
                         block=model_config.block, stem=model_config.stem,
                         stem_width=model_config.stem_width, norm=model_config.norm,
                         zero_init_residual=model_config.zero_init_residual,
                         dtype=compute_dtype(model_config),
                         conv_impl=model_config.get('conv_impl', 'auto'))
  if name == 'vit':
    from sslax.models import vit
    return vit.ViT(patch_size=model_config.patch_size, width=model_config.width,
                   depth=model_config.depth, num_heads=model_config.num_heads,
                   mlp_ratio=model_config.mlp_ratio, pool=model_config.pool,
                   pos_emb=model_config.pos_emb, dtype=compute_dtype(model_config),
                   drop_path_rate=model_config.get('drop_path_rate', 0.0))
  raise errors.ConfigError(f'config.model.name={name!r} is unknown; choose one of {ENCODERS}.')
