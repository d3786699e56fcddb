"""Few labels: the evaluators scored again on small labelled subsets of the training split.

Self-supervision earns its keep where labels are scarce (SimCLR and BYOL report ImageNet with
1% and 10% of the labels; big_vision runs few-shot probes on 1-25 examples per class), so
`config.eval.label_budgets` names budgets at which the frozen probes, kNN, fine-tuning and the
raw-input baseline are scored again beside their all-labels numbers:

- an int k >= 1: k labelled examples of every class (class-balanced);
- a float in (0, 1): that fraction of every class (stratified, at least one each).

A subset is drawn from the training labels and the seed only (config.seed + i for seed i),
so at each seed the pretrained encoder, its random initialisation and the raw-input baseline
see the same examples; the subsets of one seed are nested (1 per class inside 5 inside 25),
as every budget takes a prefix of one permutation per class. The test split is unchanged.

Hyperparameters are chosen inside the subset, never on examples the budget excludes
(linear_probe.selection_splits): the probe's L2 and the baseline's C by held-out accuracy,
by stratified k-fold cross-validation when each class has too few examples to hold one out
(2-12 per class at the default val_fraction 0.2), and fixed at the strongest regularisation
with one example per class; fine-tuning keeps its best held-out step on at least one
held-out example per class, or reports the last step with one per class.

Results are keyed '<evaluator>@<budget>/<metric>' (e.g. 'linear_probe@5/accuracy',
'raw_input/logistic@10%/accuracy'), with '_std' and '_seed<i>' over seeds as usual.
"""
from collections.abc import Sequence
import dataclasses
from typing import Any

import numpy as np

from sslax import errors
from sslax import reports

# Evaluator types scored at each budget; clustering has no labels to budget, the sequence
# and dense tasks read their own sources.
TYPES = ('knn', 'linear_probe', 'ridge', 'fine_tune')
KEY = 'config.eval.label_budgets'


@dataclasses.dataclass(frozen=True)
class Budget:
  """Labels per class (`per_class`) or a fraction of every class (`fraction`)."""
  per_class: int = 0
  fraction: float = 0.0

  @property
  def label(self) -> str:
    """The key suffix: '5' (per class) or '10%'."""
    return str(self.per_class) if self.per_class else f'{self.fraction * 100:g}%'


def _count(budget: Budget, n: int) -> int:
  """Examples a budget takes of a class (or, for regression targets, a split) of n."""
  return budget.per_class or max(1, int(round(budget.fraction * n)))


def parse(budgets: Any) -> list[Budget]:
  """config.eval.label_budgets as Budgets, or errors.ConfigError naming the key."""
  if not isinstance(budgets, (tuple, list)):
    raise errors.ConfigError(f'{KEY}={budgets!r} must be a tuple of budgets: ints >= 1 '
                             '(labels per class) or floats in (0, 1) (fractions), e.g. '
                             '(1, 5, 25) or (0.01, 0.1); () switches few-label scores off.')
  out = []
  for b in budgets:
    if isinstance(b, (bool, np.bool_)) or not isinstance(b, (int, float, np.integer,
                                                             np.floating)):
      raise errors.ConfigError(f'{KEY}: {b!r} is not a number; use ints >= 1 (labels per '
                               'class) or floats in (0, 1) (fractions of each class).')
    if float(b) == int(b) and float(b) >= 1:
      out.append(Budget(per_class=int(b)))
    elif 0 < float(b) < 1:
      out.append(Budget(fraction=float(b)))
    else:
      raise errors.ConfigError(f'{KEY}: {b!r} is neither an int >= 1 (labels per class) nor '
                               'a fraction in (0, 1).')
  labels = [b.label for b in out]
  if len(set(labels)) != len(labels):
    raise errors.ConfigError(f'{KEY}={tuple(budgets)!r} repeats a budget.')
  return out


def check(budgets: Sequence[Budget], labels_N: np.ndarray, *, regression: bool,
          what: str) -> None:
  """Each budget against the training labels of `what` (a source and its key): a per-class
  budget needs class labels and at most the smallest class's count."""
  if regression and any(b.per_class for b in budgets):
    raise errors.ConfigError(f'{KEY}: per-class budgets need class labels, but {what} holds '
                             'float regression targets; use fractions (e.g. 0.01, 0.1).')
  if regression or not budgets:
    return
  classes, counts = np.unique(np.asarray(labels_N), return_counts=True)
  too_big = [b.per_class for b in budgets if b.per_class > counts.min()]
  if too_big:
    raise errors.ConfigError(
        f'{KEY}: {too_big[0]} labels per class exceeds the smallest class of {what} (class '
        f'{classes[counts.argmin()]}: {counts.min()} training examples); lower the budget.')


def subset(labels_N: np.ndarray, budget: Budget, seed: int, *,
           regression: bool = False) -> np.ndarray:
  """Sorted indices of the budget's labelled subset of a training split.

  Classification: one permutation per class from `seed` (labels and seed only: identical for
  every encoder), of which each budget takes a prefix, so smaller budgets nest inside larger
  ones. Regression targets: a prefix of one permutation of all examples.
  """
  labels_N = np.asarray(labels_N)
  rng = np.random.default_rng(seed)
  if regression:
    order = rng.permutation(labels_N.size)
    return np.sort(order[:_count(budget, labels_N.size)])
  parts = []
  for label in np.unique(labels_N):
    members = rng.permutation(np.flatnonzero(labels_N == label))
    parts.append(members[:_count(budget, members.size)])
  return np.sort(np.concatenate(parts))


def sizes(budgets: Sequence[Budget], labels_N: np.ndarray) -> dict[str, float]:
  """Labelled examples per class with all of a training split ('labels_per_class') and at
  each budget ('labels_per_class@<budget>'; a fraction's mean over classes): the x axis of
  reports.plot_label_efficiency."""
  counts = np.unique(np.asarray(labels_N), return_counts=True)[1]
  out = {reports.PER_CLASS: float(counts.mean())}
  for b in budgets:
    n = np.mean([_count(b, c) for c in counts])
    out[f'{reports.PER_CLASS}{reports.BUDGET}{b.label}'] = float(n)
  return out
