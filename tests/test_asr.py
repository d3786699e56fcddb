"""asr: transcript normalisation and bad asr: inputs, greedy CTC decoding, the CTC head's
loss falling on one batch, jiwer's WER/CER, and 8-device == 1-device CTC loss."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslax import errors
from sslax import methods
from sslax import sharding
from sslax.data.builders import asr as asr_data
from sslax.evaluators import asr
from tests.test_audio_data import write_wav


def _corpus(tmp_path, lines, seconds=0.5, missing=()):
  rows = ['path\ttext']
  for i, text in enumerate(lines):
    name = f'train/c{i}.wav'
    if name not in missing:
      (tmp_path / 'train').mkdir(exist_ok=True)
      t = np.arange(int(16000 * seconds)) / 16000
      write_wav(tmp_path / name, (9000 * np.sin(2 * np.pi * (200 + 50 * i) * t))[:, None],
                16000, 2)
    rows.append(f'{name}\t{text}')
  (tmp_path / 'train.tsv').write_text('\n'.join(rows) + '\n')
  return tmp_path / 'train.tsv'


def test_transcripts_are_normalised_to_the_alphabet():
  assert asr_data.normalize('Well-known, "A" (it\'s)  so.', 'x') == "well known a it's so"


@pytest.mark.parametrize('lines, missing, error, match', [
    (['hello', ' .,; '], (), ValueError, r'train.tsv:3: the transcript is empty'),
    (['hello', 'in 1984'], (), ValueError,
     r"train.tsv:3: character '1' \(U\+0031\) is outside the output alphabet"),
    (['café'], (), ValueError, r"train.tsv:2: character 'é'"),
    (['hello', 'world'], ('train/c1.wav',), FileNotFoundError,
     r"train.tsv:3: WAV 'train/c1.wav' not found"),
])
def test_bad_asr_inputs_name_file_and_line(tmp_path, lines, missing, error, match):
  tsv = _corpus(tmp_path, lines, missing=missing)
  with pytest.raises(error, match=match):
    asr_data.read_tsv(str(tsv))


def test_asr_source_stores_audio_at_its_rate_and_transcripts(tmp_path):
  from sslax.data import sources
  _corpus(tmp_path, ['Hello there.', 'World'])
  split = sources.open_split(f'asr:{tmp_path}', 'train', data_dir=str(tmp_path / 'tfds'))
  assert len(split) == 2 and int(split[1]['sample_rate']) == 16000
  assert split[1]['audio'].shape == (8000,)
  assert asr_data.transcripts(str(tmp_path), 'train') == ['hello there', 'world']


def test_transcripts_of_a_folder_that_is_gone_say_so(tmp_path):
  gone = tmp_path / 'gone'
  with pytest.raises(errors.DataNotFoundError, match=rf'asr:{gone}: {gone} holds no <split>.tsv'):
    asr_data.transcripts(str(gone), 'train')


@pytest.mark.parametrize('option', ['warmup_steps', 'freeze_steps'])
def test_steps_beyond_the_fine_tune_are_config_errors_naming_the_key(option):
  # Were ValueErrors: a traceback after pretraining instead of the one-line error.
  train = {'audio': np.zeros((8, 160), np.float32), 'audio_len': np.full(8, 160, np.int32)}
  text = ['hello'] * 8
  with pytest.raises(errors.ConfigError,
                     match=rf'config\.evals\.speech\.{option}=100 must be in \[0, '):
    asr.evaluate(None, None, None, train, text, train, text, epochs=1.0, batch_size=4,
                 learning_rate=1e-3, key='config.evals.speech', **{option: 100})


def test_greedy_decoding_collapses_repeats_then_drops_blanks():
  a, b, c = (1 + asr_data.ALPHABET.index(x) for x in 'abc')
  path = [a, a, 0, a, b, b, 0, 0, c, c, a]
  logits = np.eye(asr.VOCAB)[path][None]
  mask = np.ones((1, len(path)), bool)
  mask[0, -1] = False   # a padded frame is never decoded
  assert asr.greedy_decode(logits, mask) == ['aabc']


def test_error_rates_come_from_jiwer():
  rates = asr.error_rates(['the cat sat', 'on'], ['the bat sat', ''])
  assert rates['wer'] == pytest.approx(2 / 4)   # one substitution, one deletion, 4 words
  assert rates['cer'] == pytest.approx(3 / 13)  # 1 substitution + 2 deletions, 13 characters


def _method_and_batch(method_name='masked_audio'):
  from sslax.configs import cpc_ljspeech
  from sslax.configs import masked_audio_ljspeech
  config = {'masked_audio': masked_audio_ljspeech, 'cpc': cpc_ljspeech}[method_name].get_config(
      'smoke')
  config.data.clip_seconds = 1.0
  config.model.max_frames = 64
  method = methods.get(method_name)(config)
  rng = np.random.default_rng(0)
  audio = rng.normal(0, 0.1, (8, 8000)).astype(np.float32)
  audio_len = np.array([8000, 7000, 6000, 5000, 8000, 4000, 7500, 6500], np.int32)
  labels, paddings = asr.encode(['hello', 'ab', 'ctc', 'a b', 'loss', 'x', 'yes', 'no'])
  batch = {'audio': audio, 'audio_len': audio_len, 'labels': labels, 'paddings': paddings}
  params = method.init(jax.random.PRNGKey(0), batch)[0]
  params = jax.tree.map(lambda x: getattr(x, 'value', x), params,
                        is_leaf=lambda x: hasattr(x, 'value'))
  head = {'w_DxV': 0.1 * jax.random.normal(jax.random.PRNGKey(1), (32, asr.VOCAB)),
          'b_V': jnp.zeros(asr.VOCAB)}
  return config, method, {'encoder': params, 'head': head}, batch


def _loss(method):
  def loss(variables, batch):
    logits, mask = asr.frame_logits(variables, {}, batch, method.embed_sequence)
    return asr.ctc_loss(logits, mask, batch['labels'], batch['paddings'])
  return loss


def test_ctc_head_loss_decreases_on_one_batch():
  _, method, variables, batch = _method_and_batch()
  loss = jax.jit(jax.value_and_grad(_loss(method)))
  tx = optax.adam(3e-3)
  opt_state = tx.init(variables)
  values = []
  for _ in range(30):
    value, grads = loss(variables, batch)
    updates, opt_state = tx.update(grads, opt_state)
    variables = optax.apply_updates(variables, updates)
    values.append(float(value))
  assert np.isfinite(values).all() and values[-1] < 0.5 * values[0]


def test_ctc_loss_on_eight_devices_equals_one():
  config, method, variables, batch = _method_and_batch()
  out = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.make_mesh(config.mesh, devices)
    fn = jax.jit(jax.value_and_grad(_loss(method)),
                 in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)))
    out.append(jax.device_get(fn(variables, sharding.to_global(batch, mesh))))
  (l1, g1), (l8, g8) = out
  assert len(jax.devices()) == 8 and np.isfinite(l1)
  np.testing.assert_allclose(l8, l1, rtol=1e-5)
  # Gradients up to ~0.5 summed over 8 shards in another order: float32 noise ~1e-6 absolute.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g8, g1)


@pytest.mark.parametrize('method_name', ['masked_audio', 'cpc'])
def test_cut_batches_give_every_real_frame_the_same_logits(method_name):
  """Cutting a batch's padding (length buckets) must not change any real frame: the
  bidirectional encoder's attention and convolutions, and the causal one's, never read it."""
  config, method, variables, batch = _method_and_batch(method_name)
  frames = asr.Frames(int(config.audio.n_fft), int(config.audio.hop), buckets=8)
  batch = {**batch, 'audio_len': batch['audio_len'] // 2}   # at most half the clip is real
  cut = frames.cut(batch)
  assert cut['audio'].shape[1] < batch['audio'].shape[1]
  full_logits, full_mask = asr.frame_logits(variables, {}, batch, method.embed_sequence)
  cut_logits, cut_mask = asr.frame_logits(variables, {}, cut, method.embed_sequence)
  width = cut_logits.shape[1]
  assert not np.asarray(full_mask)[:, width:].any()   # every real frame survives the cut
  np.testing.assert_array_equal(cut_mask, np.asarray(full_mask)[:, :width])
  real = np.asarray(cut_mask)
  np.testing.assert_allclose(np.asarray(cut_logits)[real],
                             np.asarray(full_logits)[:, :width][real], rtol=1e-5, atol=1e-5)


def test_frames_count_real_frames_and_round_the_cut_up_to_a_bucket():
  from sslax.augment import audio as audio_aug
  frames = asr.Frames(n_fft=200, hop=160, buckets=5)
  lens = np.array([0, 1, 99, 100, 101, 260, 261, 8000, 80800])
  mask = audio_aug.frame_mask(jnp.asarray(lens), 505, 200, 160)
  np.testing.assert_array_equal(frames.real(lens), np.asarray(mask).sum(1))
  audio = np.zeros((2, 80800), np.float32)   # 10.1 s at 8 kHz: 504 frames, buckets of 101
  for longest, kept in ((8000, 101), (16260, 101), (16261, 202), (64000, 404), (80800, 504)):
    cut = frames.cut({'audio': audio, 'audio_len': np.array([100, longest])})
    # All 504 frames: the batch as it was (its last 120 samples, read by no frame, kept).
    assert cut['audio'].shape[1] == (80800 if kept == 504 else 200 + (kept - 1) * 160)
  assert asr.Frames(200, 160, 0).cut({'audio': audio, 'audio_len': np.array([1, 2])})[
      'audio'].shape == audio.shape


def test_length_sorted_order_covers_each_epoch_and_batches_similar_lengths():
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 1000, 64)
  order = asr.length_sorted_order(lengths, 8, np.random.default_rng(1), pool_batches=8)
  for _ in range(3):   # a pool of 8 batches of 8 is one epoch of these 64 clips
    batches = [next(order) for _ in range(8)]
    assert all(b.shape == (8,) for b in batches)
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(64))
    # Sorted within the pool: the batches' length ranges do not interleave.
    spans = sorted((lengths[b].min(), lengths[b].max()) for b in batches)
    assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:]))
  # The pool's batches come in random order, not shortest first, and change every epoch.
  firsts = [lengths[next(order)].min() for _ in range(8)]
  assert firsts != sorted(firsts)


def test_transcribe_in_length_order_returns_clips_in_their_own_order():
  """Each clip's fake logits spell a letter chosen by its length, so a transcript put back
  in the wrong place would show."""
  lens = np.array([7000, 900, 4000, 8000, 300, 2500, 6000, 100, 5000, 3000, 8000])
  audio = {'audio': np.zeros((len(lens), 8000), np.float32), 'audio_len': lens}
  shapes = []

  def logits_fn(variables, model_state, batch):
    del variables, model_state
    shapes.append(batch['audio'].shape)
    letters = 1 + (np.asarray(batch['audio_len']) // 100) % 26
    return np.eye(asr.VOCAB)[letters][:, None], np.ones((len(letters), 1), bool)

  want = [asr_data.ALPHABET[(n // 100) % 26] for n in lens]
  plain = asr.transcribe(logits_fn, None, None, audio, batch_size=4)
  cut = asr.transcribe(logits_fn, None, None, audio, batch_size=4,
                       frames=asr.Frames(200, 160, buckets=4))
  assert plain == want and cut == want
  assert shapes[:3] == [(4, 8000)] * 3 and shapes[3][1] < 8000   # shortest clips first


def test_freeze_steps_train_the_head_alone_then_both():
  _, method, variables, batch = _method_and_batch()
  lr, wd = 3e-3, 0.01
  tx, step, _ = asr._compiled(method.embed_sequence, lr, wd, 8, 2, 3)
  opt_state = tx.init(variables)
  v = variables
  ones = jax.tree.map(jnp.ones_like, variables)
  for t in range(3):   # frozen: AdamW's weight decay must not move the encoder either
    if t == 2:   # the last frozen step's rate: 0 for the encoder whatever its gradient
      assert not any(np.asarray(u).any() for u in
                     jax.tree.leaves(tx.update(ones, opt_state, v)[0]['encoder']))
    v, opt_state, _ = step(v, opt_state, {}, batch, True)
  same = jax.tree.map(lambda a, b: bool((np.asarray(a) == np.asarray(b)).all()),
                      v['encoder'], variables['encoder'])
  assert all(jax.tree.leaves(same))
  assert not np.array_equal(v['head']['w_DxV'], variables['head']['w_DxV'])
  # From step freeze_steps on, the encoder's gradients move it (the optimiser alone: a second
  # compiled step would double the test's time).
  updates = tx.update(ones, opt_state, v)[0]
  assert all(bool((np.asarray(u) != 0).all()) for u in jax.tree.leaves(updates['encoder']))
  # Without freezing, the two AdamWs are the single AdamW over all the weights they replaced
  # (same gradients in: Adam's first step divides by |g|, so gradients computed by two
  # programs would differ wherever g is near 0). No warmup: its first rate, 0, hides all.
  tx0 = asr._compiled(method.embed_sequence, lr, wd, 8, 0, 0)[0]
  single = optax.adamw(lr, weight_decay=wd)
  grads = jax.grad(_loss(method))(variables, batch)
  got, _ = tx0.update(grads, tx0.init(variables), variables)
  want, _ = single.update(grads, single.init(variables), variables)
  assert np.abs(got['head']['w_DxV']).max() > 0
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12), got, want)


def test_asr_features_statistics_on_known_frames():
  """experiments/asr_features.py's numbers on frames whose answers are known; padded frames
  (garbage here) never count."""
  import sys
  from tests.conftest import REPO
  sys.path.insert(0, str(REPO / 'experiments'))
  import asr_features
  rng = np.random.default_rng(0)
  mask = np.zeros((2, 400), bool)
  mask[0, :300], mask[1, :250] = True, True
  garbage = lambda h: np.where(mask[..., None], h, 1e6 * rng.normal(size=h.shape))  # noqa: E731
  # The same vector in every frame of a clip: no change over time, neighbours identical.
  still = garbage(np.repeat(rng.normal(size=(2, 1, 8)), 400, axis=1))
  stats = asr_features.frame_stats(still, mask)
  assert stats['within_clip_std'] < 1e-9 and abs(stats['neighbour_cosine'] - 1) < 1e-9
  # The sign flips every frame: neighbours opposite; all frames on one line: rank 1.
  flip = garbage(rng.normal(size=(2, 1, 8)) * (-1.0) ** np.arange(400)[None, :, None])
  stats = asr_features.frame_stats(flip, mask)
  assert abs(stats['neighbour_cosine'] + 1) < 1e-9 and stats['participation_rank'] < 2.5
  # Independent isotropic frames: neighbours unrelated, spread over most of the 8 directions.
  noise = garbage(rng.normal(size=(2, 400, 8)))
  stats = asr_features.frame_stats(noise, mask)
  assert abs(stats['neighbour_cosine']) < 0.05 and stats['participation_rank'] > 7
  assert abs(stats['within_clip_std'] - 1) < 0.1
