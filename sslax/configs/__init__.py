"""The experiment configs that ship with sslax, by name; any other config file by its path.

  from sslax import configs
  configs.list_configs()                        # ['apc_audio', ..., 'paper/simclr_r50', ...]
  config = configs.get_config('simclr_digits', 'smoke')
  config = configs.get_config('paper/mae_vitb16:smoke')
  config = configs.get_config('my_experiment.py')   # a file, as `--config my_experiment.py`

A packaged config is a module of this package with a `get_config(arg='')` function; modules
without one (common_images, paper/imagenet, microscopy) are helpers the configs share. Its
name is its path below this folder without `.py`: `simclr_digits`, `paper/simclr_r50` (the
dotted `paper.simclr_r50` is accepted too). In a clone, `configs/` at the repository root is
a link to this folder, so `--config configs/NAME.py` and `--config NAME` load the same code.

This module stays light (no JAX): listing reads the files' syntax, and only the config that
is asked for is imported.
"""
import ast
import difflib
import importlib
import importlib.util
import pathlib
import types

import ml_collections

from sslax import errors

_ROOT = pathlib.Path(__file__).resolve().parent


def _defines_get_config(file: pathlib.Path) -> bool:
  """Whether `file` defines a top-level get_config (read, not imported: importing a config
  imports JAX)."""
  tree = ast.parse(file.read_text(encoding='utf-8'), filename=str(file))
  return any(isinstance(node, ast.FunctionDef) and node.name == 'get_config'
             for node in tree.body)


def list_configs() -> list[str]:
  """The names of every packaged config, sorted: 'simclr_digits', 'paper/simclr_r50', ...

  Each is a module here that defines `get_config`; helper modules are left out.
  """
  names = []
  for file in _ROOT.rglob('*.py'):
    parts = file.relative_to(_ROOT).with_suffix('').parts
    if any(p.startswith('_') for p in parts) or not _defines_get_config(file):
      continue
    names.append('/'.join(parts))
  return sorted(names)


def _split(name_or_path: str, arg: str) -> tuple[str, str]:
  """'NAME:ARG' (the command line's form) -> (NAME, ARG), as config_flags splits it."""
  if ':' not in name_or_path:
    return name_or_path, arg
  name, _, inline = name_or_path.partition(':')
  if arg and inline != arg:
    raise errors.ConfigError(f'get_config({name_or_path!r}, {arg!r}): give the argument once, '
                             f'either as {name}:ARG or as arg=ARG.')
  return name, inline


def _normalise(name: str) -> str:
  """'paper.simclr_r50', 'paper/simclr_r50.py', 'configs/paper/simclr_r50' -> 'paper/simclr_r50'."""
  name = name.removesuffix('.py').removeprefix('configs/')
  return name.replace('.', '/')


def config_file(name: str) -> pathlib.Path | None:
  """The file of the packaged config `name` (any form `get_config` takes); None if there is
  none."""
  normal = _normalise(name)
  if normal not in list_configs():
    return None
  return _ROOT.joinpath(*normal.split('/')).with_suffix('.py')


def suggest(name: str) -> str:
  """What to tell a user whose `name` is no packaged config: the closest names, and how to list
  them."""
  names = list_configs()
  close = difflib.get_close_matches(_normalise(name), names, n=3, cutoff=0.5)
  found = ('did you mean ' + ' or '.join(repr(c) for c in close) + '?') if close else \
      f'packaged configs include {names[:4]}.'
  return f'{found} sslax.configs.list_configs() lists them; a config file is passed by its path.'


def unknown(name: str) -> errors.ConfigError:
  """The error for a name that is neither a file nor a packaged config."""
  return errors.ConfigError(f'No config {name!r}: no such file and no packaged config of that '
                            f'name; {suggest(name)}')


def _load_file(file: str) -> types.ModuleType:
  """Executes a config file as its own module, as ml_collections' config_flags does (not
  entered in sys.modules: loading two files leaves nothing behind)."""
  spec = importlib.util.spec_from_file_location('sslax_config_file', file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(name_or_path: str, arg: str = '') -> ml_collections.ConfigDict:
  """The config that a packaged name or a config file gives for `arg`.

  Args:
    name_or_path: a packaged config ('simclr_digits', 'paper/simclr_r50', 'paper.simclr_r50';
      `list_configs()` names them all) or the path of any config file ('configs/x.py',
      '/abs/my_config.py'); 'NAME:ARG' as on the command line works too. An existing file
      wins over a packaged name; a missing 'configs/NAME.py' (the clone's link to this
      folder, absent where sslax is installed) is the packaged NAME.
    arg: get_config's argument, e.g. 'smoke'; '' calls `get_config()` with none, as
      `--config FILE` does.

  Raises:
    sslax.errors.ConfigError: an unknown name or a missing file (naming the closest packaged
      names), or an argument the config refuses.
  """
  name, arg = _split(name_or_path, arg)
  if pathlib.Path(name).is_file():
    module = _load_file(name)
  else:
    file = config_file(name)
    if file is None:
      raise unknown(name)
    dotted = '.'.join(file.relative_to(_ROOT).with_suffix('').parts)
    module = importlib.import_module(f'{__name__}.{dotted}')
  return module.get_config(arg) if arg else module.get_config()
