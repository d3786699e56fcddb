"""What every sslax command line shares: user errors as one line and exit status 2.

  from sslax import cli
  ...
  if __name__ == '__main__':
    cli.run(main)

`run` is absl's `app.run` plus three things (and `tune_gc`, below):
- an `errors.UserError` (bad config value, missing or malformed data) anywhere in the
  program prints `<prog>: error: <message>` on stderr and exits 2, without a traceback;
- a flag that absl cannot parse (wrong type, missing required flag) does the same;
- an unknown `--config.<key>` override is caught before absl parses it (ml_collections would
  end in a bare AttributeError) and named with the closest existing keys;
- `--config NAME[:ARG]` names a packaged config (sslax.configs: `simclr_digits`,
  `paper/simclr_r50`) when no file NAME exists, as an installed sslax has no configs/ folder.
`--verbose` or SSLAX_VERBOSE=1 prints the traceback as well. Everything else (bugs, errors
from inside JAX) propagates unchanged. Status 2 is argparse's and most tools' usage error.
"""
from collections.abc import Callable, Iterator, Mapping, Sequence
import difflib
import gc
import glob
import os
import re
import sys
import traceback
from typing import Any

from absl import app
from absl import flags
from absl import logging
# Importing JAX starts no backend: XLA_FLAGS set after this (fast_compile, the tests'
# conftest) still apply.
import jax
import ml_collections
# The parser class of DEFINE_config_file flags (the package's __init__ does not export it).
from ml_collections.config_flags.config_flags import ConfigFileFlagParser

from sslax import configs
from sslax import errors

_VERBOSE = flags.DEFINE_bool('verbose', False, 'On a config or data error, print the '
                             'traceback too (also: environment variable SSLAX_VERBOSE=1).')
ENV_VERBOSE = 'SSLAX_VERBOSE'
EXIT_USER_ERROR = 2
# config.fast_compile's XLA flags (sslax.main sets them; the tests compile with them too):
# XLA's cheapest backend optimisation, the CPU backend's loop emitters instead of its newer
# MLIR fusion emitters, and each program's code generated as one LLVM module, not split for
# parallel codegen. They trade step speed for compile time, which is most of a smoke run.
# Measured on 2 cores, tests/test_methods_vision.py + test_vit_methods.py: 211 s of CPU
# (119 s of it XLA compiling) with the first flag alone, 129 s (70 s) with all three. For a
# run of many steps the loop emitters' code is slower: tests/test_learning_image.py's
# 150-step child at XLA's default level took 28 -> 40 s with the last two, so only
# fast_compile uses them.
FAST_COMPILE_FLAGS = ('--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false '
                      '--xla_cpu_parallel_codegen_split_count=1')


def fast_compile(config: ml_collections.ConfigDict) -> None:
  """config.fast_compile: XLA's cheapest compile (FAST_COMPILE_FLAGS) in XLA_FLAGS; call it
  before JAX starts its backend (XLA reads XLA_FLAGS once, then). A level in XLA_FLAGS wins."""
  current = os.environ.get('XLA_FLAGS', '')
  if config.get('fast_compile', False) and '--xla_backend_optimization_level' not in current:
    os.environ['XLA_FLAGS'] = f'{current} {FAST_COMPILE_FLAGS}'.strip()


# ConfigDict is no collections.abc.Mapping; config.json's nested dicts are.
_NODES = (Mapping, ml_collections.ConfigDict)


def _paths(node: Mapping[str, Any], prefix: str = '') -> Iterator[str]:
  """Every key path of a nested config, inner nodes included ('optim', 'optim.name', ...)."""
  for key, value in node.items():
    yield prefix + key
    if isinstance(value, _NODES):
      yield from _paths(value, f'{prefix}{key}.')


def _override_paths(argv: Sequence[str], name: str) -> list[str]:
  """The key paths of `--<name>.<path>[=value]` (or `--no<name>.<path>`) arguments."""
  pattern = re.compile(rf'^--?(?:no)?{re.escape(name)}\.([^=]+)')
  return [m.group(1) for m in map(pattern.match, argv) if m]


def _exists(config: Mapping[str, Any], path: str) -> bool:
  node: Any = config
  for part in re.sub(r'\[[^\]]*\]', '', path).split('.'):   # tuple indices: a[0].b
    if not isinstance(node, _NODES) or part not in node:
      return False
    node = node[part]
  return True


