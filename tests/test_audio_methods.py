"""Audio methods end to end on FSDD: a smoke run with resume (cpc), and every method's loss
and gradients on 8 sharded devices equal to one device."""
import json

import chex
import jax
import numpy as np
import pytest

from sslax import methods
from sslax import optim
from sslax import sharding
from sslax import train
from sslax.data import fetch
from sslax.data import readers
from sslax.data import train_batches
from tests.conftest import assert_fraction_of, shared_data, without_evaluation
from tests.test_train import _Interrupt, _params

CONFIGS = {'apc': 'apc_audio', 'cpc': 'cpc_audio', 'masked_audio': 'masked_audio',
           'clip_contrast': 'clip_contrast_audio'}


def audio_config(name, data_dir, **overrides):
  import importlib
  shared_data('fsdd')
  c = importlib.import_module(f'sslax.configs.{CONFIGS[name]}').get_config('smoke')
  c.data.data_dir = str(data_dir)
  c.progress_bar = False
  c.update_from_flattened_dict(overrides)
  return c


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('tfds')


def test_cpc_smoke_run_resumes_to_the_same_parameters(tmp_path, data_dir, monkeypatch):
  # 60 training clips per digit (600 of 2,700) for the probes keep feature extraction short.
  per_digit = '+'.join(f'train[{270 * d}:{270 * d + 60}]' for d in range(10))
  # The smoke config's 256 / 128-example eval caps would thin these out: the whole splits.
  config = audio_config('cpc', data_dir, **{'eval.train_split': per_digit,
                                            'eval.max_train_examples': 0,
                                            'eval.max_test_examples': 0})
  results = train.run(config, str(tmp_path / 'straight'))
  rows = [json.loads(l) for l in (tmp_path / 'straight' / 'metrics.jsonl').read_text().splitlines()]
  last = [r for r in rows if 'loss' in r][-1]
  assert last['step'] == 4 and np.isfinite(last['loss'])
  # FSDD's 300 test clips exactly, in one batch padded to 304. (That CPC learns is
  # tests/test_learning_audio.py's.)
  for key in ('knn/accuracy', 'linear_probe/accuracy', 'random_init/linear_probe/accuracy',
              'fine_tune/accuracy', 'random_init/fine_tune/accuracy',
              'raw_input/logistic/accuracy'):
    assert_fraction_of(results[key], 300, key)
  # Spoken digits from 0.25 s of log-mel: even an untrained encoder is far above chance (0.1).
  assert results['random_init/knn/accuracy'] > 0.3
  # So are the clips' mean log-mel frames under scikit-learn's logistic regression.
  assert results['raw_input/logistic/accuracy'] > 0.3
  straight, _ = _params(tmp_path / 'straight', config)

  real = train_batches.make_train
  def dying(*args, **kwargs):
    for i, batch in enumerate(real(*args, **kwargs)):
      if i == 2:
        raise _Interrupt()
      yield batch
  monkeypatch.setattr(train_batches, 'make_train', dying)
  # The evaluators were checked above; the resumed run only needs to train.
  without_evaluation(config)
  with pytest.raises(_Interrupt):
    train.run(config, str(tmp_path / 'resumed'))
  monkeypatch.setattr(train_batches, 'make_train', real)
  train.run(config, str(tmp_path / 'resumed'))
  resumed, meta = _params(tmp_path / 'resumed', config)
  assert meta['step'] == 4
  chex.assert_trees_all_equal(resumed.params, straight.params, strict=True)


def eight_devices_match_one(configs, local, *, key=jax.random.PRNGKey(3)):
  """Each method's loss and gradients on one host batch `local`, sharded over 8 devices and
  on 1, are equal. `configs`: {method name: config}, all reading the same data; every method
  goes into one program per device count: one compile each however many methods."""
  bundles = {name: methods.get(name)(c) for name, c in configs.items()}
  c = next(iter(configs.values()))
  states = {name: train.make_init(m, optim.make(configs[name])[0], train.sample_batch(c),
                                  c.seed) for name, m in bundles.items()}
  states = jax.jit(lambda: {name: init() for name, init in states.items()})()
  params = {name: s.params for name, s in states.items()}

  def losses_and_grads(params, batch):
    def one(name):
      m, s = bundles[name], states[name]
      return jax.value_and_grad(lambda p: m.loss(p, s.model_state, s.extra, batch, key)[0])(
          params[name])
    return {name: one(name) for name in bundles}
  outputs = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.make_mesh(c.mesh, devices)
    fn = jax.jit(losses_and_grads, in_shardings=(sharding.replicated(mesh),
                                                 sharding.batch_sharding(mesh)))
    outputs.append(jax.device_get(fn(params, sharding.to_global(local, mesh))))
  for name in bundles:
    (l1, g1), (l8, g8) = outputs[0][name], outputs[1][name]
    assert np.isfinite(l1), name
    np.testing.assert_allclose(l8, l1, rtol=1e-5, err_msg=name)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6,
                                                         err_msg=name), g8, g1)


def test_eight_devices_give_the_one_device_loss_and_gradients(data_dir):
  configs = {name: audio_config(name, data_dir) for name in sorted(CONFIGS)}
  c = configs['apc']
  records = readers.Records(c.data.source, 'train', data_dir=str(data_dir), in_memory=False,
                            transform=fetch.record_transform(c.data))
  eight_devices_match_one(configs,
                          records.take(np.arange(0, 2700, 2700 // c.batch_size)[:c.batch_size]))


@pytest.mark.parametrize('overrides, match', [
    ({'audio.crop_seconds': 0.5}, r'config.audio.crop_seconds=0.5 .* exceeds config.data.clip_seconds'),
    ({'data.source': 'builtin:digits'}, r"config.method='cpc' needs audio"),
    ({'data.sample_rate': 0}, r'holds audio, but config.data.sample_rate is not set'),
    ({'data.bad_files': 'ignore'}, r"config.data.bad_files='ignore' is unknown"),
])
def test_bad_audio_configs_name_the_key(tmp_path, data_dir, overrides, match):
  with pytest.raises(ValueError, match=match):
    train.run(audio_config('cpc', data_dir, **overrides), str(tmp_path))
  assert not (tmp_path / 'checkpoints').exists()
