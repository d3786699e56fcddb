"""mlm and lm end to end: smoke runs with resume, sharded == unsharded, config errors."""
import collections
import json
import runpy
import sys

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
from sslax.data import sources
from sslax.data import tokenizers
from tests.conftest import REPO, assert_fraction_of, shared_data, without_evaluation
from tests.test_train import _params, run_killed_after


def text_config(name, data_dir, **overrides):
  from sslax.configs import lm_text, mlm_text
  c = {'mlm': mlm_text, 'lm': lm_text}[name].get_config('smoke')
  c.data.data_dir = str(data_dir)
  c.progress_bar = False
  c.update_from_flattened_dict(overrides)
  return c


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('tfds')


def num_test_examples(config) -> int:
  """How many labelled examples the evaluators score: config.eval.test_split of eval.source."""
  info = sources.info(config.eval.source, data_dir=config.data.data_dir)
  size, cap = info.split_sizes[config.eval.test_split], config.eval.get('max_test_examples', 0)
  return min(size, cap) if cap else size   # smoke configs sample at most `cap` records


def test_mlm_smoke_run_resumes_to_the_same_parameters(tmp_path, data_dir, monkeypatch):
  config = text_config('mlm', data_dir)
  results = train.run(config, str(tmp_path / 'straight'))
  rows = [json.loads(l) for l in (tmp_path / 'straight' / 'metrics.jsonl').read_text().splitlines()]
  last = [r for r in rows if 'loss' in r][-1]
  for key in ('masked_token_accuracy', 'perplexity', 'loss'):
    assert np.isfinite(last[key]), key
  n = num_test_examples(config)
  for key in ('knn/accuracy', 'linear_probe/accuracy', 'random_init/knn/accuracy',
              'fine_tune/accuracy', 'random_init/fine_tune/accuracy',
              'raw_input/logistic/accuracy'):
    assert_fraction_of(results[key], n, key)
  assert results['fine_tune/best_step'] == 2   # 0.3 epochs: validation after the last step only
  straight, _ = _params(tmp_path / 'straight', config)

  # The evaluators were checked above; the resumed run only needs to train.
  run_killed_after(without_evaluation(config), tmp_path / 'resumed', monkeypatch, steps=2)
  train.run(config, str(tmp_path / 'resumed'))
  resumed, meta = _params(tmp_path / 'resumed', config)
  assert meta['step'] == 4
  chex.assert_trees_all_equal(resumed.params, straight.params, strict=True)


def test_lm_smoke_run_with_sentencepiece_stored_in_the_workdir(tmp_path, data_dir, monkeypatch,
                                                              capsys):
  config = text_config('lm', data_dir, **{'data.tokenizer': 'sentencepiece',
                                          'data.vocab_size': 400,
                                          'evals.fine_tune.enabled': False})   # mlm's runs it
  results = train.run(config, str(tmp_path))
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  last = [r for r in rows if 'loss' in r][-1]
  assert last['step'] == 4 and np.isfinite(last['next_token_accuracy'])
  # Four small steps from an initialisation whose logits are nearly equal (tied embeddings of
  # scale 0.02 against unit-scale features): perplexity is still about the vocabulary size
  # (log within 0.3). A model scoring another vocabulary (bytes: 262, log 0.42 away) or
  # counting PAD targets (easy to predict) is far off it.
  assert abs(np.log(last['perplexity']) - np.log(400)) < 0.3, last
  assert_fraction_of(results['linear_probe/accuracy'], num_test_examples(config), 'probe')
  # The vocabulary was trained into the workdir; the model's embedding table is its size, and
  # config.json keeps tokenizer_dir='' so a moved workdir still finds its own model.
  assert (tmp_path / 'tokenizer' / 'spm.model').exists()
  assert json.loads((tmp_path / 'config.json').read_text())['data']['tokenizer_dir'] == ''
  prepared = tokenizers.prepare(config, str(tmp_path), train_if_missing=False)
  params, _ = _params(tmp_path, prepared)
  assert params.params['token_embed']['embedding'].shape[0] == (
      tokenizers.make(prepared.data).vocab_size)

  # experiments/text_heldout.py restores the run with its own vocabulary and scores the test
  # split against the unigram baseline.
  capsys.readouterr()
  monkeypatch.setattr(sys, 'argv', ['text_heldout.py', '--workdir', str(tmp_path)])
  runpy.run_path(str(REPO / 'experiments' / 'text_heldout.py'), run_name='__main__')
  held_out = json.loads(capsys.readouterr().out)
  assert held_out['step'] == 4 and held_out['split'] == 'test' and held_out['sequences'] > 0
  # (That a trained model beats the baseline is tests/test_learning_text.py's.) The baseline
  # against a Counter over the same token windows: the train split's most frequent real
  # token, and its share of the held-out split's real tokens.
  def real_tokens(split):
    tokens = readers.Records(prepared.data.source, split, data_dir=str(data_dir), in_memory=True,
                             transform=fetch.record_transform(prepared.data)).take(
                                  slice(None))['tokens']
    special = tokenizers.make(prepared.data).NUM_SPECIAL
    return [int(t) for t in tokens.ravel() if t >= special]
  top, _ = collections.Counter(real_tokens('train')).most_common(1)[0]
  test_tokens = real_tokens('test')
  assert held_out['unigram_token'] == tokenizers.make(prepared.data).decode(np.array([top]))
  assert held_out['unigram_baseline_accuracy'] == pytest.approx(
      test_tokens.count(top) / len(test_tokens), rel=1e-12)



