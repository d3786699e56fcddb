"""The command line as a user runs it: run, rerun (resume), overrides, bad overrides."""
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _main(workdir, data_dir, *extra):
  cmd = [sys.executable, '-m', 'sslax.main', '--config', 'configs/simclr_digits.py:smoke',
         '--workdir', str(workdir), f'--config.data.data_dir={data_dir}',
         '--config.progress_bar=False', *extra]
  # Not the tests' 8 devices: one, and the smoke config's own fast_compile flags.
  env = {**os.environ, 'XLA_FLAGS': ''}
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_cli_trains_then_resumes_and_applies_overrides(tmp_path):
  data_dir = tmp_path / 'tfds'
  first = _main(tmp_path / 'run', data_dir, '--config.total_steps=2')
  assert first.returncode == 0, first.stderr[-3000:]
  assert 'knn/accuracy' in first.stdout
  assert json.loads((tmp_path / 'run' / 'config.json').read_text())['total_steps'] == 2

  # Same workdir, longer run: resumes at step 2 instead of starting over.
  second = _main(tmp_path / 'run', data_dir, '--config.total_steps=4')
  assert second.returncode == 0, second.stderr[-3000:]
  assert 'Resuming from step 2' in second.stdout
  steps = [json.loads(l)['step'] for l in (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()
           if 'loss' in json.loads(l)]
  assert steps == [2, 4]
  assert json.loads((tmp_path / 'run' / 'results.json').read_text())['step'] == 4


def test_cli_rejects_unknown_override_key(tmp_path):
  bad = _main(tmp_path / 'run', tmp_path / 'tfds', '--config.totl_steps=3')
  assert bad.returncode != 0
  assert 'totl_steps' in bad.stderr


def test_fast_compile_sets_the_flags_unless_a_level_is_given(monkeypatch):
  import ml_collections
  from sslax import cli
  on = ml_collections.ConfigDict({'fast_compile': True})
  monkeypatch.setenv('XLA_FLAGS', '--xla_dump_to=/tmp/x')
  cli.fast_compile(on)
  assert os.environ['XLA_FLAGS'] == f'--xla_dump_to=/tmp/x {cli.FAST_COMPILE_FLAGS}'
  for flag in ('--xla_backend_optimization_level=0', '--xla_cpu_use_fusion_emitters=false'):
    assert flag in cli.FAST_COMPILE_FLAGS
  # A level the user chose wins; fast_compile off changes nothing.
  monkeypatch.setenv('XLA_FLAGS', '--xla_backend_optimization_level=2')
  cli.fast_compile(on)
  assert os.environ['XLA_FLAGS'] == '--xla_backend_optimization_level=2'
  monkeypatch.setenv('XLA_FLAGS', '')
  cli.fast_compile(ml_collections.ConfigDict({'fast_compile': False}))
  assert os.environ['XLA_FLAGS'] == ''
