"""The public Python API of sslax/__init__.py: every name documented, resolvable and light
to import. The calls themselves run on real workdirs in tests/test_encoder_image.py
(evaluate, export, load) and, installed from the wheel, tests/test_wheel.py (train)."""
import inspect
import re
import subprocess
import sys
import pathlib

import sslax
from sslax import evaluate as evaluate_module
from sslax import export as export_module
from sslax import train as train_module

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_public_name_resolves_and_has_a_docstring():
  assert set(sslax.__all__) >= {'load', 'train', 'evaluate', 'export', 'get_config',
                                'list_configs', 'methods', '__version__'}
  for name in sslax.__all__:
    value = getattr(sslax, name)
    if name != '__version__':
      doc = getattr(value, '__doc__', None) or ''
      assert len(doc.split()) >= 5, name
    assert name in dir(sslax)


def test_unknown_names_raise_attribute_error():
  try:
    sslax.trian  # pylint: disable=pointless-statement
  except AttributeError as e:
    assert 'trian' in str(e)
  else:
    raise AssertionError('sslax.trian resolved')


def test_the_version_is_a_release_number():
  # The wheel's metadata takes it from here (pyproject's dynamic version; tests/test_wheel.py).
  assert re.fullmatch(r'\d+\.\d+\.\d+', sslax.__version__)


def test_modules_that_are_also_functions_stay_both():
  # `from sslax import evaluate` rebinds nothing: the module is the function.
  for module, function in ((train_module, train_module.run),
                           (evaluate_module, evaluate_module.evaluate),
                           (export_module, export_module.export)):
    assert callable(module)
    assert getattr(sslax, module.__name__.split('.')[-1]) is module
    assert type(module).__call__.__doc__ == function.__doc__
  assert "workdir" in str(inspect.signature(sslax.evaluate))


def test_importing_sslax_or_load_pulls_in_neither_trainer_nor_evaluators():
  # A fresh interpreter: the trainer and evaluators import matplotlib and the whole suite.
  code = ('import sys, sslax, sslax.encoder; '
          'print(sorted(m for m in sys.modules if m in ("sslax.train", "sslax.evaluate") '
          'or m.startswith("sslax.evaluators") or m == "matplotlib"))')
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                       check=True)
  assert out.stdout.strip() == '[]', out.stdout + out.stderr
