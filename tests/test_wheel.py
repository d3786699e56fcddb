"""The installable package: sslax's wheel is built offline, installed into a folder of its own,
and run from outside the clone, where no configs/ folder or repository is in sight: a packaged
config by name (`--config simclr_digits:smoke`), then `sslax.load(workdir).embed(...)`.

The wheel is built from a copy of the files it is made of, so the build leaves nothing
(build/, *.egg-info) in the clone. One trained step and a kNN evaluation keep the run short:
what is tested is that the installed package has everything a run reads, not what it learns.
"""
import email.parser
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
import pytest

import sslax
from sslax import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
# What pyproject.toml builds the wheel from (its readme included).
BUILD_FILES = ('pyproject.toml', 'README.md')
# The smoke run cut to one step and a kNN evaluation: the default suite's probes, clustering
# and raw-input baseline took the run from 13 to 19 s of CPU (measured).
RUN_FLAGS = ('--config.total_steps=1', '--config.eval.raw_input=False',
             '--config.progress_bar=False',
             "--config.evals={'knn': {'type': 'knn', 'source': '', 'every_steps': 0, 'k': 5, "
             "'temperature': 0.07}}")

EMBED = '''
import sys
import numpy as np
from sklearn import datasets
import sslax
print('sslax', sslax.__file__)
print('configs', 'simclr_digits' in sslax.list_configs(), sslax.__version__)
encoder = sslax.load(sys.argv[1])
images = np.round(datasets.load_digits().images[:6] * (255 / 16)).astype(np.uint8)[..., None]
features = encoder.embed(images)
print('features', features.shape, np.isfinite(features).all(), np.ptp(features, axis=0).max())
'''


def _pip(*args: str) -> None:
  """pip with this interpreter, offline: no index, no version check."""
  result = subprocess.run([sys.executable, '-m', 'pip', *args, '--no-index', '--quiet',
                           '--disable-pip-version-check'], capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


def _metadata(wheel: pathlib.Path) -> email.message.Message:
  with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
    return email.parser.Parser().parsestr(z.read(name).decode())


def _pins(requirements: pathlib.Path) -> dict[str, str]:
  """{canonical name: pinned version} of a requirements file's `name==version` lines."""
  pins = {}
  for line in requirements.read_text().splitlines():
    line = line.split('#', 1)[0].strip()
    if '==' in line:
      name, version = line.split('==')
      pins[canonicalize_name(name)] = version.strip()
  return pins


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> pathlib.Path:
  # setuptools builds wheels without the `wheel` package from 70.1 on; older ones (Python
  # 3.11's venv brings 65.5) fail offline with "invalid command 'bdist_wheel'".
  setuptools = importlib.metadata.version('setuptools')
  assert Version(setuptools) >= Version('70.1'), (
      f'setuptools {setuptools} cannot build the wheel offline: pip install -r '
      f'requirements-dev.txt (setuptools=={_pins(REPO / "requirements-dev.txt")["setuptools"]})')
  tmp = tmp_path_factory.mktemp('wheel')
  src = tmp / 'src'
  src.mkdir()
  for name in BUILD_FILES:
    shutil.copy(REPO / name, src / name)
  shutil.copytree(REPO / 'sslax', src / 'sslax',
                  ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
  _pip('wheel', str(src), '--no-deps', '--no-build-isolation', '-w', str(tmp / 'dist'))
  (built,) = (tmp / 'dist').glob('sslax-*.whl')
  return built


def test_the_wheel_holds_the_package_and_its_configs(wheel):
  with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
  tops = {n.split('/', 1)[0] for n in names}
  assert {t for t in tops if not t.endswith('.dist-info')} == {'sslax'}, tops   # no tests/
  scripts = {n.rsplit('/', 1)[-1] for n in names if n.endswith('entry_points.txt')}
  assert scripts == {'entry_points.txt'}
  with zipfile.ZipFile(wheel) as z:
    entry_points = z.read(next(n for n in names if n.endswith('entry_points.txt'))).decode()
  for command in ('train', 'evaluate', 'embed', 'export', 'preflight'):
    assert f'sslax-{command} = sslax.' in entry_points, entry_points
  for path in ('sslax/configs/__init__.py', 'sslax/configs/simclr_digits.py',
               'sslax/configs/common_images.py', 'sslax/configs/paper/__init__.py',
               'sslax/configs/paper/simclr_r50.py', 'sslax/main.py'):
    assert path in names, path
  shipped = {p.relative_to(REPO).as_posix() for p in (REPO / 'sslax').rglob('*.py')}
  assert shipped <= names, sorted(shipped - names)


def test_the_wheels_version_is_sslax_version(wheel):
  assert _metadata(wheel)['Version'] == sslax.__version__ == wheel.name.split('-')[1]


def test_requirements_satisfy_the_wheels_dependencies(wheel):
  """Every Requires-Dist holds for this environment and for requirements.txt's pins, and
  names one of those pins; the tpu extra is requirements-dev.txt's libtpu."""
  pins = _pins(REPO / 'requirements.txt')
  base, extras = set(), {}
  for text in _metadata(wheel).get_all('Requires-Dist'):
    req = Requirement(text)
    name = canonicalize_name(req.name)
    if req.marker is not None:   # `extra == "tpu"`
      extras[name] = req
      continue
    base.add(name)
    installed = importlib.metadata.version(req.name)
    assert req.specifier.contains(installed, prereleases=True), (text, installed)
    assert name in pins and req.specifier.contains(pins[name], prereleases=True), (text, pins)
  assert base == set(pins), sorted(base ^ set(pins))
  libtpu = _pins(REPO / 'requirements-dev.txt')['libtpu']
  assert str(extras['libtpu'].specifier) == f'=={libtpu}'
  assert extras['libtpu'].marker.evaluate({'extra': 'tpu'})


def test_installed_wheel_trains_a_packaged_config_and_loads_it_outside_the_repo(
    wheel, tmp_path):
  site = tmp_path / 'site'
  _pip('install', '--no-deps', '--target', str(site), str(wheel))
  outside = tmp_path / 'elsewhere'   # the working directory: no configs/, no sslax/
  outside.mkdir()
  env = {**os.environ, 'PYTHONPATH': str(site),
         # One CPU device, as a user's laptop has (the tests' 8 fake devices stay here).
         'XLA_FLAGS': cli.FAST_COMPILE_FLAGS}
  workdir = tmp_path / 'run'

  def run(*args: str) -> str:
    command = list(args) if args[0].startswith('/') else [sys.executable, *args]
    result = subprocess.run(command, cwd=outside, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout

  # The console script pip installed (pyproject's [project.scripts]) runs sslax.main.
  run(str(site / 'bin' / 'sslax-train'), '--config', 'simclr_digits:smoke', '--workdir',
      str(workdir), f'--config.data.data_dir={tmp_path / "tfds"}', *RUN_FLAGS)
  assert (workdir / 'checkpoints' / '1').is_dir()
  assert 'knn/accuracy' in (workdir / 'results.md').read_text()

  lines = dict(line.split(' ', 1) for line in run('-c', EMBED, str(workdir)).splitlines()
               if line.startswith(('sslax ', 'features ', 'configs ')))
  assert lines['configs'] == f'True {_metadata(wheel)["Version"]}', lines
  # The installed copy, not the clone (whose sslax/ is not on the path from `outside`).
  assert pathlib.Path(lines['sslax']).is_relative_to(site), lines
  shape, finite, spread = lines['features'].rsplit(' ', 2)
  assert shape == '(6, 16)' and finite == 'True', lines   # widths (8, 16): 16 features
  assert float(spread) > 0, lines   # six different digits, not one constant vector