def test_mlm_sst2_smoke_pretrains_on_the_unlabelled_tsv_sentences(tmp_path, data_dir, monkeypatch,
                                                                   capsys):
  """configs/mlm_sst2.py: a labelled tsv: source feeds pretraining as plain text (labels
  unused), its SentencePiece vocabulary is trained on that train split, and both encoders
  are scored on SST-2."""
  from sslax.configs import mlm_sst2
  config = mlm_sst2.get_config('smoke')
  config.data.source = config.eval.source = f'tsv:{shared_data("sst2")}'
  config.data.data_dir, config.progress_bar = str(data_dir), False
  config.evals.fine_tune.enabled = False   # the mlm smoke test runs it
  results = train.run(config, str(tmp_path))
  meta = json.loads((tmp_path / 'tokenizer' / tokenizers.SPM_META).read_text())
  assert (meta['source'], meta['train_split']) == (config.data.source, 'train[:2000]')
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  last = [r for r in rows if 'loss' in r][-1]
  assert last['step'] == 4 and 0.0 < last['masked_fraction'] < 0.3
  n = num_test_examples(config)
  for prefix in ('', 'random_init/'):
    assert_fraction_of(results[f'{prefix}linear_probe/accuracy'], n, prefix + 'probe')
  # experiments/fine_tune_curve.py restores this workdir and scores a learning curve.
  out = tmp_path / 'curve.json'
  monkeypatch.setattr(sys, 'argv', [
      'fine_tune_curve.py', '--workdir', str(tmp_path), '--learning_rate', '1e-3',
      '--steps', '3', '--score_at', '0,1', '--seeds', '2',
      '--json', str(out)])
  runpy.run_path(str(REPO / 'experiments' / 'fine_tune_curve.py'), run_name='__main__')
  curve = json.loads(out.read_text())
  assert sorted(curve) == ['pretrained', 'random_init'] and len(curve['pretrained']) == 2
  assert all(sorted(r) == ['0', '1', '3'] for runs in curve.values() for r in runs)
  # The curve script reads the whole test split, not the smoke config's sample of it.
  whole = sources.info(config.eval.source, data_dir=config.data.data_dir).split_sizes[
      config.eval.test_split]
  for v in (v for runs in curve.values() for r in runs for v in r.values()):
    assert_fraction_of(v, whole, 'curve accuracy')
  assert '| pretrained |' in capsys.readouterr().out


# mlm: its masking draws per-example keys, the part sharding could break; lm: its shifted
# targets and PAD weights over the global batch. Loss, gradients and one whole train step.
@pytest.mark.parametrize('name', ['mlm', 'lm'])
def test_eight_devices_give_the_one_device_loss_gradients_and_step(name, data_dir):
  config = text_config(name, data_dir, **{'optim.warmup_steps': 0})   # step 0 has lr > 0
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  state = train.make_init(method, tx, train.sample_batch(config), config.seed)()
  records = readers.Records(config.data.source, 'train', data_dir=str(data_dir), in_memory=False,
                            transform=fetch.record_transform(config.data))
  local = records.take(np.arange(config.batch_size))
  # Some PAD so the weighting of real tokens over the global batch matters.
  local['tokens'][::3, -5:] = 0
  key = jax.random.PRNGKey(3)

  step = train.make_train_step(method, tx, lr)

  def loss_grads_and_step(state, batch):   # one program per device count: compiles once
    value_and_grads = jax.value_and_grad(
        lambda p: method.loss(p, state.model_state, state.extra, batch, key)[0])(state.params)
    new_state, metrics = step(state, batch)
    return value_and_grads, new_state.params, metrics['loss']
  outputs = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.make_mesh(config.mesh, devices)
    fn = jax.jit(loss_grads_and_step, in_shardings=(sharding.replicated(mesh),
                                                    sharding.batch_sharding(mesh)))
    outputs.append(jax.device_get(fn(state, sharding.to_global(local, mesh))))
  ((l1, g1), p1, m1), ((l8, g8), p8, m8) = outputs
  np.testing.assert_allclose(l8, l1, rtol=1e-5)
  np.testing.assert_allclose(m8, m1, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g8, g1)
  # Adam divides by |g|: where a gradient is rounding noise (e.g. attention key biases, which
  # softmax ignores) the update is noise-sized too, so compare where the gradient is signal.
  signal = jax.tree.map(lambda g: np.abs(g) > 1e-7, g1)
  assert np.mean(np.concatenate([s.ravel() for s in jax.tree.leaves(signal)])) > 0.9
  jax.tree.map(lambda a, b, s: np.testing.assert_allclose(a[s], b[s], rtol=1e-4, atol=1e-6),
               p8, p1, signal)
  # The step moved the parameters (so equal parameters are not equal initial ones).
  assert max(float(np.abs(a - b).max()) for a, b in
             zip(jax.tree.leaves(p1), jax.tree.leaves(jax.device_get(state.params)))) > 1e-4


@pytest.mark.parametrize('overrides, match', [
    ({'data.seq_len': 40}, r'config.data.seq_len=40 exceeds config.model.max_len=32'),
    ({'data.tokenizer': 'bpe'}, r"config.data.tokenizer='bpe' is unknown"),
    ({'data.source': 'builtin:digits'}, r"config.method='mlm' needs token ids"),
    ({'model.num_heads': 3}, r'config.model.width=32 is not divisible by config.model.num_heads=3'),
    ({'data.pack_sequences': 2, 'online_probe.enabled': True},
     r'config.data.pack_sequences=2 packs several labelled records into one row'),
])
def test_bad_text_configs_name_the_key(tmp_path, data_dir, overrides, match):
  with pytest.raises(ValueError, match=match):
    train.run(text_config('mlm', data_dir, **overrides), str(tmp_path))
  assert not (tmp_path / 'checkpoints').exists()
