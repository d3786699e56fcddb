"""The raw-input baseline: scikit-learn's own numbers, the features it reads, the report column."""
import jax.numpy as jnp
import ml_collections
import numpy as np
from sklearn import linear_model
from sklearn import pipeline as sk_pipeline
from sklearn import preprocessing

from sslax import reports
from sslax import sharding
from sslax.augment import audio as audio_aug
from sslax.augment import image as image_aug
from sslax.configs import simclr_digits
from sslax.evaluators import linear_probe
from sslax.evaluators import raw_input
from sslax.evaluators import suite


def test_logistic_equals_scikit_learn_with_the_same_held_out_choice():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, 500)
  # Overlapping blobs off the origin: standardisation and the choice of C both matter.
  inputs = (rng.normal(size=(3, 10))[labels] * 1.5 + rng.normal(size=(500, 10)) * 2.0
            + 5.0).astype(np.float32)
  (x, y), (x_test, y_test) = (inputs[:300], labels[:300]), (inputs[300:], labels[300:])
  got = raw_input.logistic(x, y, x_test, y_test, seed=3)

  # The same protocol written out with scikit-learn alone.
  fit, val = linear_probe.stratified_split(y, raw_input.VAL_FRACTION, 3)
  make = lambda c: sk_pipeline.make_pipeline(
      preprocessing.StandardScaler(), linear_model.LogisticRegression(C=c, max_iter=200))
  val_scores = {c: make(c).fit(x[fit], y[fit]).score(x[val], y[val]) for c in raw_input.C_GRID}
  best = max(sorted(val_scores), key=lambda c: (val_scores[c], -c))   # ties: smaller C
  expected = make(best).fit(x, y).score(x_test, y_test)
  assert got['c'] == best and got['val_accuracy'] == val_scores[best]
  assert got['accuracy'] == expected > 0.6
  assert got['num_train'] == 300

  capped = raw_input.logistic(x, y, x_test, y_test, max_train=120, seed=3)
  assert capped['num_train'] == 120


def test_pixels_are_the_evaluation_view_and_log_mel_means_real_frames():
  images = np.random.default_rng(0).integers(0, 256, (3, 8, 12, 1), dtype=np.uint8)
  np.testing.assert_allclose(raw_input.pixels(images, 6),
                             np.asarray(image_aug.eval_view(images, 6)).reshape(3, -1))

  config = ml_collections.ConfigDict({
      'data': {'sample_rate': 8000},
      'audio': dict(n_fft=200, hop=80, n_mels=16, fmin=20.0, fmax=4000.0)})
  audio = np.random.default_rng(1).normal(size=(2, 2000)).astype(np.float32)
  lengths = np.array([2000, 900], np.int32)
  audio[1, 900:] = 0.0
  got = raw_input.mean_log_mel(audio, lengths, config)
  frames = np.asarray(audio_aug.log_mel(jnp.asarray(audio), sample_rate=8000, n_fft=200,
                                        hop=80, n_mels=16, fmin=20.0, fmax=4000.0))
  real = np.asarray(audio_aug.frame_mask(jnp.asarray(lengths), frames.shape[1], 200, 80))
  assert real[1].sum() < real[0].sum() == frames.shape[1]   # the short clip's padding is left out
  for i in range(2):
    np.testing.assert_allclose(got[i], frames[i][real[i]].mean(0), rtol=1e-5, atol=1e-5)


def test_text_baseline_reads_the_stored_sentences(tmp_path):
  words = {0: ['awful', 'bad', 'dull', 'boring'], 1: ['great', 'good', 'lovely', 'fine']}
  rng = np.random.default_rng(0)
  for split, n in (('train', 40), ('test', 20)):
    rows = [f'{" ".join(rng.choice(words[i % 2], 3))} film\t{i % 2}' for i in range(n)]
    (tmp_path / f'toy_{split}.tsv').write_text('sentence\tlabel\n' + '\n'.join(rows) + '\n')
  c = simclr_digits.get_config('smoke')
  c.data.data_dir = str(tmp_path / 'tfds')
  c.data.tokenizer, c.data.seq_len = 'byte', 16
  c.eval.source = f'tsv:{tmp_path}/toy_{{split}}.tsv'
  evaluators = suite.Suite(c, lambda p, m, b: b, sharding.make_mesh(c.mesh))
  assert raw_input.raw_text(c.eval.source, 'test', c)[0].endswith(' film')
  scores = evaluators.raw_input()
  # The sentiment words decide the label; byte tokens truncated to 16 would not change that,
  # but the baseline reads whole sentences, so every test sentence is right.
  assert scores['raw_input/logistic/accuracy'] == 1.0
  assert scores['raw_input/logistic/num_train'] == 40


def test_report_table_has_the_raw_input_column():
  results = {'knn/accuracy': 0.9, 'random_init/knn/accuracy': 0.8, 'clustering/nmi': 0.5,
             'random_init/clustering/nmi': 0.2, 'raw_input/logistic/accuracy': 0.85,
             'raw_input/logistic/c': 0.1, 'step': 4}
  table = reports.table(results)
  assert '| metric | pretrained | random init | raw input (logistic) |' in table
  assert '| knn/accuracy | 0.9000 | 0.8000 | 0.8500 |' in table
  assert '| clustering/nmi | 0.5000 | 0.2000 | - |' in table
  assert 'raw_input/logistic/c' not in table
