"""The code's shape as docs/DESIGN.md states it: one-way layers (import-linter's contracts in
.importlinter), no import inside a function to dodge a cycle, small files and functions."""
import ast
import os
import pathlib
import subprocess
import sys


ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'sslax'
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 100
# A function may exceed MAX_FUNCTION_LINES only with this comment right above it, saying why.
LONG_FUNCTION_MARK = '# Long function:'
# A command (nothing imports it, so no cycle can hide there) may defer an import for its
# start-up time, on a line that says so.
COMMANDS = ('main.py', 'evaluate.py', 'embed.py', 'export.py', 'preflight.py')
DEFERRED_MARK = '# deferred:'


def _sources() -> list[pathlib.Path]:
  return sorted(PACKAGE.rglob('*.py'))


def test_import_linter_contracts_hold():
  # Its command line in a child process (in-process, it closes the streams pytest captures);
  # grimp finds sslax on the path, the repository root here.
  lint = pathlib.Path(sys.executable).parent / 'lint-imports'
  out = subprocess.run([str(lint), '--config', str(ROOT / '.importlinter'), '--no-cache'],
                       cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, 'PYTHONPATH': str(ROOT)})
  assert out.returncode == 0, out.stdout + out.stderr
  assert 'BROKEN' not in out.stdout and 'KEPT' in out.stdout, out.stdout


def _function_level_sslax_imports(tree: ast.AST) -> list[tuple[int, str]]:
  found = []
  for node in ast.walk(tree):
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      continue
    for inner in ast.walk(node):
      if isinstance(inner, ast.Import):
        names = [a.name for a in inner.names]
      elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
        names = [inner.module]
      else:
        continue
      found += [(inner.lineno, n) for n in names if n == 'sslax' or n.startswith('sslax.')]
  return found


def test_no_sslax_import_inside_a_function():
  # Such an import is how a cycle hides from the layers contract; optional third-party
  # packages (sentencepiece, ...) may still be imported where they are used.
  offenders = []
  for path in _sources():
    lines = path.read_text().splitlines()
    for line, name in _function_level_sslax_imports(ast.parse('\n'.join(lines))):
      deferred = path.parent == PACKAGE and path.name in COMMANDS and \
          DEFERRED_MARK in lines[line - 1]
      if not deferred:
        offenders.append(f'{path.relative_to(ROOT)}:{line} imports {name}')
  assert not offenders, offenders


def test_the_checker_sees_a_function_level_import():
  tree = ast.parse('import sslax.storage\ndef f():\n  from sslax import train\n  import os\n'
                   '  import sslax.data.sources\n')
  assert _function_level_sslax_imports(tree) == [(3, 'sslax'), (5, 'sslax.data.sources')]


def test_files_stay_under_the_size_guide():
  long = {str(p.relative_to(ROOT)): n for p in _sources()
          if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
  assert not long, f'over {MAX_FILE_LINES} lines (split along a seam): {long}'


def test_functions_stay_short_unless_a_comment_says_why():
  long = []
  for path in _sources():
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse('\n'.join(lines))):
      if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        continue
      length = node.end_lineno - node.lineno + 1
      first = min([node.lineno] + [d.lineno for d in node.decorator_list])
      marked = first >= 2 and lines[first - 2].strip().startswith(LONG_FUNCTION_MARK)
      if length > MAX_FUNCTION_LINES and not marked:
        long.append(f'{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)')
  assert not long, long
