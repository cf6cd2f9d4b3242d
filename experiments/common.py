"""What every driver shares: error reporting and preset-aware flag overrides."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable

from absl import flags, logging

from amrjax.errors import AmrjaxError, ConfigError


def explicit_flags(names: Iterable[str], parsers: dict[str, Callable] | None = None) -> dict:
  """{name: value} for the flags the user set on the command line (not the defaults)."""
  parsers = parsers or {}
  out = {}
  for name in names:
    flag = flags.FLAGS[name]
    if flag.present:
      out[name] = parsers.get(name, lambda v: v)(flag.value)
  return out


def _parse(kind, convert, value, what):
  try:
    return convert(value)
  except (TypeError, ValueError):
    raise ConfigError(f'{what}: {value!r} is not {kind}') from None


def optional_int(value: str) -> int | None:
  """'all' or 'none' -> None, else an int."""
  if str(value).lower() in ('all', 'none', ''):
    return None
  return _parse('an integer or "all"', int, value, 'expected a count')


def optional_float(value: str) -> float | None:
  """'none' or '' -> None, else a float."""
  if str(value).lower() in ('none', ''):
    return None
  return _parse('a number or "none"', float, value, 'expected a number')


def floats(values) -> tuple[float, ...]:
  return tuple(_parse('a number', float, v, 'expected numbers') for v in values)


def ints(values) -> tuple[int, ...]:
  return tuple(_parse('an integer', int, v, 'expected integers') for v in values)


def log(message: str) -> None:
  """Prints a progress line at once, also when stdout is a file or a pipe."""
  print(message, flush=True)


def default_workdir(kind: str, dataset: str, preset: str) -> str:
  return f'runs/{kind}/{dataset}-{preset}-{time.strftime("%Y%m%d-%H%M%S")}'


def run_reporting_errors(main: Callable[[], None]) -> None:
  """Runs ``main``; a user error becomes one line on stderr and exit status 2."""
  logging.set_verbosity(logging.WARNING)  # keep JAX's backend probing out of the output
  try:
    main()
  except AmrjaxError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
