"""sslax.load / embed / export / init_from on an image (SimCLR, digits) workdir, and the
errors a user meets: no checkpoint, wrong modality, an export of another format version."""
import json
import shutil
import subprocess
import sys

import jax
import numpy as np
from PIL import Image
import pytest

import sslax
from sslax import artifacts
from sslax import embed as embed_cli
from sslax import errors
from sslax import export
from sslax import init_from
from sslax import methods
from sslax import optim
from sslax import train
from tests import encoder_checks
from tests.test_train import REPO, smoke_config


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('image')
  config = smoke_config(tmp / 'tfds')
  workdir, features, raw = encoder_checks.pretrain(config, tmp)
  return tmp, workdir, features, raw


def test_load_embed_export(run):
  tmp, workdir, expected, raw = run
  images = np.stack([r['image'] for r in raw])
  encoder = encoder_checks.check_load_matches_evaluators(workdir, expected, images)
  assert encoder.modality == 'image' and encoder.input_spec == {
      'image': {'shape': [8, 8, 1], 'dtype': 'uint8'}}
  # A list of images (grey HxW here) gives the same features as the stacked batch.
  np.testing.assert_array_equal(encoder.embed([im[..., 0] for im in images[:5]]),
                                encoder.embed(images[:5]))
  encoder_checks.check_export(encoder, tmp, {'image': images}, expected)


def test_the_public_api_evaluates_and_exports_a_run(run, tmp_path):
  tmp, workdir, expected, raw = run
  images = np.stack([r['image'] for r in raw])
  # sslax.export(workdir, out): the export's encoder gives the evaluators' features.
  out = sslax.export(str(workdir), str(tmp_path / 'export'))
  np.testing.assert_allclose(sslax.load(str(out)).embed(images), expected,
                             atol=encoder_checks.TOLERANCE, rtol=0)
  # sslax.evaluate(workdir, evals=...): the same checkpoint scores what the run reported.
  trained = json.loads((workdir / 'results.json').read_text())
  results = sslax.evaluate(str(workdir), evals=['knn'], output_dir=str(tmp_path / 'eval'),
                           overrides={'eval.raw_input': False})
  assert results['knn/accuracy'] == trained['knn/accuracy']
  assert results['step'] == trained['step'] and 'raw_input/logistic/accuracy' not in results
  assert (tmp_path / 'eval' / 'results.md').exists()
  with pytest.raises(errors.ConfigError, match='eval.num_sedes'):
    sslax.evaluate(str(workdir), overrides={'eval.num_sedes': 2})


def test_embed_cli_on_a_folder_of_unlabelled_images(run, tmp_path):
  _, workdir, _, raw = run
  folder = tmp_path / 'pictures'
  (folder / 'sub').mkdir(parents=True)
  images = [r['image'][..., 0] for r in raw[:5]]
  names = ['b.png', 'a.png', 'sub/c.png', 'd.png', 'e.png']
  for name, image in zip(names, images):
    Image.fromarray(image).save(folder / name)
  big = np.kron(images[0], np.ones((5, 7), np.uint8))   # 40x56, another size
  Image.fromarray(big).convert('RGB').save(folder / 'f.jpg', quality=95)
  out = tmp_path / 'features.npz'
  n = embed_cli.run(str(workdir), str(folder), str(out), progress=False)
  got = np.load(out)
  order = sorted(names + ['f.jpg'])
  assert n == 6 and got['ids'].tolist() == order and 'labels' not in got
  encoder = sslax.load(str(workdir))
  assert got['features'].shape == (6, encoder.feature_dim)
  by_name = dict(zip(names, images))
  expected = encoder.embed([by_name[k] for k in order if k != 'f.jpg'])
  np.testing.assert_array_equal(np.delete(got['features'], order.index('f.jpg'), axis=0),
                                expected)
  # Shards: the same rows, split in files of --shard_size.
  shards = tmp_path / 'shards'
  embed_cli.run(str(workdir), str(folder), str(shards), shard_size=4, progress=False)
  stacked = np.concatenate([np.load(shards / f'features-{i:05d}.npy') for i in range(2)])
  np.testing.assert_array_equal(stacked, got['features'])
  assert (shards / 'ids.txt').read_text().split() == order


def _initial_state(config):
  method = methods.get(config.method)(config)
  tx, _ = optim.make(config)
  sample = {'image': jax.ShapeDtypeStruct((config.batch_size, 8, 8, 1), np.uint8)}
  return jax.jit(train.make_init(method, tx, sample, config.seed))()


