"""The pretraining configs for qa and asr end to end on the real data: configs/mlm_squad.py,
configs/masked_audio_ljspeech.py and configs/cpc_ljspeech.py (a causal encoder) at :smoke,
then `python -m sslax.evaluate --evals NAME` with the evaluator's source set on the command
line."""
import json
import runpy
import subprocess
import sys

import pytest

from sslax import train
from sslax.evaluators import asr
from sslax.evaluators import sequence_tasks
from sslax.evaluators import squad_metrics
from tests import exact_metrics
from tests.conftest import REPO, shared_data


def _config(module, data_dir):
  import importlib
  c = importlib.import_module(f'sslax.configs.{module}').get_config('smoke')
  c.data.data_dir = str(data_dir)
  c.progress_bar = False
  return c


# asr's smoke skips the second, command-line pass: its 10 s clips make each compilation slow
# on a shared CPU, and the command-line path is the same for both (qa covers it).
@pytest.mark.parametrize('module, name, metrics, data, cli', [
    ('mlm_squad', 'qa', ('exact_match', 'f1', 'val_f1'), 'squad', True),
    ('masked_audio_ljspeech', 'asr', ('wer', 'cer', 'val_cer'), 'ljspeech', False),
    ('cpc_ljspeech', 'asr', ('wer', 'cer', 'val_cer'), 'ljspeech', False),
])
def test_smoke_pretraining_then_evaluate_by_name(tmp_path, monkeypatch, capsys, module, name,
                                                  metrics, data, cli):
  source = shared_data(data)
  config = _config(module, tmp_path / 'tfds')
  log = []
  exact_metrics.record(monkeypatch, log, sequence_tasks, 'score')
  if name == 'qa':
    exact_metrics.record(monkeypatch, log, squad_metrics, 'score')
  else:
    exact_metrics.record(monkeypatch, log, asr, 'error_rates')
  results = train.run(config, str(tmp_path / 'run'))
  _assert_scores_are_the_predictions_scores(results, log, name, config)
  assert 'raw_input/logistic/accuracy' not in results   # no labels: no raw-input baseline
  samples = (tmp_path / 'run' / 'samples.md').read_text()
  assert f'## {name}: test samples' in samples and f'## random_init/{name}' in samples
  if name == 'asr':   # experiments/asr_features.py reads what the CTC head starts from
    monkeypatch.setattr(sys, 'argv', ['asr_features.py', '--workdir', str(tmp_path / 'run'),
                                      '--clips', '4'])
    runpy.run_path(str(REPO / 'experiments' / 'asr_features.py'), run_name='__main__')
    features = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for encoder in ('pretrained', 'random_init'):
      assert 0 < features[encoder]['participation_rank'] <= config.model.width, features
      assert features[encoder]['head_grad_norm'] > 0 and features[encoder]['within_clip_std'] > 0
  if not cli:
    return
  # The same evaluator from the command line, its source named explicitly.
  scheme = {'qa': 'squad', 'asr': 'asr'}[name]
  out = subprocess.run(
      [sys.executable, '-m', 'sslax.evaluate', '--workdir', str(tmp_path / 'run'),
       '--evals', name, f'--config.evals.{name}.source={scheme}:{source}',
       '--output_dir', str(tmp_path / 'eval')],
      cwd=REPO, capture_output=True, text=True, timeout=1200)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f'| {name}/{metrics[0]} |' in out.stdout
  assert (tmp_path / 'eval' / 'samples.md').exists()


def _assert_scores_are_the_predictions_scores(results, log, name, config):
  """Each encoder's fine-tune (pretrained, then random init: train.evaluate's order) scored its
  held-out questions or clips after each epoch and the test split once, at the best held-out
  score: every recorded score is recomputed from the run's own predictions (tests/
  exact_metrics.py), the test ones must be the reported ones, and `val_*` the best held-out."""
  if name == 'qa':   # squad_metrics.score(predictions, golds)
    test_keys, val_key, better = ('exact_match', 'f1'), 'f1', max
    truth_of = lambda call: call.args[1]
    rescore = lambda call: exact_metrics.squad_scores(*call.args)
    split_truth = lambda questions: [[a for a, _ in q.answers] for q in questions]
  else:   # asr.error_rates(references, hypotheses)
    test_keys, val_key, better = ('wer', 'cer'), 'cer', min
    truth_of = lambda call: call.args[0]
    rescore = lambda call: exact_metrics.error_rates(*call.args)
    split_truth = lambda split: split[1]   # (audio arrays, transcripts)
  runs = exact_metrics.groups(log, 'sslax.evaluators.sequence_tasks.score')
  assert len(runs) == 2, [len(r) for r in runs]
  for prefix, (*held_out, test, run) in zip(('', 'random_init/'), runs):
    data = run.args[2]   # sequence_tasks.score(config, ev, data, ...)
    test_truth, train_truth = split_truth(data['test']), split_truth(data['train'])
    assert len(test_truth) == config.evals[name].max_test
    assert list(truth_of(test)) == test_truth, prefix
    if name == 'qa':   # answers are spans of their own context (the smoke's score 0 on them)
      assert all(p and p in q.context for p, q in zip(test.args[0], data['test'])), prefix
    assert held_out, 'no held-out score'
    for call in held_out:   # a part of train
      assert all(t in train_truth for t in truth_of(call)), prefix
      assert len(truth_of(call)) < len(train_truth), prefix
    for call in (*held_out, test):
      assert call.result == pytest.approx(rescore(call), rel=1e-12, abs=1e-12), call.result
    for m in test_keys:
      assert results[f'{prefix}{name}/{m}'] == test.result[m], (prefix, m)
    best = better(call.result[val_key] for call in held_out)
    assert results[f'{prefix}{name}/val_{val_key}'] == best, prefix


def test_qa_on_an_audio_method_says_what_is_missing(tmp_path):
  config = _config('mlm_squad', tmp_path / 'tfds')
  (tmp_path / 'train.tsv').write_text('path\ttext\n')
  config.evals.qa.source = f'asr:{tmp_path}'
  with pytest.raises(ValueError, match=r"config.evals.qa \(type 'qa'\) reads a squad: source"):
    from sslax.evaluators import options
    options.check(config)