def check_overrides(config: Mapping[str, Any], argv: Sequence[str], name: str = 'config') -> None:
  """Raises ConfigError for the first `--<name>.<key>` in `argv` that `config` lacks, naming
  the closest existing keys (ml_collections itself ends in a bare AttributeError)."""
  for path in _override_paths(argv, name):
    if _exists(config, path):
      continue
    known = list(_paths(config))
    scored = sorted(((difflib.SequenceMatcher(None, path, k).ratio(), k) for k in known),
                    reverse=True)
    # The best match, and others only when nearly as close (a typo has one obvious fix).
    close = [k for r, k in scored[:3] if r >= max(0.6, scored[0][0] - 0.05)] if scored else []
    if close:
      hint = 'did you mean ' + ' or '.join(repr(c) for c in close) + '?'
    else:
      parent = path.rpartition('.')[0]
      siblings = sorted(k.rpartition('.')[2] for k in known if k.rpartition('.')[0] == parent)
      hint = (f'{parent or "the top level"} has {siblings}.' if siblings else
              'no config key is close; see the config file for its keys.')
    raise errors.ConfigError(f'Unknown config key {path!r} (--{name}.{path}); {hint}')


def _flag_position(argv: Sequence[str], name: str) -> tuple[int, str] | None:
  """Where `--name=V` or `--name V` holds V in argv: (index, the text before V there)."""
  for i, arg in enumerate(argv):
    for dashes in ('--', '-'):
      if arg.startswith(f'{dashes}{name}='):
        return i, f'{dashes}{name}='
      if arg == f'{dashes}{name}' and i + 1 < len(argv):
        return i + 1, ''
  return None


def flag_value(argv: Sequence[str], name: str) -> str | None:
  """The value of `--name=V` or `--name V` in argv, before absl has parsed it."""
  position = _flag_position(argv, name)
  if position is None:
    return None
  i, prefix = position
  return argv[i][len(prefix):]


def _is_config_file_flag() -> bool:
  return 'config' in flags.FLAGS and \
      isinstance(flags.FLAGS['config'].parser, ConfigFileFlagParser)


def resolve_config_name(argv: list[str]) -> list[str]:
  """argv with `--config NAME[:ARG]` of a packaged config (sslax.configs) replaced by that
  config's file, for the config-file flag to load; unchanged when NAME is an existing file or
  no packaged config (the flag then reports the missing file). Before absl parses argv."""
  value = flag_value(argv, 'config')
  if not _is_config_file_flag() or value is None:
    return argv
  name, sep, arg = value.partition(':')
  file = None if os.path.isfile(name) else configs.config_file(name)
  if file is None:
    return argv
  i, prefix = _flag_position(argv, 'config')
  return [*argv[:i], f'{prefix}{file}{sep}{arg}', *argv[i + 1:]]


