"""What a run leaves for people: results.json, a results.md table and PNG plots.

- `results.json`: every downstream metric (fractions in [0, 1], NMI/ARI, MSE/R^2), the same
  under `random_init/`, `<key>_std` over seeds and each seed's `<key>_seed<i>` (seed
  config.seed + i) when `config.eval.num_seeds` > 1, the raw-input
  baseline under `raw_input/logistic/` (accuracy, c, val_accuracy, num_train; class labels) or
  `raw_input/ridge/` (mse, mae, r2, alpha, num_train; regression targets), and `step`.
- `results.md`: the pretrained-vs-random-init table, mean +- std [each seed], with the raw-input
  baseline's number for the same metric (accuracy, or mse/mae/r2) as a third column; with
  `config.eval.label_budgets`, a second table of the same at each few-label budget
  (`<evaluator>@<budget>/<metric>` keys, evaluators/few_labels.py) and with all labels.
- `label_efficiency.png`: test accuracy against labelled examples per class (log x), mean ±
  std over seeds, pretrained vs random init vs raw input, one panel per evaluator.
- `curves.png`: training loss, online-probe accuracy and periodic evaluations from
  metrics.jsonl, against the step.
- `samples.md` (qa, asr): a few test predictions (answers, transcripts) next to the truth,
  per encoder; also appended to results.md.
- `embedding.png`: a PCA projection of test-set features, coloured by label, for the
  pretrained and the random-init encoder side by side.
- `<name>.png` (segmentation, detection): a few test images, their true masks or boxes and
  each encoder's predicted ones side by side (`plot_masks`).

Every file goes through sslax/storage.py, so the workdir may be gs://; callers write reports
from process 0 only.
"""
from collections.abc import Mapping, Sequence
import itertools
import json
import os
import re
from typing import Any

import matplotlib
matplotlib.use('Agg')   # files only: no display on servers and CI
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sslax import storage  # noqa: E402

RANDOM = 'random_init/'
# The raw-input baseline (evaluators/raw_input.py): one number per run, not per encoder.
RAW_INPUT = 'raw_input/'
# The baseline's model: logistic regression for class labels, ridge for regression targets.
RAW_INPUT_MODELS = ('logistic', 'ridge')
# '<key>_seed<i>': the value of seed config.seed + i, beside the mean '<key>' and '<key>_std'.
SEED = '_seed'
# '<evaluator>@<budget>/<metric>': a score on a few-label subset (evaluators/few_labels.py),
# and 'labels_per_class@<budget>' (or 'labels_per_class': all of train) its size.
BUDGET = '@'
PER_CLASS = 'labels_per_class'
# The few-label table's metrics (the rest, e.g. a probe's chosen l2, stay in results.json).
BUDGET_METRICS = ('accuracy', 'r2', 'mse')
# How each few-label score chose its hyperparameters (evaluators/few_labels.py).
SELECTION_NOTE = (
    'Each subset is class-balanced and drawn per seed, the same for the three columns; '
    'hyperparameters are chosen inside it: the probe\'s L2 and the baseline\'s C on a '
    'held-out part, by k-fold cross-validation at 2-12 examples per class, or fixed at the '
    'strongest regularisation at one per class; a fine-tune keeps its best step on one '
    'held-out example per class or more, or its last step at one per class; kNN uses '
    'k = min(k, subset size).')


