"""A trained encoder outside the trainer: `sslax.load(path)` and `Encoder.embed(inputs)`.

`path` is a run's workdir (config.json, input_spec.json, checkpoints/, the tokenizer) or a
directory written by `python -m sslax.export`. Only the method's `params` and `model_state`
are read from the checkpoint (an Orbax partial restore: no optimiser state, no EMA target,
no online probe), and nothing of the training data is touched: what a batch looks like comes
from `input_spec.json`, which `train.run` writes next to config.json (sslax/artifacts.py
names and reads what a run leaves behind).

`embed` takes raw inputs and applies the evaluators' preprocessing before the method's own
`embed` (the function the evaluators call), so its features are the evaluators' features:
- images: uint8 [N, H, W, C] (or a list of HxWxC / HxW arrays of any size); the spec's size
  goes to the device untouched, where `augment.image.eval_view` takes the central square and
  resizes it to data.image_size, as in evaluation; other sizes are first centre-cropped and
  resized to the spec's size on the host (PIL, bilinear), so a folder of mixed sizes
  compiles once;
- text: a list of strings, tokenised with the run's tokenizer to data.seq_len;
- audio: a list of float waveforms plus their `sample_rate`, resampled and cut or padded to
  data.clip_seconds as the pipeline does; the log-mel front end runs on device;
- or a dict of already prepared model inputs ({'image': ...} / {'tokens': ...} /
  {'audio': ..., 'audio_len': ...}) with the spec's shapes.
Inputs are batched and padded to one batch size, so any N compiles once.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
import functools
from typing import Any

from etils import epath
import jax
import ml_collections
import numpy as np
from PIL import Image
import tqdm

from sslax import artifacts
from sslax import errors
from sslax import methods
from sslax import sharding
from sslax.data import train_batches
from sslax.data import tokenizers
from sslax.data import waveforms


class Encoder:
  """A method's encoder with its parameters on the available devices.

  Attributes: `config` (the run's resolved config), `input_spec` ({key: shape, dtype} of
  one example as the model takes it), `modality`, `step` (the checkpoint's), `params` and
  `model_state` (the method's trees, replicated), `method` (its sslax Method).
  """

  def __init__(self, config: ml_collections.ConfigDict, input_spec: Mapping[str, Any],
               params: Any, model_state: Any, step: int):
    self.config, self.step = config, step
    self.modality = artifacts.modality(input_spec)
    self.input_spec = {k: input_spec[k] for k in artifacts.INPUT_KEYS[self.modality]}
    self.method = methods.get(config.method)(config)
    # Evaluation's layout: batch over every device of a 1-D data mesh, weights replicated.
    self.mesh = sharding.make_mesh({'data': -1, 'fsdp': 1, 'model': 1})
    replicated = sharding.replicated(self.mesh)
    self.params, self.model_state = jax.device_put((params, model_state), replicated)
    self._embed = jax.jit(self.method.embed, in_shardings=(
        replicated, replicated, sharding.batch_sharding(self.mesh)))
    n = jax.device_count()
    self.batch_size = -(-int(config.eval.batch_size) // n) * n

  # ---- raw inputs -> model inputs (host) ---------------------------------------------------

  def prepare(self, inputs: Any, *, sample_rate: int | None = None) -> dict[str, np.ndarray]:
    """Model inputs {key: [N, ...]} of raw `inputs` (see the module docstring)."""
    if isinstance(inputs, Mapping):
      given = set(inputs) - {'label', 'mask', 'sample_rate', 'id'}
      if given & set(self.input_spec):
        return self._check_prepared({k: np.asarray(inputs[k]) for k in self.input_spec})
      raw_key = {'image': 'image', 'video': 'image', 'text': 'text', 'audio': 'audio'}
      key = raw_key[self.modality]
      if key not in inputs:
        raise errors.DataError(f'This encoder takes {self.modality} ({self._expects()}); the batch '
                               f'has keys {sorted(given)}.')
      sample_rate = inputs.get('sample_rate', sample_rate)
      inputs = inputs[key]
    if self.modality == 'text':
      return self._texts(inputs)
    if self.modality == 'audio':
      return self._waveforms(inputs, sample_rate)
    return self._images(inputs)

  def _expects(self) -> str:
    return ', '.join(f"{k}: {s['dtype']}[N, {', '.join(map(str, s['shape']))}]"
                     for k, s in self.input_spec.items())

  def _check_prepared(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = {len(v) for v in batch.values()}
    for k, v in batch.items():
      want = self.input_spec[k]
      if list(v.shape[1:]) != want['shape'] or (v.dtype.name != want['dtype']
                                                and v.dtype.kind != np.dtype(want['dtype']).kind):
        raise errors.DataError(f'Input {k!r} is {v.dtype.name}{list(v.shape)}; this encoder takes '
                               f'{self._expects()}.')
    if len(n) != 1:
      raise errors.DataError(f'The inputs {sorted(batch)} have different lengths {sorted(n)}.')
    return {k: v.astype(self.input_spec[k]['dtype']) for k, v in batch.items()}

  def _texts(self, texts: Any) -> dict[str, np.ndarray]:
    if isinstance(texts, (str, bytes)):
      texts = [texts]
    # numpy scalars of str/bytes (a TFDS Text feature) count as strings too.
    texts = [t.item() if isinstance(t, np.ndarray) and t.ndim == 0 else t for t in texts]
    if not all(isinstance(t, (str, bytes)) for t in texts):
      raise errors.DataError('A text encoder takes a list of strings (or {"text": [...]}), got '
                             f'{sorted({type(t).__name__ for t in texts})}.')
    tokenizer = tokenizers.make(self.config.data)
    seq_len = self.input_spec['tokens']['shape'][0]
    return {'tokens': np.stack([tokenizer.fixed_length(t, seq_len) for t in texts]
                               ) if len(texts) else np.zeros((0, seq_len), np.int32)}

  def _waveforms(self, waves: Any, sample_rate: int | None) -> dict[str, np.ndarray]:
    if not sample_rate:
      raise errors.DataError(
          'An audio encoder needs the waveforms\' sample_rate: embed(waves, sample_rate=...) '
          f'or {{"audio": [...], "sample_rate": ...}} (the model runs at '
          f'{self.config.data.sample_rate} Hz; others are resampled).')
    if isinstance(waves, np.ndarray) and waves.ndim == 1:
      waves = [waves]
    transform = waveforms.record_transform(self.config.data)
    clips = [transform({'audio': np.asarray(w, np.float32), 'sample_rate': int(sample_rate)})
             for w in waves]
    if any(np.asarray(w).ndim != 1 for w in waves):
      raise errors.DataError('Waveforms must be mono, one 1-D array per clip.')
    return {'audio': np.stack([c['audio'] for c in clips]),
            'audio_len': np.array([c['audio_len'] for c in clips], np.int32)}

  def _images(self, images: Any) -> dict[str, np.ndarray]:
    shape = tuple(self.input_spec['image']['shape'])
    if isinstance(images, np.ndarray) and images.ndim == len(shape) + 1:
      images = list(images) if images.shape[1:] != shape else images
    if isinstance(images, np.ndarray) and images.shape[1:] == shape:
      return self._check_prepared({'image': images})
    if self.modality == 'video':
      raise errors.DataError(f'A video encoder takes clips uint8[N, {", ".join(map(str, shape))}].')
    return {'image': np.stack([fit_image(np.asarray(x), shape) for x in images])
            if len(images) else np.zeros((0, *shape), np.uint8)}

  # ---- model inputs -> features (device) ---------------------------------------------------

  def embed(self, inputs: Any, *, sample_rate: int | None = None,
            progress: bool = False) -> np.ndarray:
    """Features float32 [N, D] of raw or prepared `inputs` (see the module docstring)."""
    return self.embed_prepared(self.prepare(inputs, sample_rate=sample_rate),
                               progress=progress)

  def embed_prepared(self, batch: Mapping[str, np.ndarray], *,
                     progress: bool = False) -> np.ndarray:
    """Features of model inputs {key: [N, ...]}, in batches of `batch_size` (last padded)."""
    n = len(next(iter(batch.values())))
    starts = range(0, n, self.batch_size)
    if progress:
      starts = tqdm.tqdm(starts, unit='batch', desc='embed')
    out = []
    for start in starts:
      idx = np.minimum(np.arange(start, start + self.batch_size), max(n - 1, 0))
      local = {k: np.asarray(v)[idx] for k, v in batch.items()}
      feats = self._embed(self.params, self.model_state, sharding.to_global(local, self.mesh))
      out.append(np.asarray(feats)[:min(self.batch_size, n - start)])
    if not out:
      return np.zeros((0, self.feature_dim), np.float32)
    return np.concatenate(out).astype(np.float32)

  @functools.cached_property
  def feature_dim(self) -> int:
    abstract = {k: jax.ShapeDtypeStruct((1, *s['shape']), s['dtype'])
                for k, s in self.input_spec.items()}
    return int(jax.eval_shape(self.method.embed, self.params, self.model_state,
                              abstract).shape[-1])


def fit_image(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """uint8 image of `shape` (H, W, C): grey/RGBA channels matched, then (if the size
  differs) the central square resized to H x W, the crop `eval_view` would take."""
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3:
    raise errors.DataError(f'An image must be HxW or HxWxC, got shape {image.shape}.')
  height, width, channels = shape
  if image.dtype != np.uint8:
    raise errors.DataError(f'Images must be uint8 (0-255), got {image.dtype}.')
  if image.shape[-1] == 4:
    image = image[..., :3]   # RGBA: alpha is not an input any encoder was trained on
  if image.shape[-1] != channels:
    if image.shape[-1] == 1:
      image = np.repeat(image, channels, axis=-1)
    elif channels == 1:
      image = np.asarray(Image.fromarray(image).convert('L'))[..., None]
    else:
      raise errors.DataError(f'An image with {image.shape[-1]} channels cannot feed an encoder of '
                             f'{channels}.')
  if image.shape[:2] == (height, width):
    return image
  h, w = image.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = image[top:top + side, left:left + side]
  mode = 'L' if channels == 1 else 'RGB'
  resized = Image.fromarray(square[..., 0] if channels == 1 else square, mode).resize(
      (width, height), Image.BILINEAR)
  return np.asarray(resized).reshape(height, width, channels)


# ---- loading ---------------------------------------------------------------------------------

def load(path: str, step: int | None = None) -> Encoder:
  """The encoder of a workdir (checkpoint `step`, default the latest) or of an export dir."""
  root = artifacts.root(path)
  if artifacts.is_export(root):
    if step is not None:
      raise errors.ConfigError(f'{path} is an export (one step); load it without step=.')
    return _load_export(root)
  config = _config(root)
  spec = _input_spec(root, config)
  params, model_state, step = artifacts.restore_weights(root / artifacts.CHECKPOINTS, step)
  return Encoder(config, spec, params, model_state, step)


def _load_export(root: epath.Path) -> Encoder:
  content = artifacts.manifest(root)
  config = artifacts.read_config(str(root))
  if config.data.get('tokenizer', '') == 'sentencepiece':
    config.data.tokenizer_dir = str(root / config.data.tokenizer_dir)
  params, model_state = artifacts.read_export_weights(root)
  return Encoder(config, content['input_spec'], params, model_state, content['step'])


def _config(root: epath.Path) -> ml_collections.ConfigDict:
  config = artifacts.read_config(str(root))
  if config.data.get('tokenizer', '') == 'sentencepiece':
    # Its own tokenizer folder, not the path recorded when it ran: a moved workdir loads.
    config.data.tokenizer_dir = str(root / 'tokenizer')
    config = tokenizers.prepare(config, str(root), train_if_missing=False)
  return config


def _input_spec(root: epath.Path, config: ml_collections.ConfigDict) -> dict[str, Any]:
  spec = artifacts.read_input_spec(root)
  if spec is not None:
    return spec
  # Workdirs from before input_spec.json existed: the training data's first record.
  try:
    crops = methods.train_crops(config)
    record = train_batches.first_train_record(config, crops)
    sample = {k: jax.ShapeDtypeStruct((1, *v.shape), v.dtype) for k, v in record.items()}
    return artifacts.spec_of(train_batches.encoder_inputs(sample, crops))
  except (FileNotFoundError, ValueError) as e:
    # train.run writes input_spec.json once it has restored the checkpoint, before it trains
    # on (sslax.evaluate never writes it), so resuming the run is the fix.
    raise errors.DataNotFoundError(
        f'{root / artifacts.INPUT_SPEC} is missing (the run predates it) and the training data '
        f'config.data.source={config.data.source!r} could not be read to infer it ({e}). Fix: '
        f'rerun `python -m sslax.main --config CONFIG --workdir {root}` with the run\'s config '
        f'and overrides and its data present; it resumes from the latest checkpoint and writes '
        f'{artifacts.INPUT_SPEC} before training further (a finished run then evaluates again).'
    ) from e
