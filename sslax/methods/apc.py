"""Autoregressive predictive coding (Chung et al. 2019, "An Unsupervised Autoregressive Model
for Speech Representation Learning").

A causal encoder reads log-mel frames of a random crop of each clip; a linear head per step
ahead k (config.apc.steps_ahead) predicts frame t + k from the features at t, scored with L1
(`losses.next_frame_regression`). Frames are mean/variance normalised per clip, so the
targets have unit scale. The evaluators use the mean of the contextual features over the
real frames of the whole (uncropped) clip.

This module also holds what every audio method shares (`AudioFrontEnd`): the check that the
data is audio, training crops with gain and noise, and normalised log-mel frames.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from sslax import errors
from sslax import losses
from sslax import methods
from sslax import models
from sslax.augment import audio as audio_aug
from sslax.models import audio as audio_models


class AudioFrontEnd(NamedTuple):
  check: Callable      # check(batch): raises when the batch holds no audio
  crops: Callable      # crops(key, batch) -> (audio [B, C], audio_len [B]) augmented crops
  features: Callable   # features(audio [B, T], audio_len [B]) -> (x [B, F, M], mask [B, F])


def front_end(config: ml_collections.ConfigDict) -> AudioFrontEnd:
  """The audio front end that config.data.sample_rate and config.audio describe."""
  a, rate = config.audio, int(config.data.get('sample_rate', 0))
  crop = round(rate * a.crop_seconds)
  mel = dict(sample_rate=rate, n_fft=a.n_fft, hop=a.hop, n_mels=a.n_mels, fmin=a.fmin,
             fmax=a.fmax)

  def check(batch):
    if 'audio' not in batch:
      raise errors.ConfigError(
          f'config.method={config.method!r} needs audio, but config.data.source='
          f'{config.data.source!r} gives {sorted(batch)}; use an audio source '
          '(folder:DIR of .wav files, or catalog audio such as tfds:speech_commands) '
          'with config.data.sample_rate set.')
    clip = batch['audio'].shape[-1]
    if crop > clip:
      raise errors.ConfigError(
          f'config.audio.crop_seconds={a.crop_seconds} ({crop} samples) exceeds '
          f'config.data.clip_seconds ({clip} samples); lower the crop.')
    frames = audio_aug.num_frames(clip, a.n_fft, a.hop)
    if frames > config.model.max_frames:
      raise errors.ConfigError(f'clips of config.data.clip_seconds={config.data.clip_seconds} give '
                               f'{frames} frames, over config.model.max_frames='
                               f'{config.model.max_frames}; raise it or shorten the clips.')

  def crops(key, batch):
    b = batch['audio'].shape[0]
    crop_key, gain_key, noise_key = (audio_aug.per_example(k, b)
                                     for k in jax.random.split(key, 3))
    audio_BxC, len_B = jax.vmap(audio_aug.random_crop, in_axes=(0, 0, 0, None))(
        crop_key, batch['audio'], batch['audio_len'], crop)
    if a.gain_db:
      audio_BxC = jax.vmap(audio_aug.random_gain, in_axes=(0, 0, None))(
          gain_key, audio_BxC, a.gain_db)
    if a.noise_std:
      audio_BxC = jax.vmap(audio_aug.add_noise, in_axes=(0, 0, 0, None))(
          noise_key, audio_BxC, len_B, a.noise_std)
    return audio_BxC, len_B

  def features(audio_BxT, len_B):
    x_BxFxM = audio_aug.log_mel(audio_BxT, **mel)
    mask_BxF = audio_aug.frame_mask(len_B, x_BxFxM.shape[1], a.n_fft, a.hop)
    return audio_aug.normalize(x_BxFxM, mask_BxF), mask_BxF

  return AudioFrontEnd(check, crops, features)


def make_init(model, front):
  """init(): checks the batch's audio and initialises `model` on one clip's features."""
  def init(rng, batch):
    front.check(batch)
    x, mask = front.features(batch['audio'][:1], batch['audio_len'][:1])
    return model.init(rng, x, mask)['params'], {}, {}
  return init


def make_embed(model, front):
  """embed(): mean contextual features over the real frames of whole clips."""
  def embed(params, model_state, batch):
    del model_state
    x_BxFxM, mask_BxF = front.features(batch['audio'], batch['audio_len'])
    h_BxFxD = model.apply({'params': params}, x_BxFxM, mask_BxF)[0]
    return audio_models.masked_mean(h_BxFxD, mask_BxF)
  return embed


def make_embed_sequence(model, front):
  """embed_sequence(): the contextual features of every frame and the real-frame mask."""
  def embed_sequence(params, model_state, batch):
    del model_state
    x_BxFxM, mask_BxF = front.features(batch['audio'], batch['audio_len'])
    return model.apply({'params': params}, x_BxFxM, mask_BxF)[0], mask_BxF
  return embed_sequence


def make_split_method(model, front, embed_inputs, forward,
                      loss_from_embeddings) -> methods.Method:
  """An audio method whose loss is split for GradCache (cpc, clip contrast):
  `loss_from_embeddings(forward(..., embed_inputs(batch, rng)))`, with `model`'s init,
  embed and embed_sequence above."""
  def loss(params, model_state, extra, batch, rng):
    embeddings, model_state = forward(params, model_state, extra, embed_inputs(batch, rng))
    value, metrics = loss_from_embeddings(embeddings)
    return value, (model_state, metrics)

  return methods.Method(init=make_init(model, front), loss=loss,
                        update_extra=methods.no_extra, embed=make_embed(model, front),
                        embed_inputs=embed_inputs, forward=forward,
                        loss_from_embeddings=loss_from_embeddings,
                        embed_sequence=make_embed_sequence(model, front))


def make(config: ml_collections.ConfigDict) -> methods.Method:
  front = front_end(config)
  steps = tuple(config.apc.steps_ahead)
  model = audio_models.WithHeads(models.make_encoder(config.model, causal=True),
                                 out_dim=config.audio.n_mels, num_outputs=len(steps))

  def loss(params, model_state, extra, batch, rng):
    del extra
    x_BxFxM, mask_BxF = front.features(*front.crops(rng, batch))
    _, _, preds = model.apply({'params': params}, x_BxFxM, mask_BxF)
    per_k = [losses.next_frame_regression(p, x_BxFxM, mask_BxF, k, distance=config.apc.distance)
             for k, p in zip(steps, preds)]
    metrics = {f'l1_k{k}' if config.apc.distance == 'l1' else f'mse_k{k}': v
               for k, v in zip(steps, per_k)}
    return jnp.mean(jnp.stack(per_k)), (model_state, metrics)

  return methods.Method(init=make_init(model, front), loss=loss,
                        update_extra=methods.no_extra, embed=make_embed(model, front),
                        embed_sequence=make_embed_sequence(model, front))
