"""Next-frame prediction on video (APC-style regression, Chung et al. 2019, applied to frames):
Moving-MNIST clips are made on device from the batch's digit images (`augment/video.py`),
each frame is flattened to a vector, a causal frame encoder (the conv + transformer of
`models/audio.py`, whose "mel bins" are here pixels) reads frames <= t and a linear head
predicts frame t + k (or, with `video.residual`, its difference from frame t); MSE over
pixels (`losses.next_frame_regression`, distance 'l2').

`copy_last_mse` (predict frame t + k = frame t) is logged beside the loss as the baseline to
beat; `experiments/video_heldout.py` scores both on clips of a held-out split. The evaluators embed a clip of each
digit (fixed key) as the mean of the contextual features over frames: digit identity.
"""
import jax
import jax.numpy as jnp
import ml_collections

from sslax import errors
from sslax import losses
from sslax import methods
from sslax import models
from sslax.augment import video
from sslax.models import audio as audio_models

# Clips for the evaluators come from one fixed key, so a digit's features never vary.
_EMBED_SEED = 0


def make(config: ml_collections.ConfigDict) -> methods.Method:
  v = config.video
  k = int(v.steps_ahead)
  model = audio_models.WithHeads(models.make_encoder(config.model, causal=True),
                                 out_dim=v.canvas * v.canvas, num_outputs=1,
                                 zero_init=bool(v.get('residual', False)))

  def clips(key, images):
    if images.ndim == 4:
      images = images[..., 0]   # [B, H, W, 1] → [B, H, W]: one grey digit per clip
    c = video.moving_digits(key, images, num_frames=v.num_frames, canvas=v.canvas,
                            speed=v.speed)
    return c.reshape(*c.shape[:2], -1), jnp.ones(c.shape[:2], bool)

  def init(rng, batch):
    if 'image' not in batch:
      raise errors.ConfigError(f'config.method={config.method!r} needs digit images, but '
                               f'config.data.source={config.data.source!r} gives {sorted(batch)}.')
    x, mask = clips(jax.random.PRNGKey(0), batch['image'][:1])
    return model.init(rng, x, mask)['params'], {}, {}

  def predict(params, x_BxTxP, mask_BxT):
    delta_BxTxP = model.apply({'params': params}, x_BxTxP, mask_BxT)[2][0]
    # video.residual: the head predicts the change from frame t, so a zero head is the
    # copy-last-frame baseline and training only has to learn the motion.
    return x_BxTxP + delta_BxTxP if v.get('residual', False) else delta_BxTxP

  def loss(params, model_state, extra, batch, rng):
    del extra
    x_BxTxP, mask_BxT = clips(rng, batch['image'])
    pred_BxTxP = predict(params, x_BxTxP, mask_BxT)
    value = losses.next_frame_regression(pred_BxTxP, x_BxTxP, mask_BxT, k, distance='l2')
    copy = losses.next_frame_regression(x_BxTxP, x_BxTxP, mask_BxT, k, distance='l2')
    return value, (model_state, {'copy_last_mse': copy})

  def embed(params, model_state, batch):
    del model_state
    x_BxTxP, mask_BxT = clips(jax.random.PRNGKey(_EMBED_SEED), batch['image'])
    h_BxTxD = model.apply({'params': params}, x_BxTxP, mask_BxT)[0]
    return audio_models.masked_mean(h_BxTxD, mask_BxT)

  return methods.Method(init=init, loss=loss, update_extra=methods.no_extra, embed=embed)

