"""Every source a run reads, opened and its first record read before training starts.

Local sources are TFDS builders built on first read, checking every file as they go
(data/builders/), and evaluation data is otherwise first opened after pretraining: a
non-UTF-8 line in an eval `tsv:`, a mask missing from a `segfolder:` or an unlabelled eval
source would stop a job hours in. `check_sources` moves all of that to its start:
sslax/train.py `run()` calls it after validation and before compiling anything, and
`python -m sslax.preflight` reuses it on every worker.
"""
from collections.abc import Mapping

import ml_collections
import numpy as np

from sslax import errors
from sslax.data import sources
from sslax.data.builders import asr as asr_data
from sslax.data.builders import squad
from sslax.evaluators import options


def require_labels(source: str, key: str, info: sources.SourceInfo) -> None:
  """ConfigError unless `source` has class ids or float targets, which the frozen probes,
  fine_tune and the raw-input baseline need."""
  if not info.num_classes and not info.regression:
    raise errors.ConfigError(f'{key}={source!r} has no labels; downstream evaluation needs a '
                             'labelled source (class ids, or float regression targets).')


def _eval_uses(config: ml_collections.ConfigDict) -> list[tuple[str, str, str]]:
  """(config key, source, reader) of every evaluation source the run reads: reader is the
  evaluator type for qa/asr/dense tasks (their own readers), 'labelled' for the shared
  feature path (knn, probes, fine_tune, the raw-input baseline). config.eval.source is read
  only through these: a run whose evaluators all name their own sources never opens it."""
  uses = []
  for name in options.enabled(config):
    ev = config.evals[name]
    key = f'config.evals.{name}.source' if ev.source else 'config.eval.source'
    reader = ev.type if ev.type in options.OWN_DATA_TYPES else 'labelled'
    uses.append((key, ev.source or config.eval.source, reader))
  if config.eval.get('raw_input', True) and not sources.task_of(config.eval.source,
                                                               key='config.eval.source'):
    uses.append(('config.eval.source', config.eval.source, 'labelled'))   # the baseline's
  return uses


def _first_record(source: str, split: str, key: str, data_dir: str | None,
                  bad_files: str) -> int:
  """Opens (building it if needed) `split` of `source`, reads its first record; its length."""
  data = sources.open_split(source, split, data_dir=data_dir, bad_files=bad_files)
  if not len(data):
    raise errors.DataError(f'{key}={source!r}: split {split!r} holds no records. Fix: add '
                           'examples to it, or point the key at a source whose split has some.')
  data[0]   # decodes the stored record: a torn or stale build fails here, not hours later
  return len(data)


def check_sources(config: ml_collections.ConfigDict) -> list[str]:
  """Opens every source and split `config` will read (data.source's train split; eval.source
  and each enabled evaluator's source, train and test splits) and reads the first record of
  each, plus the questions (qa) or transcripts (asr) those evaluators parse themselves.

  Returns one line per source and split read, for a report. Raises the first
  errors.UserError (bad file, missing split, unlabelled eval source) as the run would later.
  """
  d, e = config.data, config.eval
  data_dir, bad_files = d.data_dir or None, d.get('bad_files', 'error')
  lines, seen = [], set()

  def read(key: str, source: str, split: str) -> None:
    if (key, source, split) not in seen:   # per key: each shows in the report
      seen.add((key, source, split))
      n = _first_record(source, split, key, data_dir, bad_files)
      lines.append(f'{key}={source!r} split {split!r}: {n} records, first one read')

  read('config.data.source', d.source, d.train_split)
  checked = set()
  for key, source, reader in _eval_uses(config):
    if (source, reader) in checked:
      continue
    checked.add((source, reader))
    if reader == 'labelled':
      require_labels(source, key, sources.info(source, data_dir=data_dir, bad_files=bad_files))
    for split in (e.train_split, e.test_split):
      read(key, source, split)
      path = sources.parse(source, key=key)[1]
      if reader == 'qa':
        lines.append(f'{key}={source!r} split {split!r}: '
                     f'{len(squad.questions(path, split))} questions')
      elif reader == 'asr':
        lines.append(f'{key}={source!r} split {split!r}: '
                     f'{len(asr_data.transcripts(path, split))} transcripts')
  return lines


def check_classes(e: ml_collections.ConfigDict, source: str, key: str,
                  labels: Mapping[str, np.ndarray]) -> None:
  """Every class of the train split appears in the test split and vice versa (streamed
  splits are checked once their labels are read, with their features)."""
  labels = {s: np.unique(y) for s, y in labels.items()}
  if not np.array_equal(labels[e.train_split], labels[e.test_split]):
    raise errors.ConfigError(
        f'{key}={source!r}: the classes of split config.eval.train_split='
        f'{e.train_split!r} {labels[e.train_split].tolist()} differ from those of '
        f'config.eval.test_split={e.test_split!r} {labels[e.test_split].tolist()}; '
        'every class must appear in both splits.')