def test_init_from_starts_at_the_loaded_weights(run, tmp_path):
  tmp, workdir, _, _ = run
  loaded = sslax.load(str(workdir))
  for path in (workdir, tmp / 'export'):
    if not path.exists():
      export.export(loaded, str(path))
    state, summary = init_from.apply(_initial_state(smoke_config(tmp_path)), str(path))
    assert summary.startswith(f'init_from {path} (step 4)')
    for name, value in artifacts.flatten(loaded.params, 'p').items():
      np.testing.assert_array_equal(artifacts.flatten(state.params, 'p')[name], value)
  # Another method (BYOL) takes the encoder, and its EMA target starts equal to it.
  config = smoke_config(tmp_path, method='byol')
  from sslax.configs import byol_images
  config.byol = byol_images.get_config('smoke').byol
  state, summary = init_from.apply(_initial_state(config), str(workdir))
  online = artifacts.flatten(state.params['net']['encoder'], 'e')
  target = artifacts.flatten(state.extra['target']['encoder'], 'e')
  want = artifacts.flatten(loaded.params['encoder'], 'e')
  for name in want:
    np.testing.assert_array_equal(online[name], want[name])
    np.testing.assert_array_equal(target[name], want[name])
  assert 'initialised fresh: params/net/projector' in summary


def test_user_errors(run, tmp_path):
  tmp, workdir, _, _ = run
  empty = tmp_path / 'no_checkpoints'
  empty.mkdir()
  (empty / 'config.json').write_text((workdir / 'config.json').read_text())
  (empty / 'input_spec.json').write_text((workdir / 'input_spec.json').read_text())
  with pytest.raises(FileNotFoundError, match='holds no checkpoint'):
    sslax.load(str(empty))
  with pytest.raises(FileNotFoundError, match='does not exist'):
    sslax.load(str(tmp_path / 'nowhere'))
  encoder = sslax.load(str(workdir))
  with pytest.raises(ValueError, match='takes image'):
    encoder.embed({'text': ['hello']})
  with pytest.raises(ValueError, match=r"Input 'image' is uint8\[3, 9, 9, 1\]"):
    encoder.embed({'image': np.zeros((3, 9, 9, 1), np.uint8)})
  old = tmp_path / 'old_export'
  export.export(encoder, str(old))
  manifest = json.loads((old / artifacts.MANIFEST).read_text())
  manifest['format_version'] = 0
  (old / artifacts.MANIFEST).write_text(json.dumps(manifest))
  with pytest.raises(ValueError, match='version 0; this sslax reads'):
    sslax.load(str(old))


def test_embed_command_on_a_labelled_source(run, tmp_path):
  _, workdir, expected, raw = run
  out = tmp_path / 'digits.npz'
  proc = subprocess.run(
      [sys.executable, '-m', 'sslax.embed', f'--workdir={workdir}', '--input=builtin:digits',
       '--split=test', f'--out={out}', f'--data_dir={tmp_path / "tfds"}'],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  got = np.load(out)
  np.testing.assert_array_equal(got['labels'], [r['label'] for r in raw])
  assert got['ids'].tolist() == [str(i) for i in range(len(raw))]
  # Another process, batch layout and device count: equal to rounding, not bit for bit.
  np.testing.assert_allclose(got['features'], expected, atol=1e-5, rtol=0)


def test_a_workdir_without_input_spec_needs_its_data(run, tmp_path):
  _, workdir, _, _ = run
  old = tmp_path / 'old'
  shutil.copytree(workdir, old)
  (old / 'input_spec.json').unlink()
  config = json.loads((old / 'config.json').read_text())
  config['data']['source'] = f'folder:{tmp_path / "gone"}'
  (old / 'config.json').write_text(json.dumps(config))
  with pytest.raises(FileNotFoundError, match='input_spec.json is missing'):
    sslax.load(str(old))


def test_a_missing_input_spec_names_the_command_that_writes_it(tmp_path):
  # Its fix named `python -m sslax.evaluate`, which never writes input_spec.json; train.run
  # does, on resuming. Fails before any checkpoint is read, so no run is needed.
  config = smoke_config(tmp_path / 'tfds', **{'data.source': f'folder:{tmp_path}/gone'})
  (tmp_path / 'config.json').write_text(config.to_json_best_effort())
  with pytest.raises(errors.DataNotFoundError) as raised:
    sslax.load(str(tmp_path))
  message = str(raised.value)
  assert 'input_spec.json is missing' in message and 'sslax.evaluate' not in message
  assert f'python -m sslax.main --config CONFIG --workdir {tmp_path}' in message
