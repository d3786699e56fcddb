"""Every source a run reads is opened and its first records read before training
(sslax/evaluators/data_check.py): bad evaluation data stops a run before step 1, not after
pretraining. No test here compiles anything."""
import os
import pathlib
import subprocess
import sys

import pytest

from sslax import errors
from sslax.configs import simclr_digits
from sslax.evaluators import data_check

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> pathlib.Path:
  return tmp_path_factory.mktemp('tfds')


def _config(data_dir: pathlib.Path, **eval_sources):
  config = simclr_digits.get_config('smoke')
  config.data.data_dir = str(data_dir)
  for key, source in eval_sources.items():
    if key == 'eval':
      config.eval.source = source
    else:
      config.evals[key].source = source
  return config


def _tsv(path: pathlib.Path, rows: list[bytes]) -> pathlib.Path:
  path.write_bytes(b'sentence\tlabel\n' + b''.join(rows))
  return path


def test_reads_the_first_record_of_every_source_and_split(data_dir):
  lines = data_check.check_sources(_config(data_dir))
  # digits is the training source and eval.source: train once, then eval's train and test.
  assert [l.split(':', 1)[0] for l in lines] == [
      "config.data.source='builtin", "config.eval.source='builtin",
      "config.eval.source='builtin"], lines
  assert "split 'test'" in lines[-1] and 'first one read' in lines[-1]


def test_a_bad_per_evaluator_source_is_found(data_dir, tmp_path):
  bad = _tsv(tmp_path / 'bad.tsv', [b'fine\t0\n', b'caf\xe9\t1\n'])
  with pytest.raises(errors.DataError, match=r'bad.tsv is not UTF-8 \(byte \d+, line 3\)'):
    data_check.check_sources(_config(data_dir, ridge=f'tsv:{bad}'))


def test_a_missing_split_and_an_unlabelled_source_are_found(data_dir, tmp_path):
  (tmp_path / 'sst').mkdir()
  _tsv(tmp_path / 'sst' / 'train.tsv', [b'good\t1\n', b'bad\t0\n'])
  with pytest.raises(errors.ConfigError, match=r"has no split 'test'; available: train"):
    data_check.check_sources(_config(data_dir, knn=f'tsv:{tmp_path / "sst"}'))
  (tmp_path / 'corpus.txt').write_text('a sentence\nanother one\n')
  with pytest.raises(errors.ConfigError, match=r'config.evals.knn.source=.* has no labels'):
    data_check.check_sources(_config(data_dir, knn=f'text:{tmp_path / "corpus.txt"}'))


def test_main_stops_on_bad_eval_data_before_training(data_dir, tmp_path):
  """The issue's case through the command line: an eval tsv: with a non-UTF-8 line."""
  bad = _tsv(tmp_path / 'eval.tsv', [b'good\t1\n', b'\xff\xfe broken\t0\n'])
  workdir = tmp_path / 'run'
  result = subprocess.run(
      [sys.executable, '-m', 'sslax.main', '--config', 'configs/simclr_digits.py:smoke',
       '--workdir', str(workdir), f'--config.data.data_dir={data_dir}',
       f'--config.eval.source=tsv:{bad}', '--config.progress_bar=False'],
      cwd=REPO, env={**os.environ, 'XLA_FLAGS': ''}, capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
  assert lines[0].startswith('sslax.main: error: ') and 'eval.tsv is not UTF-8' in lines[0]
  # Stopped before step 1: nothing trained, saved or logged.
  assert not (workdir / 'checkpoints').exists() and not (workdir / 'metrics.jsonl').exists()
  assert not (workdir / 'config.json').exists()
