"""Self-supervised losses as pure functions of arrays; callers use them as `losses.<name>`.

Every function here takes plain (possibly sharded, global) `jax.Array`s, holds no state and
reads no config. Under `jax.jit` a global array sharded over the batch axis is still one
logical array, so a loss that mixes examples (InfoNCE's negatives) sees the whole global batch
on every device count; XLA inserts the collectives.

Shape suffixes: N = examples per view, D = embedding width.

One module per family, each loss defined once:
  contrastive.py  SimCLR's NT-Xent / InfoNCE, its logits and accuracy
  vision.py       BYOL, MoCo v3, VICReg, Barlow Twins, DINO; MAE's patch normalisation
  tokens.py       masked- and next-token cross-entropy, token accuracy
  frames.py       masked MSE, next-frame regression (APC) and InfoNCE (CPC)
  chunked.py      the contrastive ones under shard_map, [n, N] logits per device
  numerics.py     what they share: compute dtype, masked-logit value, l2_normalize
"""
from sslax.losses.chunked import (info_nce_chunked, moco_v3_loss_chunked,
                                  next_frame_contrastive_chunked, nt_xent_chunked)
from sslax.losses.contrastive import contrastive_accuracy, info_nce, nt_xent_logits
from sslax.losses.frames import (masked_mse, next_frame_contrastive, next_frame_contrastive_logits,
                                 next_frame_regression)
from sslax.losses.numerics import l2_normalize
from sslax.losses.tokens import masked_token_xent, next_token_xent, token_accuracy
from sslax.losses.vision import (barlow_twins_loss, dino_loss, moco_v3_loss, normalize_patches,
                                 normalized_mse, vicreg_loss)

__all__ = [
    'barlow_twins_loss', 'contrastive_accuracy', 'dino_loss', 'info_nce', 'info_nce_chunked',
    'l2_normalize', 'masked_mse', 'masked_token_xent', 'moco_v3_loss', 'moco_v3_loss_chunked',
    'next_frame_contrastive', 'next_frame_contrastive_chunked', 'next_frame_contrastive_logits',
    'next_frame_regression', 'next_token_xent', 'normalize_patches', 'normalized_mse',
    'nt_xent_chunked', 'nt_xent_logits', 'token_accuracy', 'vicreg_loss',
]
