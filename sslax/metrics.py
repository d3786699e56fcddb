"""Where training metrics go: metrics.jsonl, TensorBoard events, a progress bar.

Only process 0 writes; every process may call the writer. The workdir may be gs://
(sslax/storage.py): each row is appended by opening and closing metrics.jsonl, so an object
store shows it at once.
"""
import json
import math
import time
from typing import Any

import jax
import tqdm

from sslax import storage


class Writer:

  def __init__(self, workdir: str, *, total_steps: int, initial_step: int = 0,
               progress: bool = True):
    self._active = jax.process_index() == 0
    if not self._active:
      return
    root = storage.path(workdir)
    self._jsonl = root / 'metrics.jsonl'
    self._tb = storage.tensorboard_writer(root / 'tensorboard')
    self._bar = tqdm.tqdm(total=total_steps, initial=initial_step, dynamic_ncols=True,
                          disable=not progress, desc='train')

  def write(self, step: int, scalars: dict[str, Any]) -> None:
    if not self._active:
      return
    row = {'step': int(step), **{k: float(v) for k, v in scalars.items()}}
    storage.append_text(self._jsonl, json.dumps(row) + '\n')
    for k, v in row.items():
      if k != 'step' and math.isfinite(v):
        self._tb.add_scalar(k, v, global_step=step)
    self._tb.flush()
    if 'loss' in row:
      self._bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)

  def advance(self, steps: int) -> None:
    if self._active:
      self._bar.update(steps)

  def close(self) -> None:
    if self._active:
      self._bar.close()
      self._tb.close()


class Throughput:
  """Steps/s and examples/s between two log points (wall clock, after a device sync)."""

  def __init__(self, batch_size: int):
    self._batch = batch_size
    self._t, self._step = None, None

  def reset(self, step: int) -> None:
    self._t, self._step = time.perf_counter(), step

  def measure(self, step: int) -> dict[str, float]:
    now = time.perf_counter()
    if self._t is None or step == self._step:
      self.reset(step)
      return {}
    steps_per_s = (step - self._step) / (now - self._t)
    self.reset(step)
    return {'steps_per_sec': steps_per_s, 'examples_per_sec': steps_per_s * self._batch}
