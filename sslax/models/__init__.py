"""Encoders by name, built from `config.model`."""
import flax.linen as nn
import ml_collections

from sslax import errors
from sslax.models import audio
from sslax.models import precision
from sslax.models import resnet
from sslax.models import text
from sslax.models import vit

ENCODERS = ('resnet', 'transformer', 'vit', 'audio_transformer')
# Heads and methods read the compute dtype here too (models.compute_dtype(config.model)).
DTYPES, compute_dtype = precision.DTYPES, precision.compute_dtype


def make_encoder(model_config: ml_collections.ConfigDict, **kwargs) -> nn.Module:
  """The encoder `config.model.name` names; `kwargs` are what the data or method decide
  (the transformer's `vocab_size` from the tokenizer, `causal` from the method)."""
  name = model_config.name
  if name == 'audio_transformer':
    return audio.from_config(model_config, **kwargs)
  if name == 'transformer':
    return text.from_config(model_config, **kwargs)
  if name == 'resnet':
    return resnet.ResNet(widths=tuple(model_config.widths), blocks=tuple(model_config.blocks),
                         block=model_config.block, stem=model_config.stem,
                         stem_width=model_config.stem_width, norm=model_config.norm,
                         zero_init_residual=model_config.zero_init_residual,
                         dtype=compute_dtype(model_config),
                         conv_impl=model_config.get('conv_impl', 'auto'))
  if name == 'vit':
    return vit.ViT(patch_size=model_config.patch_size, width=model_config.width,
                   depth=model_config.depth, num_heads=model_config.num_heads,
                   mlp_ratio=model_config.mlp_ratio, pool=model_config.pool,
                   pos_emb=model_config.pos_emb, dtype=compute_dtype(model_config),
                   drop_path_rate=model_config.get('drop_path_rate', 0.0))
  raise errors.ConfigError(f'config.model.name={name!r} is unknown; choose one of {ENCODERS}.')