def over_seeds(prefix: str, per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
  """Per-seed scores as '<prefix><key>' (the mean), and with several seeds '<key>_std' and
  each seed's '<key>_seed<i>'."""
  results = {}
  for k in per_seed[0]:
    values = np.array([s[k] for s in per_seed], np.float64)
    results[prefix + k] = float(values.mean())
    if len(values) > 1:
      results[f'{prefix}{k}_std'] = float(values.std())
      # Each seed's value too: a mean and std cannot tell one failed fine-tune (an asr
      # seed left on CTC's blank plateau) from three mediocre ones.
      results.update({f'{prefix}{k}{SEED}{i}': float(v) for i, v in enumerate(values)})
  return results


def _cell(results: Mapping[str, float], key: str) -> str:
  if key not in results:
    return '-'
  std = results.get(key + '_std')
  # Step counts (a fine-tune's best_step) read as steps; a mean over seeds keeps one decimal.
  digits = 1 if key.endswith('/best_step') else 4
  seeds = [results[f'{key}{SEED}{i}'] for i in itertools.takewhile(
      lambda i: f'{key}{SEED}{i}' in results, itertools.count())]
  return (f'{results[key]:.{digits}f}' + ('' if std is None else f' ± {std:.{digits}f}')
          + (' [' + ', '.join(f'{v:.{digits}f}' for v in seeds) + ']' if seeds else ''))


def table(results: Mapping[str, Any]) -> str:
  """A markdown table: one row per metric, pretrained vs random init vs the raw-input
  baseline, whose test accuracy stands in every accuracy row (it has no other metric)."""
  keys = sorted(k for k in results if '/' in k and not k.startswith((RANDOM, RAW_INPUT))
                and not k.endswith('_std') and not re.search(f'{SEED}\\d+$', k)
                and BUDGET not in k)
  models = [m for m in RAW_INPUT_MODELS if any(k.startswith(f'{RAW_INPUT}{m}/') for k in results)]
  model = models[0] if models else RAW_INPUT_MODELS[0]
  shown = {'logistic': ('accuracy',), 'ridge': ('mse', 'mae', 'r2')}[model]
  def raw(k):
    metric = k.rsplit('/', 1)[-1]
    return _cell(results, f'{RAW_INPUT}{model}/{metric}') if metric in shown else '-'
  rows = [f'| metric | pretrained | random init | raw input ({model}) |',
          '| --- | --- | --- | --- |']
  rows += [f'| {k} | {_cell(results, k)} | {_cell(results, RANDOM + k)} | {raw(k)} |'
           for k in keys]
  return '\n'.join(rows)


def _budget_rows(results: Mapping[str, Any]) -> list[tuple[str, str, str]]:
  """(evaluator/metric, budget, key) of each few-label score and its all-labels twin, in
  budget order (smallest first, 'all' last)."""
  found = {}
  for k in results:
    m = re.fullmatch(f'([^/{BUDGET}]+){BUDGET}([^/]+)/({"|".join(BUDGET_METRICS)})', k)
    if m and not k.startswith((RANDOM, RAW_INPUT)):
      found.setdefault(f'{m[1]}/{m[3]}', []).append(m[2])
  size = lambda b: results.get(f'{PER_CLASS}{BUDGET}{b}', 0.0)
  rows = []
  for what, budgets in sorted(found.items()):
    name, metric = what.split('/')
    rows += [(what, b, f'{name}{BUDGET}{b}/{metric}') for b in sorted(budgets, key=size)]
    rows += [(what, 'all', what)] if what in results else []
  return rows


def budget_table(results: Mapping[str, Any]) -> str:
  """The few-label markdown table: each evaluator at each budget and with all labels,
  pretrained vs random init vs the raw-input baseline at the same budget; '' without
  few-label scores."""
  rows = _budget_rows(results)
  if not rows:
    return ''
  model = next((m for m in RAW_INPUT_MODELS if any(k.startswith(f'{RAW_INPUT}{m}')
                                                   for k in results)), RAW_INPUT_MODELS[0])
  def raw(b, metric):
    key = f'{RAW_INPUT}{model}' + ('' if b == 'all' else f'{BUDGET}{b}') + f'/{metric}'
    return _cell(results, key)
  def per_class(b):
    n = results.get(PER_CLASS if b == 'all' else f'{PER_CLASS}{BUDGET}{b}')
    if b.endswith('%') or b == 'all':
      return f'{b} ({n:g} per class)' if n else b
    return f'{b} per class'
  lines = ['| evaluator | labels | pretrained | random init | raw input |',
           '| --- | --- | --- | --- | --- |']
  lines += [f'| {what} | {per_class(b)} | {_cell(results, key)} | {_cell(results, RANDOM + key)} '
            f'| {raw(b, what.split("/")[1])} |' for what, b, key in rows]
  return '\n'.join(lines) + f'\n\n{SELECTION_NOTE}'


def plot_label_efficiency(results: Mapping[str, Any], path: str | os.PathLike) -> None:
  """Each classification evaluator's test accuracy against labelled examples per class (log
  x, mean ± std over seeds) for the pretrained encoder, random init and the raw input."""
  rows = [r for r in _budget_rows(results) if r[0].endswith('/accuracy')]
  panels = sorted({what for what, _, _ in rows})
  if not panels:
    return
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
  for ax, what in zip(axes[0], panels):
    points = [(b, key) for w, b, key in rows if w == what]
    xs = [results.get(PER_CLASS if b == 'all' else f'{PER_CLASS}{BUDGET}{b}', np.nan)
          for b, _ in points]
    raw = [f'{RAW_INPUT}logistic' + ('' if b == 'all' else f'{BUDGET}{b}') + '/accuracy'
           for b, _ in points]
    for label, keys in (('pretrained', [k for _, k in points]),
                        ('random init', [RANDOM + k for _, k in points]), ('raw input', raw)):
      if all(k in results for k in keys):
        ax.errorbar(xs, [results[k] for k in keys], [results.get(k + '_std', 0.0) for k in keys],
                    marker='o', capsize=3, label=label)
    ax.set_xscale('log')
    ax.set_xlabel('labelled examples per class')
    ax.set_title(what)
    ax.legend(fontsize='small')
  fig.tight_layout()
  _save(fig, path)
  plt.close(fig)


def _read_metrics(workdir: str) -> list[dict[str, float]]:
  path = storage.path(workdir) / 'metrics.jsonl'
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _save(fig, path: str | os.PathLike) -> None:
  # Through a file object: matplotlib itself only writes local paths.
  with storage.path(path).open('wb') as f:
    fig.savefig(f, format='png', dpi=100)


def plot_curves(rows: list[dict[str, float]], path: str) -> None:
  """Loss, online-probe accuracy and periodic eval accuracies against the step."""
  series = {'loss': 'training loss', 'online_probe/accuracy': 'online probe accuracy'}
  evals = sorted({k for r in rows for k in r
                  if k.startswith('eval/') and k.endswith('/accuracy') and RANDOM not in k})
  panels = [k for k in series if any(k in r for r in rows)] + (['eval'] if evals else [])
  fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5 * max(len(panels), 1), 3.5),
                           squeeze=False)
  for ax, panel in zip(axes[0], panels):
    for key in evals if panel == 'eval' else [panel]:
      points = [(r['step'], r[key]) for r in rows if key in r]
      ax.plot(*zip(*points), marker='.' if panel == 'eval' else None, label=key)
    ax.set_xlabel('step')
    ax.set_title('downstream accuracy' if panel == 'eval' else series[panel])
    if panel == 'eval':
      ax.legend(fontsize='small')
  fig.tight_layout()
  _save(fig, path)
  plt.close(fig)


