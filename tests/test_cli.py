"""User errors on the command line: one line on stderr, exit status 2, no traceback unless
asked for; every other exception keeps its traceback. All cases fail before anything
compiles or any data set is built, so each costs only the interpreter's start."""
import json
import os
import pathlib
import subprocess
import sys

import ml_collections
import pytest

from sslax import cli
from sslax import config_base
from sslax import errors
from sslax import validate

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(args, env=None):
  return subprocess.run([sys.executable, *args], cwd=REPO, env={**os.environ, **(env or {})},
                        capture_output=True, text=True, timeout=120)


def _main(tmp_path, *extra, env=None):
  return _run(['-m', 'sslax.main', '--config', 'configs/simclr_digits.py:smoke',
               '--workdir', str(tmp_path / 'run'), f'--config.data.data_dir={tmp_path}/tfds',
               *extra], env)


def _squad_main(tmp_path, *extra):
  """sslax.main on configs/mlm_squad.py:smoke with a one-question SQuAD file of tmp_path."""
  squad_file = tmp_path / 'squad.json'
  squad_file.write_text(json.dumps({'version': '1.1', 'data': [{'title': 't', 'paragraphs': [
      {'context': 'Paris is in France.', 'qas': [
          {'id': 'q0', 'question': 'Where is Paris?',
           'answers': [{'text': 'France', 'answer_start': 12}]}]}]}]}))
  return _run(['-m', 'sslax.main', '--config', 'configs/mlm_squad.py:smoke',
               '--workdir', str(tmp_path / 'run'), f'--config.data.data_dir={tmp_path}/tfds',
               f'--config.data.source=squad:{squad_file}',
               f'--config.eval.source=squad:{squad_file}', *extra])


def _one_line_error(result, *needles):
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
  assert ': error: ' in lines[0]
  for needle in needles:
    assert needle in lines[0], (needle, lines[0])
  return lines[0]


def test_main_names_the_closest_key_for_a_typo(tmp_path):
  line = _one_line_error(_main(tmp_path, '--config.optim.learnig_rate=0.1'),
                         "Unknown config key 'optim.learnig_rate'")
  assert line.endswith("did you mean 'optim.learning_rate'?")


def test_main_reports_a_bad_value_caught_by_validation(tmp_path):
  _one_line_error(_main(tmp_path, '--config.total_steps=0'), 'config.total_steps=0')


def test_main_refuses_a_negative_learning_rate(tmp_path):
  line = _one_line_error(_main(tmp_path, '--config.optim.learning_rate=-1'),
                         'config.optim.learning_rate=-1', 'must be > 0')
  assert '--config.optim.learning_rate' in line   # the fix names the flag
  assert not (tmp_path / 'run').exists()   # refused before the workdir was made


def test_main_and_evaluate_report_a_workdir_that_is_a_file(tmp_path):
  file = tmp_path / 'run'
  file.write_text('not a directory')
  _one_line_error(_main(tmp_path), f"--workdir='{file}'", 'Fix:')
  assert not (tmp_path / 'tfds').exists()   # failed before building any data
  _one_line_error(_run(['-m', 'sslax.evaluate', f'--workdir={file}']), str(file), 'is a file')


def test_main_reports_a_missing_data_path(tmp_path):
  missing = tmp_path / 'no_such_folder'
  _one_line_error(_main(tmp_path, f'--config.data.source=folder:{missing}'),
                  'data.source=', str(missing))
  assert not (tmp_path / 'tfds').exists()   # failed before building anything


def test_main_reports_a_missing_squad_or_asr_path(tmp_path):
  # These two schemes raised a bare FileNotFoundError: a traceback instead of one line.
  missing = tmp_path / 'no_such_folder'
  for scheme in ('squad', 'asr'):
    _one_line_error(_main(tmp_path, f'--config.eval.source={scheme}:{missing}'),
                    f"eval.source='{scheme}:{missing}'", str(missing), 'Fix:')
  # An evaluator's own source, checked with the evaluator's options before training.
  _one_line_error(_squad_main(tmp_path, f'--config.evals.qa.source=squad:{missing}'),
                  f"evals.qa.source='squad:{missing}'", 'Fix:')
  assert not (tmp_path / 'tfds').exists()   # failed before building anything


