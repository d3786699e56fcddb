"""Checks of the image ops' static keyword arguments (Python numbers, at trace time), shared by the
single ops and the view composition so that errors name the argument the caller passed."""
import math
from collections.abc import Sequence


def check_range(name: str, value: float, low: float = 0.0, high: float = 1.0) -> None:
  """Raises ValueError naming `name` unless low <= value <= high."""
  if not low <= float(value) <= high:
    raise ValueError(f'{name} must be in [{low}, {high}], got {value!r}.')


def check_pair(name: str, pair: Sequence[float], *, high: float = math.inf) -> tuple[float, float]:
  """Checks that pair is (low, upper) with 0 < low <= upper <= high; returns it as floats."""
  try:
    low, upper = (float(v) for v in pair)
  except (TypeError, ValueError):
    raise ValueError(f'{name} must be a pair (low, high), got {pair!r}.') from None
  if not 0.0 < low <= upper <= high:
    bound = '' if math.isinf(high) else f' <= {high}'
    raise ValueError(f'{name} must satisfy 0 < low <= high{bound}, got {pair!r}.')
  return low, upper
