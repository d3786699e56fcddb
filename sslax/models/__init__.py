"""Encoders by name, built from `config.model`."""
import flax.linen as nn
import ml_collections

ENCODERS = ('resnet', 'vit')


def make_encoder(model_config: ml_collections.ConfigDict) -> nn.Module:
  name = model_config.name
  if name == 'resnet':
    from sslax.models import resnet
    return resnet.ResNet(widths=tuple(model_config.widths), blocks=tuple(model_config.blocks),
                         block=model_config.block, stem=model_config.stem,
                         stem_width=model_config.stem_width, norm=model_config.norm,
                         zero_init_residual=model_config.zero_init_residual)
  if name == 'vit':
    from sslax.models import vit
    return vit.ViT(patch_size=model_config.patch_size, width=model_config.width,
                   depth=model_config.depth, num_heads=model_config.num_heads,
                   mlp_ratio=model_config.mlp_ratio, pool=model_config.pool,
                   pos_emb=model_config.pos_emb)
  raise ValueError(f'config.model.name={name!r} is unknown; choose one of {ENCODERS}.')
