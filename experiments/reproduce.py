"""Reruns a README result row with today's defaults and prints the new numbers beside it.

  python experiments/reproduce.py ROW [ROW ...] [--workdir_root /tmp/sslax-reproduce]
  python experiments/reproduce.py --list

Each ROW is the README's command (`sslax.main` with the row's config, then a held-out script
for the text and video rows) run in a fresh workdir, ROOT/ROW. The table printed compares every
number the README row shows (`readme`) with the rerun (`now`); a JSON copy goes to
ROOT/ROW/reproduce.json. Wall time is the whole command's. Runs on another machine may differ
in the third decimal: XLA's CPU reductions (and so 600 steps of training) depend on the
core count and vector width; `python -m sslax.evaluate` on the same checkpoint reproduces
the evaluation numbers exactly.
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR_DATA = '--config.data.data_dir=/tmp/tfds_dev'


def _probe_knn(knn: float, probe: float, random_knn: float, random_probe: float):
  return {'knn/accuracy': knn, 'linear_probe/accuracy': probe,
          'random_init/knn/accuracy': random_knn,
          'random_init/linear_probe/accuracy': random_probe}


def _cifar(method: str, values) -> dict:
  return {'config': f'configs/{method}_images.py', 'args': [CIFAR_DATA],
          'expect': _probe_knn(*values)}


def _audio(config: str, probe: float, random_probe: float, knn: float, random_knn: float):
  return {'config': f'configs/{config}.py', 'args': [],
          'expect': _probe_knn(knn, probe, random_knn, random_probe)}


# The values the docs show for every row (README.md and docs/*.md). Keep them in step.
ROWS = {
    'default': {'config': 'configs/simclr_digits.py', 'args': [], 'expect': {
        'knn/accuracy': 0.981, 'linear_probe/accuracy': 0.992, 'ridge/accuracy': 0.992,
        'clustering/nmi': 0.855, 'clustering/ari': 0.774, 'raw_input/logistic/accuracy': 0.972,
        'random_init/knn/accuracy': 0.836, 'random_init/linear_probe/accuracy': 0.892,
        'random_init/ridge/accuracy': 0.883, 'random_init/clustering/nmi': 0.342,
        'random_init/clustering/ari': 0.180,
        # Few labels (config.eval.label_budgets): 1 and 5 labelled digits per class.
        'linear_probe@1/accuracy': 0.864, 'knn@1/accuracy': 0.828,
        'random_init/linear_probe@1/accuracy': 0.411, 'random_init/knn@1/accuracy': 0.406,
        'raw_input/logistic@1/accuracy': 0.481, 'linear_probe@5/accuracy': 0.958,
        'random_init/linear_probe@5/accuracy': 0.603, 'raw_input/logistic@5/accuracy': 0.861}},
    'cifar_simclr': _cifar('simclr', (0.412, 0.454, 0.313, 0.368)),
    'cifar_byol': _cifar('byol', (0.381, 0.431, 0.332, 0.392)),
    'cifar_mocov3': _cifar('mocov3', (0.390, 0.433, 0.332, 0.392)),
    'cifar_vicreg': _cifar('vicreg', (0.405, 0.428, 0.313, 0.368)),
    'cifar_barlow': _cifar('barlow', (0.371, 0.414, 0.313, 0.368)),
    'cifar_dino': _cifar('dino', (0.357, 0.418, 0.313, 0.368)),
    'cifar_mae': _cifar('mae', (0.411, 0.518, 0.313, 0.432)),
    'audio_apc': _audio('apc_audio', 0.887, 0.857, 0.840, 0.777),
    'audio_cpc': _audio('cpc_audio', 0.907, 0.857, 0.913, 0.777),
    'audio_masked': _audio('masked_audio', 0.893, 0.813, 0.860, 0.803),
    'audio_clip': _audio('clip_contrast_audio', 0.903, 0.813, 0.870, 0.803),
    'text_mlm_shakespeare': {
        'config': 'configs/mlm_text.py',
        'args': ['--config.data.source=text:../shared/data/tinyshakespeare/input.txt'],
        'script': 'experiments/text_heldout.py',
        'expect': {'masked_token_accuracy': 0.419, 'unigram_baseline_accuracy': 0.153}},
    'text_lm_shakespeare': {
        'config': 'configs/lm_text.py',
        'args': ['--config.data.source=text:../shared/data/tinyshakespeare/input.txt'],
        'script': 'experiments/text_heldout.py',
        'expect': {'next_token_accuracy': 0.502, 'unigram_baseline_accuracy': 0.153}},
    'text_mlm_sst2': {'config': 'configs/mlm_sst2.py', 'args': [], 'expect': {
        'linear_probe/accuracy': 0.664, 'random_init/linear_probe/accuracy': 0.545,
        'knn/accuracy': 0.633, 'random_init/knn/accuracy': 0.541}},
    'video_nextframe': {'config': 'configs/nextframe_video.py', 'args': [],
                        'script': 'experiments/video_heldout.py',
                        'expect': {'next_frame_mse': 0.0262, 'copy_last_frame_mse': 0.0420}},
    'qa_squad': {'config': 'configs/mlm_squad.py', 'args': [], 'expect': {
        'qa/exact_match': 0.0067, 'qa/f1': 0.0222, 'random_init/qa/exact_match': 0.0067,
        'random_init/qa/f1': 0.0170}},
    # Measured before asr.length_buckets (docs/qa_asr.md): every batch padded to 10.1 s.
    'asr_ljspeech': {'config': 'configs/masked_audio_ljspeech.py',
                     'args': ['--config.evals.asr.length_buckets=0'], 'expect': {
        'asr/cer': 0.711, 'asr/wer': 0.998, 'random_init/asr/cer': 0.583,
        'random_init/asr/wer': 1.009}},
    'asr_cpc_ljspeech': {'config': 'configs/cpc_ljspeech.py', 'args': [], 'expect': {
        'asr/cer': 0.557, 'asr/wer': 1.005, 'random_init/asr/cer': 0.586,
        'random_init/asr/wer': 1.002}},
}


def _last_json(text: str) -> dict:
  """The last JSON object a script printed (the held-out scripts print one, indented)."""
  start = text.rfind('\n{')
  return json.loads(text[start + 1 if start >= 0 else text.find('{'):])


def run_row(name: str, root: str) -> dict:
  row = ROWS[name]
  workdir = os.path.join(root, name)
  if os.path.exists(os.path.join(workdir, 'config.json')):
    raise SystemExit(f'{workdir} already holds a run; remove it (or pass another '
                     '--workdir_root): a rerun must start from step 0.')
  command = [sys.executable, '-m', 'sslax.main', f'--config={row["config"]}',
             f'--workdir={workdir}', '--config.progress_bar=False', *row['args']]
  print('$', ' '.join(command[1:]), flush=True)
  start = time.time()
  subprocess.run(command, cwd=REPO, check=True)
  now = json.load(open(os.path.join(workdir, 'results.json')))
  if 'script' in row:
    script = [sys.executable, row['script'], f'--workdir={workdir}']
    print('$', ' '.join(script[1:]), flush=True)
    out = subprocess.run(script, cwd=REPO, check=True, capture_output=True, text=True).stdout
    now.update(_last_json(out))
  minutes = (time.time() - start) / 60
  report = {'row': name, 'minutes': round(minutes, 1), 'command': ' '.join(command[1:]),
            'values': {k: {'readme': v, 'now': now.get(k)} for k, v in row['expect'].items()}}
  with open(os.path.join(workdir, 'reproduce.json'), 'w') as f:
    json.dump(report, f, indent=2)
  print(f'\n{name}: {minutes:.1f} min\n| key | README | now | now - README |\n| --- | --- | --- | --- |')
  for k, v in report['values'].items():
    diff = '' if v['now'] is None else f'{v["now"] - v["readme"]:+.3f}'
    now_s = 'missing' if v['now'] is None else f'{v["now"]:.4f}'
    print(f'| {k} | {v["readme"]} | {now_s} | {diff} |')
  return report


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('rows', nargs='*', help=f'one or more of: {", ".join(ROWS)}')
  parser.add_argument('--workdir_root', default='/tmp/sslax-reproduce')
  parser.add_argument('--list', action='store_true', help='print the rows and their commands')
  args = parser.parse_args()
  if args.list or not args.rows:
    for name, row in ROWS.items():
      print(f'{name}: {row["config"]} {" ".join(row["args"])}'
            + (f' + {row["script"]}' if 'script' in row else ''))
    return
  unknown = [r for r in args.rows if r not in ROWS]
  if unknown:
    raise SystemExit(f'Unknown rows {unknown}; choose from {list(ROWS)}.')
  for name in args.rows:
    run_row(name, args.workdir_root)


if __name__ == '__main__':
  main()
