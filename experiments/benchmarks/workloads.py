"""The benchmark workloads: a config (sslax's own, resized) and a synthetic batch each.

  simclr_resnet18  SimCLR, CIFAR-stem ResNet-18 (64-128-256-512, 2-2-2-2 basic blocks),
                   32x32 images, two views per image, projector 512 -> 128, NT-Xent.
  byol_resnet18    BYOL (configs/byol_images.py's heads: projector 512 -> 512 -> 128 and
                   predictor 128 -> 512 -> 128, BatchNorm) on the same ResNet-18 and views;
                   EMA target encoder + projector.
  mocov3_resnet18  MoCo v3 (configs/mocov3_images.py: the same heads as BYOL, temperature
                   0.2) on the same ResNet-18; EMA momentum encoder, symmetric InfoNCE.
  dino_resnet18    DINO (configs/dino_images.py: 2 global 32x32 + 4 local 16x16 crops, head
                   512 -> 512 -> 128 -> 4096, no BatchNorm) on the same ResNet-18; EMA teacher.
  mae_vits4        MAE, ViT-S/4 (width 384, depth 12, 6 heads) on 32x32 (64 patches),
                   75% masking, decoder width 256, depth 4, 8 heads.
  bert_small_mlm   MLM, BERT-small (width 512, depth 4, 8 heads, MLP 2048) at sequence 128,
                   byte tokenizer (vocab 260: the output layer is small next to BERT's 30k).
  cpc_audio_1s     CPC on 1 s of 16 kHz audio: log-mel (25 ms / 10 ms, 40 bins, 101 frames)
                   into configs/cpc_audio.py's conv + transformer encoder, k = 1..4.

Every train step is sslax's own (train.make_train_step of the method's Method), on-device
augmentation included; the batch is random data of the training shape (`--real_data` in
run.py swaps in real records for the headroom check).
"""
import dataclasses
import importlib.util
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sslax import methods
from sslax import optim
from sslax import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NAMES = ('simclr_resnet18', 'byol_resnet18', 'mocov3_resnet18', 'dino_resnet18', 'mae_vits4',
         'bert_small_mlm', 'cpc_audio_1s')
# The CIFAR-stem ResNet-18 workloads (one encoder, the method's own heads).
RESNET18 = ('simclr_resnet18', 'byol_resnet18', 'mocov3_resnet18', 'dino_resnet18')
IMAGE = RESNET18 + ('mae_vits4',)
# (full, quick) batch sizes.
BATCH = {'simclr_resnet18': (32, 8), 'byol_resnet18': (32, 8), 'mocov3_resnet18': (32, 8),
         'dino_resnet18': (32, 8), 'mae_vits4': (64, 16), 'bert_small_mlm': (32, 8),
         'cpc_audio_1s': (32, 8)}
# What one example is, for examples/s: an image (two views), a sequence, a 1 s clip.


def load_config(name: str, arg: str = ''):
  spec = importlib.util.spec_from_file_location(f'bench_{name}',
                                                os.path.join(ROOT, 'configs', f'{name}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def config_for(name: str, batch_size: int, tiny: bool = False):
  """sslax's config for workload `name`; tiny=True shrinks the model (harness tests only)."""
  if name in RESNET18:
    method = name.split('_')[0]
    c = load_config(f'{method}_images')
    c.model.update(stem_width=64, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2))
    if method == 'simclr':
      c.simclr.update(proj_hidden_dims=(512,), proj_dim=128)
    elif method in ('byol', 'mocov3'):
      c[method].update(proj_hidden_dims=(512,), proj_dim=128, pred_hidden_dims=(512,))
    else:   # dino: the config's head (512 hidden, 128 bottleneck, 4096 out) and crops
      c.dino.update(head_hidden_dims=(512,), bottleneck_dim=128, out_dim=4096)
    if tiny:
      c.model.update(stem_width=8, widths=(8, 16), blocks=(1, 1))
      if method == 'simclr':
        c.simclr.update(proj_hidden_dims=(16,), proj_dim=8)
      elif method in ('byol', 'mocov3'):
        c[method].update(proj_hidden_dims=(16,), proj_dim=8, pred_hidden_dims=(16,))
      else:
        c.dino.update(head_hidden_dims=(16,), bottleneck_dim=8, out_dim=32)
  elif name == 'mae_vits4':
    c = load_config('mae_images')
    c.model.update(patch_size=4, width=384, depth=12, num_heads=6, mlp_ratio=4)
    c.mae.update(decoder_width=256, decoder_depth=4, decoder_heads=8)
    if tiny:
      c.model.update(width=16, depth=1, num_heads=2)
      c.mae.update(decoder_width=16, decoder_depth=1, decoder_heads=2)
  elif name == 'bert_small_mlm':
    c = load_config('mlm_text')
    c.data.seq_len = 128
    c.model.update(width=512, depth=4, num_heads=8, mlp_dim=2048, max_len=128)
    if tiny:
      c.model.update(width=16, depth=1, num_heads=2, mlp_dim=32)
  elif name == 'cpc_audio_1s':
    c = load_config('cpc_audio')
    c.data.sample_rate = 16000
    c.data.clip_seconds = 1.0
    c.audio.update(crop_seconds=1.0, n_fft=400, hop=160, fmax=8000.0)
    c.model.update(max_frames=128)
    if tiny:
      c.model.update(width=16, depth=1, num_heads=2, mlp_dim=32)
  else:
    raise ValueError(f'workload {name!r} is unknown; choose one of {NAMES}.')
  c.batch_size = batch_size
  return c


def synthetic_batch(name: str, config) -> dict[str, jax.Array]:
  """Random data of the training batch's shapes and dtypes."""
  b = config.batch_size
  rng = np.random.default_rng(0)
  if name in IMAGE:
    s = config.data.image_size
    return {'image': jnp.asarray(rng.integers(0, 256, (b, s, s, 3)), jnp.uint8),
            'label': jnp.zeros((b,), jnp.int32)}
  if name == 'bert_small_mlm':
    from sslax.data import tokenizers   # pylint: disable=import-outside-toplevel
    tok = tokenizers.make(config.data)
    return {'tokens': jnp.asarray(rng.integers(tok.NUM_SPECIAL, tok.vocab_size,
                                               (b, config.data.seq_len)), jnp.int32)}
  samples = round(config.data.sample_rate * config.data.clip_seconds)
  return {'audio': jnp.asarray(0.1 * rng.standard_normal((b, samples)), jnp.float32),
          'audio_len': jnp.full((b,), samples, jnp.int32),
          'label': jnp.zeros((b,), jnp.int32)}


@dataclasses.dataclass
class Built:
  """What a benchmark needs of a workload: its config, a synthetic batch, the method, the
  optimiser and schedule, and the initial train state."""
  config: Any
  batch: dict[str, jax.Array]
  method: Any
  tx: Any
  lr: Any
  state: Any

  def train_step(self):
    return train.make_train_step(self.method, self.tx, self.lr)


def build(name: str, batch_size: int, tiny: bool = False, conv_impl: str = 'auto') -> Built:
  """Workload `name` ready to time; `conv_impl` sets the ResNet's config.model.conv_impl."""
  config = config_for(name, batch_size, tiny=tiny)
  if config.model.name == 'resnet':
    config.model.conv_impl = conv_impl
  batch = synthetic_batch(name, config)
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)
  state = jax.jit(train.make_init(method, tx, abstract, config.seed))()
  return Built(config, batch, method, tx, lr, state)
