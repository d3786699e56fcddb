"""Moving-MNIST clips: deterministic per key, independent of the batch split, and every frame
is a real source digit pasted at a whole-pixel offset that moves and stays on the canvas."""
import jax
import jax.numpy as jnp
import numpy as np

from sslax import models
from sslax.augment import video
from sslax.models import audio as audio_models
from tests import resumes
from tests.conftest import assert_fraction_of, shared_data


def test_clips_are_deterministic_and_made_of_the_source_digits():
  with np.load(shared_data('mnist/mnist_test.npz')) as f:
    digits = f['images'][:6]
  make = jax.jit(lambda key, d: video.moving_digits(key, d, num_frames=12, canvas=40, speed=3.0))
  key = jax.random.PRNGKey(7)
  clips = np.asarray(make(key, jnp.asarray(digits)))
  assert clips.shape == (6, 12, 40, 40)
  np.testing.assert_array_equal(clips, np.asarray(make(key, jnp.asarray(digits))))
  np.testing.assert_array_equal(clips[:3], np.asarray(make(key, jnp.asarray(digits[:3]))))
  assert not np.array_equal(clips, np.asarray(make(jax.random.PRNGKey(8), jnp.asarray(digits))))
  for n in range(6):
    digit = digits[n].astype(np.float32) / np.float32(255)
    offsets = []
    for t in range(12):
      # The frame is the digit (to float rounding: XLA may scale by 1/255 as a product) at
      # one offset, with nothing else on the canvas.
      found = [(r, c) for r in range(13) for c in range(13)
               if np.allclose(clips[n, t, r:r + 28, c:c + 28], digit, rtol=0, atol=1e-6)
               and np.isclose(clips[n, t].sum(), digit.sum())]
      assert found, (n, t)
      offsets.append(found[0])
    steps = np.abs(np.diff(np.array(offsets), axis=0)).max(1)
    assert steps.max() <= 3 and steps.sum() > 0   # it moves, at most `speed` px per frame


def test_next_frame_video_on_eight_devices_gives_the_one_device_loss_and_gradients(tmp_path):
  import importlib
  from sslax.data import readers
  from tests.test_audio_methods import eight_devices_match_one
  # 16 real digits in a small .npz: building all 70,000 would take most of the test's time.
  with np.load(shared_data('mnist/mnist_train.npz')) as f:
    np.savez(tmp_path / 'digits.npz', images=f['images'][:16], labels=f['labels'][:16])
  c = importlib.import_module('sslax.configs.nextframe_video').get_config('smoke')
  c.data.update(source=f'npz:{tmp_path}/digits.npz', data_dir=str(tmp_path / 'tfds'))
  c.batch_size = 8   # one clip per device
  c.video.num_frames = 3
  records = readers.Records(c.data.source, 'train', data_dir=str(tmp_path), in_memory=False)
  eight_devices_match_one({'next_frame_video': c}, records.take(np.arange(c.batch_size)))


def test_nextframe_video_smoke_run_and_held_out_mse(tmp_path, monkeypatch, capsys):
  import importlib
  import json
  import runpy
  import sys
  from sslax import train
  from tests.conftest import REPO
  for split, n in (('train', 64), ('test', 64)):   # test[:62] lacks an 8
    with np.load(shared_data(f'mnist/mnist_{split}.npz')) as f:
      np.savez(tmp_path / f'digits_{split}.npz', images=f['images'][:n], labels=f['labels'][:n])
  c = importlib.import_module('sslax.configs.nextframe_video').get_config('smoke')
  source = f'npz:{tmp_path}/digits_{{split}}.npz'
  c.data.update(source=source, data_dir=str(tmp_path / 'tfds'))
  c.eval.update(source=source, train_split='train', test_split='test')
  c.progress_bar = False
  workdir = tmp_path / 'run'
  saves = resumes.record_saves(monkeypatch)
  results = train.run(c, str(workdir))
  assert_fraction_of(results['linear_probe/accuracy'], 64, 'probe')   # the 64 test digits
  rows = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in rows if 'loss' in r] == [2, 4]

  # experiments/video_heldout.py restores the run and scores every test digit's clip against
  # copying the last frame; the two differ (the model is not the copy) and both are small.
  capsys.readouterr()
  monkeypatch.setattr(sys, 'argv', ['video_heldout.py', '--workdir', str(workdir)])
  runpy.run_path(str(REPO / 'experiments' / 'video_heldout.py'), run_name='__main__')
  held_out = json.loads(capsys.readouterr().out)
  assert held_out['step'] == 4 and held_out['clips'] == 64
  # Both against float64 NumPy of the same clips (the script's keys: fold_in(1234, batch i);
  # 64 clips are 4 whole batches of 16, so no padding rows): the baseline copies frame t, the
  # model predicts frame t + k with the weights step 4 saved (video.residual: the
  # frame plus the head's change).
  with np.load(tmp_path / 'digits_test.npz') as f:
    digits = f['images'][..., 0] if f['images'].ndim == 4 else f['images']
  v, k = c.video, c.video.steps_ahead
  assert v.residual
  params = saves.states[workdir, 4].params   # the checkpoint the script restores
  net = audio_models.WithHeads(models.make_encoder(c.model, causal=True),
                               out_dim=v.canvas * v.canvas, num_outputs=1,
                               zero_init=bool(v.residual))
  change = jax.jit(lambda x, mask: net.apply({'params': params}, x, mask)[2][0])
  copy_errors, model_errors = [], []
  for i in range(64 // c.batch_size):
    clips = video.moving_digits(
        jax.random.fold_in(jax.random.PRNGKey(1234), i),
        jnp.asarray(digits[i * c.batch_size:(i + 1) * c.batch_size]),
        num_frames=v.num_frames, canvas=v.canvas, speed=v.speed)
    x = np.asarray(clips, np.float64).reshape(*clips.shape[:2], -1)
    predicted = x + np.asarray(change(clips.reshape(*clips.shape[:2], -1),
                                      jnp.ones(clips.shape[:2], bool)), np.float64)
    copy_errors.append(((x[:, k:] - x[:, :-k]) ** 2).mean())
    model_errors.append(((x[:, k:] - predicted[:, :-k]) ** 2).mean())
  np.testing.assert_allclose(held_out['copy_last_frame_mse'], np.mean(copy_errors), rtol=1e-5)
  np.testing.assert_allclose(held_out['next_frame_mse'], np.mean(model_errors), rtol=1e-5)
  # Four steps from a zero residual head: the model is no longer the copy, by far more than
  # the tolerance above (else that check could not tell them apart).
  model, copy = held_out['next_frame_mse'], held_out['copy_last_frame_mse']
  assert abs(model - copy) > 1e-4 * copy, (model, copy)   # measured: 1.1e-3 apart
