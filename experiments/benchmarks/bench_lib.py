"""Shared timing, FLOP and memory accounting for the benchmarks in this folder.

One place for what every benchmark reports, so the numbers mean the same thing everywhere:
  compile seconds   `jit(...).lower(...).compile()` wall time;
  step seconds      the median of `repeats` timed steps after `warmup` untimed ones;
  FLOPs per step    XLA's cost analysis of the compiled step (what XLA will execute,
                    including augmentation and the optimiser, not a hand count);
  peak memory       XLA's buffer assignment: arguments + outputs + temporaries - aliased
                    (donated) bytes, i.e. the live bytes the step needs at its peak;
  device peak       a measured large float32 matmul's FLOP/s when no datasheet value is known.

Scripts importing it put the repository root on sys.path first (they all import sslax).
"""
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from sslax import compile_check


def cost_flops(compiled) -> float:
  """FLOPs of one call of a compiled function, from XLA's cost analysis (nan if absent): the
  count sslax's compile check reports, one device's share of an SPMD program."""
  return compile_check.flops_of(compiled)


def peak_bytes(compiled) -> int:
  """Live bytes at the step's peak, from XLA's buffer assignment (0 if not reported)."""
  mem = compiled.memory_analysis()
  if mem is None:
    return 0
  return int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
             - mem.alias_size_in_bytes)


def time_calls(fn: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
  """Wall seconds of `repeats` calls of `fn` (which must block on its result) after `warmup`."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


def bench_step(step, state, batch, *, warmup: int, repeats: int,
               **jit_kwargs) -> dict[str, float]:
  """Compiles `step(state, batch) -> (state, metrics)` (state donated) and times it.

  The state is threaded through the calls, as in training, so donation and the optimiser's
  in-place updates are what a real run sees. `jit_kwargs` (e.g. in_shardings/out_shardings)
  go to jax.jit, so a sharded step is timed as train.run compiles it.
  """
  jitted = jax.jit(step, donate_argnums=0, **jit_kwargs)
  start = time.perf_counter()
  compiled = jitted.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  holder = [state]

  def one():
    holder[0], metrics = compiled(holder[0], batch)
    jax.block_until_ready(metrics)

  times = time_calls(one, warmup, repeats)
  return {'compile_s': compile_s, 'step_s': statistics.median(times),
          'step_s_min': min(times), 'step_s_max': max(times), 'repeats': repeats,
          'flops_per_step': cost_flops(compiled), 'peak_bytes': peak_bytes(compiled)}


def measured_peak_flops(size: int = 2048, repeats: int = 5) -> float:
  """FLOP/s of a [size, size] @ [size, size] float32 matmul on the default device (best of)."""
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
  b = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  times = time_calls(lambda: matmul(a, b).block_until_ready(), 2, repeats)
  return 2.0 * size ** 3 / min(times)


def derived(row: dict[str, float], examples: int, peak_flops: float) -> dict[str, float]:
  """Adds examples/s, achieved FLOP/s and MFU (achieved / peak) to a bench_step row."""
  achieved = row['flops_per_step'] / row['step_s']
  return {**row, 'examples_per_s': examples / row['step_s'], 'achieved_flops_per_s': achieved,
          'mfu': achieved / peak_flops if peak_flops else float('nan')}


COLUMNS = (('workload', 'workload', '{}'), ('batch', 'batch', '{}'),
           ('compile s', 'compile_s', '{:.1f}'), ('step ms', 'step_s', '{:.0f}'),
           ('ex/s', 'examples_per_s', '{:.1f}'), ('GFLOP/step', 'flops_per_step', '{:.2f}'),
           ('GFLOP/s', 'achieved_flops_per_s', '{:.1f}'), ('MFU', 'mfu', '{:.1%}'),
           ('peak MiB', 'peak_bytes', '{:.0f}'),
           ('home-made peer ms', 'homemade_step_s', '{:.0f}'),
           ('library peer ms', 'library_step_s', '{:.0f}'),
           ('library+compile ms', 'library_compile_step_s', '{:.0f}'),
           ('best peer', 'best_peer', '{}'), ('sslax/best', 'ratio', '{:.2f}'))
SCALE = {'step_s': 1e3, 'flops_per_step': 1e-9, 'achieved_flops_per_s': 1e-9,
         'peak_bytes': 2.0 ** -20, 'homemade_step_s': 1e3, 'library_step_s': 1e3,
         'library_compile_step_s': 1e3}


def markdown_table(rows: list[dict[str, Any]]) -> str:
  """One markdown row per workload; a missing value prints as '-'."""
  lines = ['| ' + ' | '.join(c[0] for c in COLUMNS) + ' |',
           '|' + '---|' * len(COLUMNS)]
  for row in rows:
    cells = []
    for _, key, fmt in COLUMNS:
      value = row.get(key)
      if value is None:
        cells.append('-')
        continue
      cells.append(fmt.format(value * SCALE[key] if key in SCALE else value))
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)
