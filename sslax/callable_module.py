"""Modules that are also the public function of their name: `sslax.train(config, workdir)`.

`sslax.train`, `sslax.evaluate` and `sslax.export` are modules (the trainer, and the
`python -m sslax.evaluate` / `python -m sslax.export` commands) and the public API's functions
of the same names. A package attribute cannot be both a function and a submodule: importing
a submodule rebinds the package's attribute to the module, so `from sslax import evaluate` in
one place would silently turn `sslax.evaluate(...)` elsewhere into "module is not callable".
Instead each of those modules is made callable, forwarding to its public function (Python
allows assigning a module's `__class__` to a ModuleType subclass), so both readings hold.
"""
from collections.abc import Callable
import inspect
import sys
import types
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
  """Makes `sys.modules[module_name](...)` call `function(...)`."""
  module = sys.modules[module_name]

  class CallableModule(types.ModuleType):
    __doc__ = module.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
      return function(*args, **kwargs)

  CallableModule.__call__.__doc__ = function.__doc__
  # help(sslax.train) and inspect show the function's parameters (`self` is dropped there).
  signature = inspect.signature(function)
  self_parameter = inspect.Parameter('self', inspect.Parameter.POSITIONAL_ONLY)
  CallableModule.__call__.__signature__ = signature.replace(
      parameters=[self_parameter, *signature.parameters.values()])
  module.__class__ = CallableModule

