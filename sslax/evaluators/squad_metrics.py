"""SQuAD v1.1 exact match and F1 (Rajpurkar et al. 2016), with the official normalisation.

Both prediction and gold answer are normalised as the official v1.1 evaluation script does:
lower case, ASCII punctuation (Python's `string.punctuation`) removed, the articles a / an /
the removed as whole words, and whitespace collapsed. EM is 1 when the normalised strings are
equal; F1 is the harmonic mean of precision and recall of the bag of whitespace tokens
(counted with multiplicity). Each question takes its best score over all gold answers, and
the data set score is the mean over questions. Scores are fractions in [0, 1] (the official
script prints them x100).
"""
from collections import Counter
from collections.abc import Sequence
import re
import string

_ARTICLES = re.compile(r'\b(a|an|the)\b')
_PUNCTUATION = set(string.punctuation)


def normalize(text: str) -> str:
  text = ''.join(c for c in text.lower() if c not in _PUNCTUATION)
  return ' '.join(_ARTICLES.sub(' ', text).split())


def exact_match(prediction: str, gold: str) -> float:
  return float(normalize(prediction) == normalize(gold))


def f1(prediction: str, gold: str) -> float:
  pred, ref = normalize(prediction).split(), normalize(gold).split()
  common = sum((Counter(pred) & Counter(ref)).values())
  if common == 0:   # also when either side normalises to nothing
    return 0.0
  precision, recall = common / len(pred), common / len(ref)
  return 2 * precision * recall / (precision + recall)


def score(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
  """{'exact_match', 'f1'}: means over questions of the best score over each one's answers."""
  if len(predictions) != len(golds) or not golds:
    raise ValueError(f'{len(predictions)} predictions for {len(golds)} questions.')
  em = [max(exact_match(p, g) for g in gs) for p, gs in zip(predictions, golds)]
  f = [max(f1(p, g) for g in gs) for p, gs in zip(predictions, golds)]
  return {'exact_match': sum(em) / len(em), 'f1': sum(f) / len(f)}
