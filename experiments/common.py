"""What every driver shares: the data flags, error reporting, preset-aware flag overrides,
many processes.

Every driver also takes ``--coordinator_address``, ``--num_processes`` and ``--process_id``:
with a coordinator address set, the run joins a ``jax.distributed`` job before anything
else touches a device (``amrjax.parallel.initialize_distributed``). Each process then
scores only its slice of every pool (``parallel.map_pool``), trains the same models with
the same seeds, and only process 0 writes the run directory.
"""

from __future__ import annotations

import ast
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from absl import app, flags, logging

from amrjax import parallel, progress
from amrjax.errors import AmrjaxError, ConfigError
from amrjax.selection import strategies

flags.DEFINE_string('coordinator_address', None, 'host:port of process 0 of a multi-process '
                    'run (jax.distributed); unset: one process.')
flags.DEFINE_integer('num_processes', 1, 'Processes in the multi-process run.')
flags.DEFINE_integer('process_id', 0, 'This process, 0..num_processes-1.')
flags.DEFINE_string('data_dir', None, 'Folder holding the real dataset file; default '
                    '$AMRJAX_DATA_DIR or ./data. Without it the synthetic stand-in is used.')
flags.DEFINE_string('cache_dir', None, 'Where the synthetic stand-in is cached; default '
                    '$AMRJAX_CACHE_DIR or ~/.cache/amrjax.')
flags.DEFINE_string('synthetic_per_cell', None, "Vectors per (class, SNR) cell of the "
                    "synthetic stand-in ('all' = the real file's count; default: the "
                    "preset's).")
flags.DEFINE_boolean('allow_synthetic', True, 'Use the synthetic stand-in when the real '
                     'file is absent; --noallow_synthetic makes a missing file an error.')
flags.DEFINE_boolean('report', True, 'Write report.md and its plots into the run directory '
                     'at the end (python -m experiments.report RUN_DIR writes them later).')
flags.DEFINE_enum('progress', 'auto', list(progress.MODES), 'Progress of long loops on '
                  'stderr: auto = a bar on a terminal, plain lines every 30 s otherwise; '
                  'bar, plain or off (default: $AMRJAX_PROGRESS, else auto).')
flags.DEFINE_boolean('drop_nonfinite', False, 'Leave out vectors holding NaN or infinite '
                     'values (their count is recorded in results.json); default: refuse them.')


def explicit_flags(names: Iterable[str], parsers: dict[str, Callable] | None = None) -> dict:
  """{name: value} for the flags the user set on the command line (not the defaults)."""
  parsers = parsers or {}
  out = {}
  for name in names:
    flag = flags.FLAGS[name]
    if flag.present:
      out[name] = parsers.get(name, lambda v: v)(flag.value)
  return out


def strategy_options(items: Iterable[str], base: dict | None = None) -> dict:
  """``{'forgetting': {'never_learned': 0}}`` from ``['forgetting.never_learned=0']``, on top of
  ``base`` (a preset's options). Strategy names are made canonical (``Herd`` -> ``herding``),
  so an alias adds to the preset's options instead of beside them; an unknown strategy is a
  one-line error. Values are Python literals (0, 0.5, True, 'text'); anything else is kept
  as text."""
  out = {name: dict(options) for name, options in (base or {}).items()}
  for item in items:
    key, sep, text = item.partition('=')
    strategy, dot, option = key.strip().partition('.')
    if not (sep and dot and strategy and option):
      raise ConfigError(f'--strategy_option {item!r} is not STRATEGY.OPTION=VALUE, e.g. '
                        'forgetting.never_learned=0')
    try:
      value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
      value = text.strip()
    out.setdefault(strategies.get(strategy.strip()).name, {})[option.strip()] = value
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


def start_distributed() -> None:
  """Joins the jax.distributed job the flags describe (nothing without a coordinator)."""
  f = flags.FLAGS
  if f.coordinator_address:
    parallel.initialize_distributed(f.coordinator_address, f.num_processes, f.process_id)
  elif f.num_processes != 1:
    raise ConfigError(f'--num_processes={f.num_processes} needs --coordinator_address '
                      '(host:port of process 0)')


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing under the drivers' one rule for user errors: a bad or unknown flag
  (``--preset=x``, ``--progress=x``, ``--epochs=ten``) is one line on stderr and exit
  status 2, as every other user error (absl itself exits 1 with two lines)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f'error: {" ".join(str(e).split())}; see --help for the flags', file=sys.stderr)
    sys.exit(2)


def main(driver_main: Callable[[list[str]], None]) -> None:
  """``absl.app.run(driver_main)`` with :func:`parse_flags`: every driver's entry point."""
  app.run(driver_main, flags_parser=parse_flags)


def run_reporting_errors(main: Callable[[], None]) -> None:
  """Runs ``main``; a user error becomes one line on stderr and exit status 2."""
  logging.set_verbosity(logging.WARNING)  # keep JAX's backend probing out of the output
  try:
    if flags.FLAGS['progress'].present:  # else $AMRJAX_PROGRESS, or auto
      progress.set_mode(flags.FLAGS.progress)
    start_distributed()
    main()
  except AmrjaxError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def run_study(study, run: Callable, workdir: str, names: list[str]) -> None:
  """The body of a study driver (``experiments.duse_study``, ``experiments.foqus_study``):
  runs (or resumes) the named runs of ``study.RUNS`` in order, each with ``run(config,
  folder)`` in ``<workdir>/<name>``, then prints ``study.report(workdir)``. ``names`` may
  be ``['all']``; every name and configuration is checked before the first run starts."""
  names = list(study.RUNS) if names == ['all'] else names
  data_flags = explicit_flags(['data_dir', 'cache_dir', 'allow_synthetic'])
  configs = {name: study.config_of(name, **data_flags) for name in names}
  for name, config in configs.items():
    run(config, Path(workdir) / name, log=log, write_report=flags.FLAGS.report)
  if not Path(workdir).is_dir():
    raise ConfigError(f'no study folder {workdir}; run some of it first with --run')
  print(study.report(workdir))
