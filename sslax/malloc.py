"""glibc's malloc tuned for XLA's CPU buffers; `import sslax` applies it (sslax/__init__.py).

glibc's malloc at its defaults gives XLA's per-step buffers back to the kernel and takes them
again as fresh zeroed pages, so every step page-faults its buffers in anew:
- blocks over its mmap threshold (32 MiB at most, however it adapts) are mapped and unmapped
  on every use;
- a thread's own arena is built of 64 MiB heaps, so XLA's worker threads map any larger
  buffer every time, and trim and regrow their heaps as their tops come free.

OPTIONS: one arena (the main one, which grows without that limit), map only blocks over
1 GiB, trim only when 256 MiB are free at the top, grow 64 MiB at a time. Measured on this
2-core CPU, `python -m sslax.main --config configs/simclr_digits.py` at 150 steps (no raw-
input baseline or budgets): 5.71 M minor page faults and 24.2 s of system time (14% of the
CPU time) at glibc's defaults, 0.30 M and 6.3 s (4%) with these options; wall time the same
within the host's noise; peak RSS 1.21 -> 1.42 GB. The whole default command keeps 15%
(16% before): faults outside the train steps remain (docs/performance.md, System time).

The arena limit holds only for threads that first allocate after it is set, and importing
JAX already starts one: so the package sets it on import, before anything else. On a
many-core host one arena could contend for malloc's lock; setting any MALLOC_* variable or
GLIBC_TUNABLES (e.g. MALLOC_ARENA_MAX=8) leaves glibc's own settings in force.
"""
import ctypes
import os

# mallopt's option numbers (glibc's malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8
OPTIONS = {M_ARENA_MAX: 1, M_MMAP_THRESHOLD: 1 << 30, M_TRIM_THRESHOLD: 256 << 20,
           M_TOP_PAD: 64 << 20}


def tune() -> bool:
  """Sets OPTIONS with glibc's mallopt; whether it did. Not on other C libraries, nor when
  the environment tunes glibc's malloc itself (GLIBC_TUNABLES or a MALLOC_* variable)."""
  if ('CS_GNU_LIBC_VERSION' not in getattr(os, 'confstr_names', {})
      or 'GLIBC_TUNABLES' in os.environ or any(k.startswith('MALLOC_') for k in os.environ)):
    return False
  mallopt = ctypes.CDLL(None).mallopt
  return all(mallopt(option, value) == 1 for option, value in OPTIONS.items())