def _config_file(argv: Sequence[str]) -> Mapping[str, Any] | None:
  """The config that `--config=FILE[:ARG]` names, loaded as its flag will load it; None when
  there is no such flag or it cannot load (absl then reports why while parsing)."""
  value = flag_value(argv, 'config')
  if 'config' not in flags.FLAGS or value is None:
    return None
  path = value.split(':', 1)[0]
  if _is_config_file_flag() and not os.path.isfile(path):
    # ml_collections would defer this to the first use of the config, as an OSError.
    others = glob.glob(os.path.join(os.path.dirname(path) or '.', '*.py'))
    close = difflib.get_close_matches(path, others, n=1)
    hint = f'did you mean {close[0]!r}?' if close else configs.suggest(path)
    raise errors.ConfigError(f'--config={value!r}: there is no file {path!r} '
                             f'(from {os.getcwd()}) and no packaged config of that name; {hint}')
  try:
    return flags.FLAGS['config'].parser.parse(value)
  except errors.UserError as e:
    # ml_collections re-raises a get_config error as type(e)(its traceback as text): the
    # config's own message (e.g. an unknown `:ARG`) is the one to show.
    raise e.__context__ if isinstance(e.__context__, errors.UserError) else e
  except Exception:   # pylint: disable=broad-except
    return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with a packaged config name resolved to its file, config overrides
  checked first and flag errors as UserError."""
  argv = resolve_config_name(argv)
  config = _config_file(argv)
  if config is not None:
    check_overrides(config, argv)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    raise errors.ConfigError(str(e)) from e


def verbose(argv: Sequence[str] = ()) -> bool:
  """--verbose (read from argv when absl has not parsed it yet) or SSLAX_VERBOSE=1."""
  if os.environ.get(ENV_VERBOSE, '').lower() not in ('', '0', 'false', 'no'):
    return True
  if flags.FLAGS.is_parsed():
    return _VERBOSE.value
  return any(a in ('--verbose', '-verbose', '--verbose=true', '--verbose=1') for a in argv)


def report(error: BaseException, argv: Sequence[str]) -> int:
  """Prints `error` for a user (traceback only when verbose); returns the exit status."""
  if verbose(argv):
    traceback.print_exception(error)
  spec = getattr(sys.modules['__main__'], '__spec__', None)   # python -m sslax.X: 'sslax.X'
  prog = spec.name if spec else os.path.basename(argv[0]) if argv else 'sslax'
  message = ' '.join(str(error).split())   # one line, whatever the raise site wrote
  print(f'{prog}: error: {message}', file=sys.stderr, flush=True)
  return EXIT_USER_ERROR


# Python's cyclic garbage collector at its default thresholds (700, 10, 10) starts a
# collection every 700 net allocations and a full one every ~70,000; tracing and lowering
# JAX programs allocate millions of short-lived objects, and each full pass walks the whole
# heap (JAX's, TensorFlow's, the compiled programs'): up to ~30% of the samples of a
# compile-heavy test under py-spy (tests/test_train.py on an idle CPU, one process: 71.6
# and 67.0 s at the defaults, 62.1 and 61.5 s with these thresholds). Cycles are still
# collected, 70x less often in the youngest generation; nothing sslax keeps relies on
# prompt cycle collection (device buffers are freed by reference counting).
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
  """Sets GC_THRESHOLDS for this process (the sslax commands call it first)."""
  gc.set_threshold(*GC_THRESHOLDS)


def define_distributed_flags() -> None:
  """--distributed, --coordinator_address, --num_processes, --process_id and
  --initialization_timeout: what sslax.main and sslax.preflight share (a recipe passes both
  the same flags); defined once however many of them a process imports."""
  if 'distributed' in flags.FLAGS:
    return
  flags.DEFINE_bool(
      'distributed', False, 'Call jax.distributed.initialize() with auto-detection (Cloud TPU, '
      'SLURM, ...). Implied by --coordinator_address or JAX_COORDINATOR_ADDRESS.')
  flags.DEFINE_string(
      'coordinator_address', os.environ.get('JAX_COORDINATOR_ADDRESS'),
      'host:port of process 0, for multi-process runs without auto-detection.')
  flags.DEFINE_integer(
      'num_processes', int(os.environ.get('JAX_NUM_PROCESSES', 0)) or None,
      'Number of processes.')
  flags.DEFINE_integer(
      'process_id', int(os.environ['JAX_PROCESS_ID']) if 'JAX_PROCESS_ID' in os.environ else None,
      'This process index.')
  flags.DEFINE_integer(
      'initialization_timeout', 300, 'Seconds jax.distributed.initialize waits for all processes.')


def initialize_distributed() -> None:
  """jax.distributed.initialize as the flags of define_distributed_flags ask (nothing for a
  single process); call it before any other JAX call, which would start a one-process
  backend."""
  f = flags.FLAGS
  if f.coordinator_address:
    jax.distributed.initialize(coordinator_address=f.coordinator_address,
                               num_processes=f.num_processes, process_id=f.process_id,
                               initialization_timeout=f.initialization_timeout)
  elif f.distributed:
    jax.distributed.initialize(initialization_timeout=f.initialization_timeout)


def start(argv: Sequence[str]) -> None:
  """What every command's main does first: no positional arguments; Orbax and TFDS, which log
  every file they open at INFO, quieted to WARNING unless --verbosity says otherwise."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {list(argv[1:])}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)


def run(main: Callable[[list[str]], Any], *,
        define_flags: Callable[[list[str]], None] | None = None) -> None:
  """absl's `app.run(main)` with user errors reported by `report` (exit 2).

  `define_flags(argv)` runs first, inside the same handling: for flags whose definition
  already reads the command line (a `config_flags.DEFINE_config_dict` parses its overrides
  when defined; sslax.evaluate's config comes from the workdir that argv names).
  """
  tune_gc()
  argv = list(sys.argv)

  def parser(args: list[str]) -> list[str]:
    if define_flags is not None:
      define_flags(args)
    return parse_flags(args)

  try:
    app.run(main, flags_parser=parser)
  except errors.UserError as e:
    sys.exit(report(e, argv))
