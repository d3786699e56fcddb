"""sslax/malloc.py: with `import sslax`, freed buffers stay in the process instead of coming
back from the kernel as fresh pages. Each case runs in its own interpreter: the options are
process-wide, and this one has them already."""
import os
import subprocess
import sys

from tests import conftest

# `import sslax`, then a 48 MiB buffer (over glibc's largest adaptive mmap threshold, 32 MiB)
# written, freed and allocated again, as a train step's temporaries are: the page faults of
# the last 10 rounds, then whether the environment lets sslax tune malloc.
_ROUNDS = '''
import resource
import numpy as np
import sslax
from sslax import malloc
def faults():
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(12):
  if i == 2:
    start = faults()
  np.ones(48 << 18, np.float32).sum()
print(faults() - start, malloc.tune())
'''
PAGES = (48 << 20) // os.sysconf('SC_PAGE_SIZE')


def _rounds(**env: str) -> tuple[int, str]:
  environ = {k: v for k, v in os.environ.items()
             if k != 'GLIBC_TUNABLES' and not k.startswith('MALLOC_')}
  # numpy asks for transparent huge pages on large arrays (faults 2 MiB at a time, as the
  # host allows); 4 KiB pages make the count exact. XLA's buffers take ordinary pages.
  environ['NUMPY_MADVISE_HUGEPAGE'] = '0'
  done = subprocess.run([sys.executable, '-c', _ROUNDS], cwd=conftest.REPO,
                        env={**environ, **env}, capture_output=True, text=True, timeout=120,
                        check=True)
  faults, tuned = done.stdout.split()
  return int(faults), tuned


def test_importing_sslax_reuses_freed_buffers_without_page_faults():
  faults, tuned = _rounds()
  assert tuned == 'True'
  assert faults < PAGES // 10, faults          # the same pages, round after round


def test_the_environments_own_malloc_settings_win():
  faults, tuned = _rounds(GLIBC_TUNABLES='glibc.malloc.check=0')
  assert tuned == 'False'
  assert faults >= 10 * PAGES * 0.9, faults    # glibc's defaults: every round maps anew
  assert _rounds(MALLOC_ARENA_MAX='8')[1] == 'False'
