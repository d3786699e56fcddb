"""Errors a user causes and can fix: a config value, a data path, malformed data, a workdir
another run holds.

The command lines (sslax/cli.py) print these as one line and exit with status 2; every
other exception keeps its traceback, because it is a bug to report, not a setting to change.
A ValueError from deep inside JAX or NumPy is therefore never mistaken for a typo.

Each class still derives from the built-in exception its raise sites used before
(ValueError, FileNotFoundError), so callers and tests that catch those keep working.
Messages name the config key or path and the fix, on one line.
"""


class UserError(Exception):
  """Base of the errors that the command lines report without a traceback."""


class ConfigError(UserError, ValueError):
  """A config key or value (or a command-line flag) that cannot work."""


class DataError(UserError, ValueError):
  """Data that exists but cannot be read as the config says (format, labels, splits)."""


class DataNotFoundError(UserError, FileNotFoundError):
  """A path named by the config or the command line that does not exist."""


class WorkdirLockedError(UserError):
  """Another run holds the workdir's lock (sslax/workdir_lock.py): one writer per workdir."""
