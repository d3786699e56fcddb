"""The training loop the sequence-head fine-tunes (qa, asr) share with fine_tune.py's idea:
train for a number of steps, score a held-out part of train every `every` steps and after
the last, and keep the weights of the best held-out score (ties: the earlier step), so the
test split is scored once, at that point, for pretrained and random-init encoders alike.
"""
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tqdm

from sslax.evaluators import fine_tune


def train(step: Callable, variables: Any, opt_state: Any, data: Mapping[str, np.ndarray], *,
          batch_size: int, steps: int, every: int, validate: Callable[[Any], float],
          seed: int, order: Iterator[np.ndarray] | None = None, progress: str = ''
          ) -> tuple[Any, int, float, list[float]]:
  """(best variables, best step, its held-out score, training losses).

  step(variables, opt_state, batch) -> (variables, opt_state, loss); `validate(variables)`
  is higher-is-better. Minibatches are per-epoch shuffles of `data` (fine_tune.batch_order)
  unless `order` yields the index batches. `progress`: the description of a bar over the
  steps, showing the best held-out score so far ('': no bar).
  """
  if order is None:
    n = len(next(iter(data.values())))
    order = fine_tune.batch_order(n, batch_size, np.random.default_rng(seed))
  best, losses = None, []
  with tqdm.tqdm(total=steps, desc=progress, leave=False, dynamic_ncols=True,
                 disable=not progress) as bar:
    for t in range(1, steps + 1):
      idx = next(order)
      variables, opt_state, loss = step(variables, opt_state,
                                        {k: v[idx] for k, v in data.items()})
      losses.append(float(loss))
      if t % every == 0 or t == steps:
        value = validate(variables)
        if best is None or value > best[2]:
          best = (variables, t, value)
        bar.set_postfix(best_held_out=f'{best[2]:.4f}')   # once per held-out score
      bar.update()
  return best[0], best[1], best[2], losses
