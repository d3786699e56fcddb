"""sslax: self-supervised pretraining in JAX/Flax (README.md, docs/DESIGN.md).

The public Python API (each name has its own docstring):

  config = sslax.get_config('simclr_digits', 'smoke')   # a packaged config, or a file path
  sslax.list_configs()                                   # the packaged config names
  sslax.methods.available()                              # the pretext methods
  results = sslax.train(config, workdir)                 # pretrain (or resume), then evaluate
  results = sslax.evaluate(workdir, evals=['knn'])       # evaluators on a saved checkpoint
  sslax.export(workdir, out_dir)                         # safetensors + StableHLO embed
  encoder = sslax.load(workdir_or_export)                # encoder.embed(raw inputs) -> [N, D]

Names are imported on first use (PEP 562), so that `import sslax.<module>` stays light: the
package's `__init__` runs before every submodule, and most of them need neither the trainer
nor the evaluators (tests also set XLA flags before JAX starts its backend).
"""
import importlib
from typing import Any

from sslax import malloc

# Before any import starts a thread (sslax/malloc.py): XLA's CPU buffers reused in place.
malloc.tune()

__version__ = '0.1.0'

# Public name -> (module, attribute; None: the module itself, which for train, evaluate and
# export is callable, sslax/callable_module.py).
_API = {
    'load': ('sslax.encoder', 'load'),
    'train': ('sslax.train', None),
    'evaluate': ('sslax.evaluate', None),
    'export': ('sslax.export', None),
    'get_config': ('sslax.configs', 'get_config'),
    'list_configs': ('sslax.configs', 'list_configs'),
    'methods': ('sslax.methods', None),
}
__all__ = ['__version__', *_API]


def __getattr__(name: str) -> Any:
  if name not in _API:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  module_name, attribute = _API[name]
  module = importlib.import_module(module_name)
  return module if attribute is None else getattr(module, attribute)


def __dir__() -> list[str]:
  return sorted({*globals(), *_API})