def test_main_reports_a_bad_qa_option(tmp_path):
  # sequence_tasks.check raised ValueError: a traceback from validation, before training.
  _one_line_error(_squad_main(tmp_path, '--config.evals.qa.val_fraction=1.5'),
                  'config.evals.qa.val_fraction=1.5', 'must be in (0, 1)')


def test_verbose_flag_and_environment_variable_bring_the_traceback_back(tmp_path):
  for result in (_main(tmp_path, '--config.total_steps=0', '--verbose'),
                 _main(tmp_path, '--config.total_steps=0', env={cli.ENV_VERBOSE: '1'})):
    assert result.returncode == 2
    assert 'Traceback' in result.stderr and 'ConfigError' in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith('sslax.main: error: ')


def test_evaluate_reports_a_workdir_without_config_and_an_unknown_key(tmp_path):
  _one_line_error(_run(['-m', 'sslax.evaluate', f'--workdir={tmp_path}']),
                  'config.json', str(tmp_path))
  config = config_base.base()
  config.method = 'simclr'
  (tmp_path / 'config.json').write_text(config.to_json_best_effort())
  line = _one_line_error(_run(['-m', 'sslax.evaluate', f'--workdir={tmp_path}',
                               '--config.evals.knn.kk=3']), "'evals.knn.kk'")
  assert line.endswith("did you mean 'evals.knn.k'?")


def test_only_user_errors_lose_their_traceback():
  program = ('import sys; from sslax import cli, errors\n'
             'def main(argv):\n'
             '  raise (errors.DataError if argv[1:] == ["user"] else ValueError)("bad")\n'
             'cli.run(main)')
  user = _run(['-c', program, 'user'])
  assert _one_line_error(user, 'bad')
  bug = _run(['-c', program, 'bug'])
  assert bug.returncode == 1 and 'Traceback' in bug.stderr and 'ValueError: bad' in bug.stderr


def test_check_overrides_accepts_known_paths_and_names_the_nearest():
  config = ml_collections.ConfigDict({'optim': {'learning_rate': 0.1, 'name': 'adamw'},
                                      'model': {'widths': (8, 16)}, 'flag': False})
  cli.check_overrides(config, ['prog', '--config.optim.learning_rate=1', '--noconfig.flag',
                               '--config.model.widths[0]=4', '--config.optim', '--other=1'])
  with pytest.raises(errors.ConfigError, match=r"'optim.nmae'.*did you mean 'optim.name'\?"):
    cli.check_overrides(config, ['prog', '--config.optim.nmae=sgd'])
  with pytest.raises(errors.ConfigError, match=r"'flag.x'"):   # a leaf has no keys
    cli.check_overrides(config, ['prog', '--config.flag.x=1'])
  with pytest.raises(errors.ConfigError, match=r"the top level has \['flag', 'model', 'optim'\]"):
    cli.check_overrides(config, ['prog', '--config.zzzzzz=1'])


@pytest.mark.parametrize('key, value', [
    ('total_steps', 0), ('optim.name', 'adamx'), ('nan_policy', 'ignore'),
    ('mesh.data', 3), ('data.source', 'fold:x'), ('eval.source', 'folder:/no/such/dir'),
    ('eval.max_test_examples', -1), ('evals.knn.type', 'knnn'), ('method', 'simclrr'),
    ('optim.learning_rate', 0.0), ('optim.weight_decay', -1e-4), ('optim.warmup_steps', -1),
    ('optim.end_lr_fraction', 2.0), ('log_every', 0), ('checkpoint.every_steps', 0),
    ('eval.batch_size', 0), ('eval.batch_size', -8), ('eval.num_seeds', 0),
    ('simclr.temperature', 0.0), ('evals.knn.temperature', -0.07),
])
def test_every_validation_error_is_a_one_line_user_error(key, value):
  from sslax.configs import simclr_digits   # pylint: disable=import-outside-toplevel
  config = simclr_digits.get_config('smoke')
  node = config
  *parents, leaf = key.split('.')
  for part in parents:
    node = node[part]
  node[leaf] = value
  with pytest.raises(errors.UserError) as raised:
    validate.check(config, num_devices=1, num_processes=1)
  assert '\n' not in str(raised.value) and key.split('.')[-1] in str(raised.value)
