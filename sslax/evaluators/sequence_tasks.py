"""The evaluators with a head per token or frame, `qa` and `asr`, as the Suite runs them.

They fine-tune through the method's optional `embed_sequence` (methods/__init__.py) and
read their own sources: `qa` the questions of a `squad:` source, `asr` the clips of an
`asr:` source (through the pipeline, resampled and padded as pretraining audio is) and their
transcripts. Their splits are config.eval.train_split and config.eval.test_split.
"""
from typing import Any

import ml_collections
import numpy as np

from sslax import errors
from sslax.data import fetch
from sslax.data import readers
from sslax.data import sources
from sslax.data import tokenizers
from sslax.data.builders import asr as asr_data
from sslax.data.builders import squad
from sslax.evaluators import asr
from sslax.evaluators import qa

# Required options (besides type, source, every_steps) and optional ones with defaults.
OPTIONS = {'qa': ('epochs', 'batch_size', 'learning_rate', 'weight_decay'),
           'asr': ('epochs', 'batch_size', 'learning_rate', 'weight_decay')}
# max_train/max_test: the first N questions or clips of a fixed shuffle (0: all), for CPU
# budgets and smoke runs.
_SHARED = {'warmup_steps': 0, 'val_fraction': 0.1, 'eval_every': 0, 'max_train': 0,
           'max_test': 0}
OPTIONAL = {
    # doc_stride: context tokens between window starts (BERT's document stride).
    'qa': {**_SHARED, 'doc_stride': 128, 'max_query_tokens': 64, 'max_answer_tokens': 30},
    # freeze_steps: steps that train only the CTC head; length_buckets: batches sorted by
    # length and cut to their longest clip in steps of 1/length_buckets of the padded clip
    # (0: every batch padded to the longest clip of the source). See asr.py.
    'asr': {**_SHARED, 'freeze_steps': 0, 'length_buckets': 10},
}
SCHEME = {'qa': 'squad', 'asr': 'asr'}


def check(key: str, ev: ml_collections.ConfigDict, source: str, source_key: str) -> None:
  """Options and source of one qa/asr evaluator; errors.ConfigError naming the key."""
  if not float(ev.epochs) > 0:
    raise errors.ConfigError(f'{key}.epochs={ev.epochs} must be > 0.')
  if not 0 < float(ev.get('val_fraction', 0.1)) < 1:
    raise errors.ConfigError(f'{key}.val_fraction={ev.val_fraction} must be in (0, 1): the best '
                             'step is chosen on it.')
  if ev.type == 'asr' and int(ev.get('length_buckets', 0)) < 0:
    raise errors.ConfigError(
        f'{key}.length_buckets={ev.length_buckets} must be >= 0 (0: no cut).')
  scheme = sources.parse(source, key=source_key)[0]
  if scheme != SCHEME[ev.type]:
    raise errors.ConfigError(f'{key} (type {ev.type!r}) reads a {SCHEME[ev.type]}: source, but '
                             f'{source_key}={source!r}; set {key}.source='
                             f'{SCHEME[ev.type]}:PATH.')


def _kept(n: int, limit: int) -> np.ndarray:
  """Indices of the first `limit` of a fixed (seed 0) shuffle of n items, in stored order."""
  if not limit or limit >= n:
    return np.arange(n)
  return np.sort(np.random.default_rng(0).permutation(n)[:limit])


def load(config: ml_collections.ConfigDict, ev: ml_collections.ConfigDict,
         source: str) -> dict[str, Any]:
  """The evaluator's data for both splits (read once per source by the Suite)."""
  e, path = config.eval, sources.parse(source)[1]
  limits = {**OPTIONAL[ev.type], **ev.to_dict()}
  roles = (('train', e.train_split, int(limits['max_train'])),
           ('test', e.test_split, int(limits['max_test'])))
  if ev.type == 'qa':
    out = {}
    for role, split, limit in roles:
      questions = squad.questions(path, split)
      out[role] = [questions[i] for i in _kept(len(questions), limit)]
    return out
  data_dir = config.data.data_dir or None
  clip = float(config.data.get('clip_seconds', 0))
  out = {}
  for role, split, limit in roles:
    raw = sources.open_split(source, split, data_dir=data_dir)
    kept = _kept(len(raw), limit)
    for i in kept:
      record = raw[i]
      seconds = len(record['audio']) / int(record['sample_rate'])
      if seconds > clip + 1e-6:
        raise errors.ConfigError(
            f'{path}/{record["file"]}: {seconds:.2f} s is longer than '
            f'config.data.clip_seconds={clip}, so its end would be cut from the audio but not '
            'from the transcript. Raise config.data.clip_seconds.')
    records = readers.Records(source, split, data_dir=data_dir, in_memory=True,
                              transform=fetch.record_transform(config.data))
    arrays = records.take(kept)
    texts = asr_data.transcripts(path, split)
    out[role] = ({k: arrays[k] for k in ('audio', 'audio_len')}, [texts[i] for i in kept])
  return out


def score(config: ml_collections.ConfigDict, ev: ml_collections.ConfigDict, data: dict,
          embed_sequence, encoder: tuple[Any, Any], seed: int, progress: str = '',
          key: str = '') -> tuple[dict, list]:
  """({metric: value}, test samples) of one encoder; `progress`: a bar's description; `key`:
  the evaluator's config key (config.evals.NAME), which errors name."""
  key = key or f'config.evals.{ev.type}'
  ev = {**OPTIONAL[ev.type], **ev.to_dict()}   # a run's config.json may predate an option
  common = dict(epochs=float(ev['epochs']), batch_size=int(ev['batch_size']),
                learning_rate=float(ev['learning_rate']), weight_decay=float(ev['weight_decay']),
                warmup_steps=int(ev['warmup_steps']), val_fraction=float(ev['val_fraction']),
                eval_every=int(ev['eval_every']), seed=seed, progress=progress)
  if ev['type'] == 'qa':
    return qa.evaluate(embed_sequence, *encoder, tokenizers.make(config.data), data['train'],
                       data['test'], seq_len=int(config.data.seq_len),
                       doc_stride=int(ev['doc_stride']),
                       max_query_tokens=int(ev['max_query_tokens']),
                       max_answer_tokens=int(ev['max_answer_tokens']), key=key, **common)
  (train, train_text), (test, test_text) = data['train'], data['test']
  frames = asr.Frames(int(config.audio.n_fft), int(config.audio.hop),
                      int(ev['length_buckets']))
  return asr.evaluate(embed_sequence, *encoder, train, train_text, test, test_text,
                      freeze_steps=int(ev['freeze_steps']), frames=frames, key=key, **common)
