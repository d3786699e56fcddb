"""`squad:PATH`: extractive question answering in the SQuAD v1.1 JSON format.

PATH is one file (the `train` split), a path with `{split}` (`squad/{split}.json`), or a
folder whose *.json files are the splits (`squad/` → train.json, test.json).

Two readers of one parse:
- pretraining reads the TFDS data set built here: one record per distinct paragraph
  (`text`, raw UTF-8), unlabelled, so an MLM can pretrain on the contexts alone;
- the `qa` evaluator reads `questions(path, split)`: every question with its context and
  gold answers (text and character start).

Every answer is checked when the source is first read: `context[answer_start:]` must begin
with the answer text, else the error names the file, the line and the question id. (SQuAD
files are often one line; the line is still right, and the id finds the question.)
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterator

import tensorflow_datasets as tfds

from sslax import errors
from sslax.data.builders import local
from sslax.data.builders import split_paths


@dataclasses.dataclass(frozen=True)
class Question:
  id: str
  question: str
  context: str
  answers: tuple[tuple[str, int], ...]   # (text, character start in context), >= 1


def split_files(path: str) -> dict[str, str]:
  """{split: absolute file} for a file, a `{split}` pattern or a folder of <split>.json."""
  return split_paths.from_path(path, '.json')


def fingerprint(path: str) -> str:
  return split_paths.fingerprint(split_files(path))


def _line_of(raw: str, qid: str) -> int:
  """The 1-based line of question `qid`'s id in the file's text (1 if it is not found)."""
  at = raw.find(json.dumps(qid))
  return raw.count('\n', 0, at) + 1 if at >= 0 else 1


def read(path: str) -> list[Question]:
  """Every question of one SQuAD v1.1 file; errors name the file, line, question and fix."""
  with open(path, 'rb') as f:
    data = f.read()
  try:
    raw = data.decode('utf-8')
    doc = json.loads(raw)
  except UnicodeDecodeError as e:
    raise errors.DataError(
        f'{path} is not UTF-8 (byte {e.start}). Fix: convert it to UTF-8.') from None
  except json.JSONDecodeError as e:
    raise errors.DataError(f'{path}:{e.lineno}: not JSON ({e.msg}, column {e.colno}). Fix: a SQuAD '
                           'v1.1 file is one JSON object {"data": [...]}.') from None
  if not isinstance(doc, dict) or not isinstance(doc.get('data'), list):
    raise errors.DataError(f'{path}:1: no top-level "data" list; expected SQuAD v1.1 JSON '
                           '{"version": "1.1", "data": [{"title", "paragraphs": [...]}]}.')
  out = []
  for i, article in enumerate(doc['data']):
    for j, paragraph in enumerate(article.get('paragraphs', [])):
      context = paragraph.get('context', '')
      for k, qa in enumerate(paragraph.get('qas', [])):
        qid = str(qa.get('id', f'data[{i}].paragraphs[{j}].qas[{k}]'))
        # Only for an error message: finding the line scans the file, once per question
        # this would make reading quadratic (11 s of the SQuAD smoke run).
        where = lambda: f'{path}:{_line_of(raw, qid)}: question {qid!r}'  # noqa: E731
        if not context.strip():
          raise errors.DataError(
              f'{where()} has an empty context. Fix: give its paragraph a context.')
        if not qa.get('answers'):
          raise errors.DataError(f'{where()} has no answers; SQuAD v1.1 questions need at least one '
                                 '(v2.0 unanswerable questions are not supported).')
        answers = []
        for a, answer in enumerate(qa['answers']):
          text, start = answer.get('text', ''), answer.get('answer_start', -1)
          if not text or not isinstance(start, int) or context[start:start + len(text)] != text:
            found = context[start:start + len(text)] if isinstance(start, int) else None
            raise errors.DataError(
                f'{where()}, answer {a}: answer_start={start!r} points at {found!r} in the '
                f'context, not at the answer text {text!r}. Fix: answer_start must be the '
                'character offset (not byte, not token) of the answer in its context.')
          answers.append((text, start))
        out.append(Question(qid, str(qa.get('question', '')), context, tuple(answers)))
  if not out:
    raise errors.DataError(f'{path} holds no questions.')
  return out


def questions(path: str, split: str) -> list[Question]:
  """The questions of `split` of `squad:path` (what the qa evaluator scores)."""
  files = split_files(path)
  if not files:
    # Checked before training (sources.check), but a folder can go between that and the
    # evaluation after pretraining; "no split, available: (none)" would hide that it is gone.
    raise errors.DataNotFoundError(
        f'squad:{path}: {os.path.abspath(os.path.expanduser(path))} names no .json file. Fix: '
        'point the source at squad:FILE.json, squad:DIR/{split}.json, or squad:DIR holding '
        'train.json/test.json.')
  if split not in files:
    raise errors.DataError(f'squad:{path} has no split {split!r}; available: {", ".join(files)}.')
  return read(files[split])


def make_config(path: str) -> local.PathConfig:
  files = split_files(path)
  if not files:
    raise errors.DataNotFoundError(
        f'squad:{path} names no file: expected a .json file, a path with {{split}}, or a '
        'folder of <split>.json files.')
  # Distinct paragraphs in file order: several questions share one context.
  items = {split: list(dict.fromkeys(q.context for q in read(file)))
           for split, file in files.items()}
  return local.PathConfig(name=local.config_name(path), description=f'SQuAD contexts from {path}',
                          path=os.path.abspath(os.path.expanduser(path)), num_classes=None,
                          payload={'items': items})


class SslaxSquad(local.LocalBuilder):
  """The distinct context paragraphs of SQuAD files (raw UTF-8), unlabelled."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'text: one record per distinct context paragraph.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=self.builder_config.description,
        features=tfds.features.FeaturesDict({'text': tfds.features.Text()}),
        disable_shuffling=True)

  def _generate_examples(self, texts: list[str]) -> Iterator:
    for i, text in enumerate(texts):
      yield i, {'text': text}


def prepare(path: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """Builds (once per version of the files) and returns a read-only builder for `squad:path`."""
  return local.build_path(SslaxSquad, path, data_dir, fingerprint=fingerprint,
                          make_config=make_config)