def _pca_2d(x_NxD: np.ndarray) -> np.ndarray:
  """The two leading principal components [N, 2] (SVD of the centred features)."""
  centred = x_NxD - x_NxD.mean(axis=0)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  return centred @ vt[:2].T


def plot_embedding(features: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str) -> None:
  """One PCA scatter per encoder ({prefix: (feats [N, D], labels [N])}), coloured by label."""
  fig, axes = plt.subplots(1, len(features), figsize=(5 * len(features), 4.5), squeeze=False)
  for ax, (prefix, (x_NxD, y_N)) in zip(axes[0], features.items()):
    xy_Nx2 = _pca_2d(np.asarray(x_NxD, np.float64))
    points = ax.scatter(xy_Nx2[:, 0], xy_Nx2[:, 1], c=y_N, cmap='tab10', s=8)
    ax.set_title(f'{prefix.rstrip("/") or "pretrained"}: test features, PCA')
    ax.set_xticks([])
    ax.set_yticks([])
  fig.colorbar(points, ax=axes[0].tolist(), label='label')
  _save(fig, path)
  plt.close(fig)


def samples_markdown(samples: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
  """Sections '## <encoder><evaluator>: test samples', one table row per sample."""
  parts = []
  for name, rows in samples.items():
    if not rows:
      continue
    cols = list(rows[0])
    cell = lambda v: (' / '.join(map(str, v)) if isinstance(v, (list, tuple))
                      else str(v)).replace('|', '\\|').replace('\n', ' ')
    parts.append(f'## {name}: test samples\n\n| {" | ".join(cols)} |\n|'
                 + ' --- |' * len(cols) + '\n'
                 + '\n'.join(f'| {" | ".join(cell(r[c]) for c in cols)} |' for r in rows))
  return '\n\n'.join(parts)


def _overlay(ax, image: np.ndarray, mask: np.ndarray, num_classes: int) -> None:
  """The image with its class ids over it (class 0 and ignored pixels left clear)."""
  h, w = image.shape[:2]
  if mask.shape != (h, w):   # full-size masks drawn at the view's size (nearest neighbour)
    rows = np.arange(h) * mask.shape[0] // h
    cols = np.arange(w) * mask.shape[1] // w
    mask = mask[rows[:, None], cols[None, :]]
  ax.imshow(image)
  shown = np.ma.masked_where((mask == 0) | (mask >= num_classes), mask)
  ax.imshow(shown, cmap='tab10', vmin=0, vmax=9, alpha=0.5, interpolation='nearest')
  ax.set_xticks([])
  ax.set_yticks([])


def _boxes(ax, image: np.ndarray, found: Mapping[str, Any], height: int, width: int,
           limit: int | None = None, min_score: float = 0.5) -> None:
  """The image with boxes (given in its original height x width pixels), coloured by class;
  of detections, the best `limit` with a score >= `min_score` (an undertrained detector's
  many weak boxes would hide the image)."""
  ax.imshow(image)
  sy, sx = image.shape[0] / height, image.shape[1] / width
  scores = np.asarray(found.get('scores', np.ones(len(found['labels']))), np.float64)
  order = np.argsort(-scores)[:limit]
  boxes = np.asarray(found['boxes']).reshape(-1, 4)
  for (x0, y0, x1, y1), label, score in zip(boxes[order], np.asarray(found['labels'])[order],
                                            scores[order]):
    if score < min_score:
      continue
    ax.add_patch(matplotlib.patches.Rectangle((x0 * sx, y0 * sy), (x1 - x0) * sx,
                                              (y1 - y0) * sy, fill=False, linewidth=1,
                                              edgecolor=plt.cm.tab10(int(label) % 10)))
  ax.set_xticks([])
  ax.set_yticks([])


def plot_masks(pictures: Mapping[str, Mapping[str, Any]], path: str) -> None:
  """Rows of test images: image, true mask (or boxes), then the mask (or boxes: score >= 0.5,
  at most twice the true count) each encoder ({prefix: picture} of one evaluator) predicted."""
  prefixes = list(pictures)
  first = pictures[prefixes[0]]
  rows, cols = len(first['images']), 2 + len(prefixes)
  if not rows:
    return
  k = len(first['classes'])
  fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
  for r in range(rows):
    image = first['images'][r]
    axes[r][0].imshow(image)
    axes[r][0].set_xticks([])
    axes[r][0].set_yticks([])
    truth = first['truth'][r]
    if first.get('kind') == 'boxes':
      _boxes(axes[r][1], image, truth, truth['height'], truth['width'])
      for c, prefix in enumerate(prefixes):
        _boxes(axes[r][2 + c], image, pictures[prefix]['predicted'][r], truth['height'],
               truth['width'], limit=2 * len(truth['labels']))
      continue
    _overlay(axes[r][1], image, truth, k)
    for c, prefix in enumerate(prefixes):
      _overlay(axes[r][2 + c], image, pictures[prefix]['predicted'][r], k)
  titles = ['image', 'truth'] + [f'{p.rstrip("/") or "pretrained"}' for p in prefixes]
  for c, title in enumerate(titles):
    axes[0][c].set_title(title)
  fig.tight_layout()
  _save(fig, path)
  plt.close(fig)


def write(workdir: str, results: Mapping[str, Any],
          test_features: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
          metrics_dir: str | None = None,
          samples: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
          pictures: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> None:
  """results.json, results.md, curves.png (from `metrics_dir`/metrics.jsonl, default
  `workdir`), given features embedding.png, given samples samples.md, and given pictures
  ({evaluator: {prefix: picture}}) <evaluator>.png in `workdir`."""
  root = storage.path(workdir)
  root.mkdir(parents=True, exist_ok=True)
  (root / 'results.json').write_text(json.dumps(dict(results), indent=2, sort_keys=True))
  shown = samples_markdown(samples or {})
  few = budget_table(results)
  (root / 'results.md').write_text(
      f"# Results at step {results.get('step', '?')}\n\n{table(results)}\n"
      + (f'\n## Few labels\n\n{few}\n' if few else '') + (f'\n{shown}\n' if shown else ''))
  if few:
    plot_label_efficiency(results, root / 'label_efficiency.png')
  if shown:
    (root / 'samples.md').write_text(shown + '\n')
  rows = _read_metrics(metrics_dir or workdir)
  if rows:
    plot_curves(rows, root / 'curves.png')
  if test_features:
    plot_embedding(test_features, root / 'embedding.png')
  for name, by_prefix in (pictures or {}).items():
    plot_masks(by_prefix, root / f'{name}.png')
