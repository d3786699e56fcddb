"""sslax.configs: packaged configs by name, any config file by path, and `--config NAME` on the
command line. Nothing compiles: each config is only built."""
import importlib
import os
import pathlib
import pkgutil
import subprocess
import sys

import pytest

from sslax import configs
from sslax import errors

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_list_configs_names_every_config_module_and_no_helper():
  names = configs.list_configs()
  assert names == sorted(names) and len(names) == len(set(names))
  for expected in ('simclr_digits', 'mae_microscopy', 'paper/simclr_r50', 'paper/dino_vits16'):
    assert expected in names
  # What the listing reads from the files' syntax is what importing them gives.
  modules = [m.name for m in pkgutil.walk_packages(configs.__path__, 'sslax.configs.')
             if not m.ispkg]
  with_get_config = {m.removeprefix('sslax.configs.').replace('.', '/') for m in modules
                     if hasattr(importlib.import_module(m), 'get_config')}
  assert set(names) == with_get_config
  for helper in ('common_images', 'microscopy', 'paper/imagenet'):
    assert helper not in names


@pytest.mark.parametrize('arg', ['', 'smoke'])
def test_every_listed_config_loads_by_name_and_by_path_alike(arg):
  for name in configs.list_configs():
    config = configs.get_config(name, arg)
    assert config.method and config.total_steps > 0, name
    by_path = configs.get_config(str(REPO / 'configs' / f'{name}.py'), arg)
    assert by_path.to_dict() == config.to_dict(), name
    if arg == 'smoke':
      assert config.total_steps <= 4, name
      # Smoke runs read capped or mock splits, where a per-class budget may exceed a class
      # (48 mock ImageNet images over 1,000 classes); tests/test_few_labels.py covers budgets.
      assert tuple(config.eval.label_budgets) == (), name


def test_name_forms_and_the_inline_argument():
  expected = configs.get_config('paper/simclr_r50', 'smoke').to_dict()
  for form in ('paper.simclr_r50:smoke', 'paper/simclr_r50.py:smoke',
               'configs/paper/simclr_r50.py:smoke'):
    assert configs.get_config(form).to_dict() == expected, form
  assert configs.get_config('paper/simclr_r50:smoke', 'smoke').to_dict() == expected
  with pytest.raises(errors.ConfigError, match='give the argument once'):
    configs.get_config('simclr_digits:smoke', 'other')
  # The config's own check still refuses a bad argument.
  with pytest.raises(errors.ConfigError, match="unknown argument 'smok'"):
    configs.get_config('simclr_digits', 'smok')


def test_a_file_outside_the_package_and_a_missing_configs_path(tmp_path, monkeypatch):
  own = tmp_path / 'mine.py'
  own.write_text('from sslax.configs import simclr_digits\n\n'
                 'def get_config(arg=""):\n'
                 '  c = simclr_digits.get_config(arg)\n'
                 '  c.seed = 7\n'
                 '  return c\n')
  assert configs.get_config(str(own), 'smoke').seed == 7
  # Outside a clone there is no configs/ link: its documented paths mean the packaged config.
  monkeypatch.chdir(tmp_path)
  assert not os.path.exists('configs')
  assert configs.get_config('configs/simclr_digits.py:smoke').to_dict() == \
      configs.get_config('simclr_digits', 'smoke').to_dict()
  assert configs.config_file('simclr_digits') == \
      pathlib.Path(configs.__file__).parent / 'simclr_digits.py'
  assert configs.config_file('common_images') is None   # a helper is no config


def test_an_unknown_name_names_the_closest_and_how_to_list():
  with pytest.raises(errors.ConfigError) as e:
    configs.get_config('simclr_digit')
  message = str(e.value)
  assert "'simclr_digits'" in message and 'list_configs()' in message
  assert '\n' not in message
  with pytest.raises(errors.ConfigError, match="'paper/mocov3_vits16'"):
    configs.get_config('paper.mocov3')


def test_main_takes_a_packaged_name_outside_the_repository(tmp_path):
  """`--config NAME:ARG` loads the packaged file: a negative learning rate override is then
  refused by validation, before anything compiles (test_cli.py's case, reached by name)."""
  env = {**os.environ, 'PYTHONPATH': str(REPO)}
  common = ['--workdir', str(tmp_path / 'run'), '--config.optim.learning_rate=-1']
  result = subprocess.run(
      [sys.executable, '-m', 'sslax.main', '--config', 'simclr_digits:smoke', *common],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and 'config.optim.learning_rate=-1' in result.stderr, \
      result.stderr[-2000:]
  result = subprocess.run(
      [sys.executable, '-m', 'sslax.main', '--config=simclr_digit:smoke', *common],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and "did you mean 'simclr_digits'" in result.stderr, \
      result.stderr[-2000:]
