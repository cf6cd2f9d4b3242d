"""What every driver shares: the data flags, error reporting, flags made from a config
dataclass, preset-aware flag overrides, many processes, and :class:`Driver`, which runs a
driver from the command line or in-process.

A driver defines its flags when it runs, not when it is imported: ``Driver.main(argv)``
defines them on a fresh ``absl.flags.FlagValues`` each call, so two drivers (or one driver
twice) can run in one process, as the tests do; ``python -m experiments.<driver>`` defines
them on absl's global ``FLAGS`` and runs under ``absl.app.run``, which adds ``--help``,
``--helpfull`` and absl's own flags.

Every setting of an experiment is a field of its config dataclass (``DuseConfig``,
``CoresetConfig``, ...), documented in the ``Attributes:`` section of its docstring; a
driver turns the fields into flags with :func:`define_config_flags` (same name, a type from
the annotation, the docstring's text as help, default None) and reads back the ones given
on the command line with :func:`config_overrides`, so a new field is a new flag without
another line in the driver.

Every driver also takes ``--coordinator_address``, ``--num_processes`` and ``--process_id``:
with a coordinator address set, the run joins a ``jax.distributed`` job before anything
else touches a device (``amrjax.parallel.initialize_distributed``). Each process then
scores only its slice of every pool (``parallel.map_pool``), trains the same models with
the same seeds, and only process 0 writes the run directory.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
import time
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from absl import app, flags, logging

from amrjax import parallel, progress
from amrjax.errors import AmrjaxError, ConfigError
from amrjax.experiments import common as config_common
from amrjax.selection import strategies

_KINDS = {int: 'an integer', float: 'a number', str: 'text'}
_PLURALS = {int: 'integers', float: 'numbers'}


def _convert(kind: type, value):
  try:
    return kind(value)
  except (TypeError, ValueError):
    raise ValueError(f'{value!r} is not {_KINDS[kind]}') from None


class _OptionalParser(flags.ArgumentParser):
  """An integer or a number, or 'none' / 'all' for None (``--max_per_cell=all``)."""

  def __init__(self, kind: type):
    self.kind = kind
    self.syntactic_help = f"{_KINDS[kind]}, or 'none' or 'all' for None"

  def parse(self, argument):
    if argument is None or str(argument).strip().lower() in ('none', 'all', ''):
      return None
    try:
      return self.kind(argument)
    except (TypeError, ValueError):
      raise ValueError(f"{argument!r} is not {self.syntactic_help}") from None

  def flag_type(self):
    return f'{self.kind.__name__} or None'


class _TupleParser(flags.ListParser):
  """A comma separated list, parsed to a tuple of ``kind`` (``--rates=0.04,0.09``)."""

  def __init__(self, kind: type):
    super().__init__()
    self.kind = kind
    if kind in _PLURALS:
      self.syntactic_help = f'a comma separated list of {_PLURALS[kind]}'

  def parse(self, argument):
    return tuple(_convert(self.kind, item) for item in super().parse(argument))


def _flag_kind(annotation) -> tuple[type, bool]:
  """(the type, whether None is allowed) of an annotation ``X`` or ``X | None``."""
  args = typing.get_args(annotation)
  if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
    rest = [a for a in args if a is not type(None)]
    if len(rest) == 1:
      return rest[0], True
  return annotation, False


def define_flag(flag_values: flags.FlagValues, name: str, annotation, help: str,
                module_name: str | None = None) -> None:
  """Defines ``--name`` of the type a config field's ``annotation`` names, default None (so
  :func:`config_overrides` sees only what the command line gives): ``bool`` a boolean
  (``--name`` / ``--noname``), ``int``, ``float`` and ``str`` a value of that type,
  ``tuple[X, ...]`` a comma separated list parsed to a tuple of X, and ``int | None`` or
  ``float | None`` a value or 'none' / 'all' for None. A value of the wrong type is a flag
  parsing error (one line and exit status 2 under :func:`parse_flags`). Another type is a
  ``TypeError``: skip the field or write its flag by hand. ``module_name``: the module the
  flag is listed under in ``--help`` (default: the driver module defining it)."""
  fv = dict(flag_values=flag_values, module_name=module_name)
  kind, optional = _flag_kind(annotation)
  element = typing.get_args(kind)
  if kind is bool and not optional:
    flags.DEFINE_boolean(name, None, help, **fv)
  elif kind in (int, float) and optional:
    flags.DEFINE(_OptionalParser(kind), name, None, help, **fv)
  elif kind is int:
    flags.DEFINE_integer(name, None, help, **fv)
  elif kind is float:
    flags.DEFINE_float(name, None, help, **fv)
  elif kind is str:
    flags.DEFINE_string(name, None, help, **fv)
  elif (typing.get_origin(kind) is tuple and not optional and len(element) == 2
        and element[1] is Ellipsis and element[0] in _KINDS):
    flags.DEFINE(_TupleParser(element[0]), name, None, help,
                 serializer=flags.CsvListSerializer(','), **fv)
  else:
    raise TypeError(f'--{name}: no flag type for {annotation!r}; skip the field or write '
                    'its flag by hand')


def attribute_docs(cls: type) -> dict[str, str]:
  """``{field: text}`` from the ``Attributes:`` section of ``cls``'s docstring (Google
  style): one entry per ``name: text`` line, or ``a, b: text`` for several fields, continued
  on the more indented lines below it."""
  lines = inspect.cleandoc(cls.__doc__ or '').splitlines()
  if 'Attributes:' not in lines:
    return {}
  docs: dict[str, str] = {}
  names: list[str] = []
  indent = None
  for line in lines[lines.index('Attributes:') + 1:]:
    if not line.strip():
      continue
    depth = len(line) - len(line.lstrip())
    indent = depth if indent is None else indent
    if depth < indent:
      break
    if depth == indent:
      head, _, text = line.strip().partition(':')
      names = [n.strip() for n in head.split(',')]
      if not all(n.isidentifier() for n in names):
        raise ValueError(f'{cls.__name__}: {line.strip()!r} is not a "name: text" entry of '
                         'its Attributes section')
      docs.update(dict.fromkeys(names, text.strip()))
    else:
      for n in names:
        docs[n] = f'{docs[n]} {line.strip()}'.strip()
  return docs


def flag_help(text: str) -> str:
  """A docstring entry as flag help: without reST's double backquotes, capitalised, ending
  with a full stop."""
  text = ' '.join(text.replace('``', '').split())
  text = text[:1].upper() + text[1:]
  return text if text.endswith(('.', '!', '?')) else f'{text}.'


# The data settings every config inherits (amrjax.experiments.common.DataSettings): one set
# of flags, shared by every driver, listed under this module (--helpfull).
SHARED_FLAGS = tuple(field.name for field in dataclasses.fields(config_common.DataSettings))


def define_shared_flags(flag_values: flags.FlagValues) -> None:
  """The flags every driver has, listed under this module: many processes
  (``--coordinator_address``, ``--num_processes``, ``--process_id``), ``--report``,
  ``--progress`` and the data settings of :data:`SHARED_FLAGS` (help from the
  ``DataSettings`` docstring)."""
  fv = dict(flag_values=flag_values, module_name=__name__)
  flags.DEFINE_string('coordinator_address', None, 'host:port of process 0 of a '
                      'multi-process run (jax.distributed); unset: one process.', **fv)
  flags.DEFINE_integer('num_processes', 1, 'Processes in the multi-process run.', **fv)
  flags.DEFINE_integer('process_id', 0, 'This process, 0..num_processes-1.', **fv)
  flags.DEFINE_boolean('report', True, 'Write report.md and its plots into the run directory '
                       'at the end (python -m experiments.report RUN_DIR writes them later).',
                       **fv)
  flags.DEFINE_enum('progress', 'auto', list(progress.MODES), 'Progress of long loops on '
                    'stderr: auto = a bar on a terminal, plain lines every 30 s otherwise; '
                    'bar, plain or off (default: $AMRJAX_PROGRESS, else auto).', **fv)
  hints = typing.get_type_hints(config_common.DataSettings)
  for name, text in attribute_docs(config_common.DataSettings).items():
    define_flag(flag_values, name, hints[name], flag_help(text), module_name=__name__)


# The flags the functions below define belong to the driver that calls them (its --help
# lists them), not to this module.
flags.disclaim_key_flags()


def define_config_flags(flag_values: flags.FlagValues, config_cls: type, *,
                        skip: Iterable[str]) -> tuple[str, ...]:
  """One flag per field of the config dataclass ``config_cls``, for a driver: named as the
  field, typed by its annotation (:func:`define_flag`), its help the field's entry in the
  docstring's ``Attributes:`` section, default None, so that only the flags given on the
  command line override the preset (:func:`config_overrides`). The fields in
  :data:`SHARED_FLAGS` take the data flags defined here. ``skip`` names the fields that get
  no flag: not command-line settings (``preset``, a nested dict), or ones the driver defines
  by hand (``--dataset``, with its default).

  Returns the names of the fields that have a flag, for :func:`config_overrides`. A skipped
  name that is no field, or a field without a docstring entry, is a ``ValueError`` (at
  import, for the developer)."""
  skip = set(skip)
  fields = [field.name for field in dataclasses.fields(config_cls)]
  unknown = skip - set(fields)
  if unknown:
    raise ValueError(f'{config_cls.__name__} has no field(s) {", ".join(sorted(unknown))} '
                     'to skip')
  hints = typing.get_type_hints(config_cls)
  docs = attribute_docs(config_cls)
  names = []
  for name in fields:
    if name in skip:
      continue
    if name not in SHARED_FLAGS:
      if not docs.get(name):
        raise ValueError(f'{config_cls.__name__}.{name} has no entry in the Attributes section '
                         f'of its docstring (the help of --{name})')
      define_flag(flag_values, name, hints[name], flag_help(docs[name]))
    names.append(name)
  return tuple(names)


def define_driver_flags(flag_values: flags.FlagValues, config_cls: type,
                        presets: Mapping[str, dict], *, dataset: str, dataset_help: str,
                        preset_help: str, skip: Iterable[str] = ()) -> tuple[str, ...]:
  """The flags of an experiment driver: the shared ones (:func:`define_shared_flags`),
  ``--dataset`` (default ``dataset``), ``--preset`` (one of ``presets``, default quick),
  ``--workdir`` (default ``runs/<kind>/...``, the kind that :func:`run_config` is given)
  and one flag per other field of ``config_cls`` but ``skip``
  (:func:`define_config_flags`). Returns the names of the fields' flags."""
  define_shared_flags(flag_values)
  flags.DEFINE_string('dataset', dataset, dataset_help, flag_values=flag_values)
  flags.DEFINE_enum('preset', 'quick', list(presets), preset_help, flag_values=flag_values)
  # One definition serves several drivers (experiments.crossarch runs on duse's flags), so
  # the help names the driver generically.
  flags.DEFINE_string('workdir', None, 'Run directory; default runs/<driver>/<dataset>-'
                      '<preset>-<time>, <driver> being the name after experiments. in the command.',
                      flag_values=flag_values)
  return define_config_flags(flag_values, config_cls, skip=('dataset', 'preset', *skip))


def define_study_flags(flag_values: flags.FlagValues, study) -> None:
  """The flags of a study driver: the shared ones (:func:`define_shared_flags`),
  ``--workdir`` (the study folder, default ``study.DEFAULT_WORKDIR``) and ``--run`` (named
  runs of ``study.RUNS``)."""
  define_shared_flags(flag_values)
  flags.DEFINE_string('workdir', study.DEFAULT_WORKDIR, 'The study folder: one run directory '
                      'per named run.', flag_values=flag_values)
  flags.DEFINE_list('run', [], 'Named runs to run (or resume) first, in order, or "all": '
                    + ', '.join(study.RUNS) + '.', flag_values=flag_values)


def config_overrides(flag_values: flags.FlagValues, names: Iterable[str]) -> dict:
  """``{name: value}`` of the flags among ``names`` given on the command line; the others
  keep the preset's value."""
  return {name: flag_values[name].value for name in names if flag_values[name].present}


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


def log(message: str) -> None:
  """Prints a progress line at once, also when stdout is a file or a pipe."""
  print(message, flush=True)


def default_workdir(kind: str, dataset: str, preset: str) -> str:
  return f'runs/{kind}/{dataset}-{preset}-{time.strftime("%Y%m%d-%H%M%S")}'


def start_distributed(f: flags.FlagValues) -> None:
  """Joins the jax.distributed job the flags describe (nothing without a coordinator)."""
  if f.coordinator_address:
    parallel.initialize_distributed(f.coordinator_address, f.num_processes, f.process_id)
  elif f.num_processes != 1:
    raise ConfigError(f'--num_processes={f.num_processes} needs --coordinator_address '
                      '(host:port of process 0)')


def parse_flags(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS
                ) -> list[str]:
  """absl's flag parsing under the drivers' one rule for user errors: a bad or unknown flag
  (``--preset=x``, ``--progress=x``, ``--epochs=ten``) is one line on stderr and exit
  status 2, as every other user error (absl itself exits 1 with two lines)."""
  try:
    return flag_values(list(argv))
  except flags.Error as e:
    print(f'error: {" ".join(str(e).split())}; see --help for the flags', file=sys.stderr)
    sys.exit(2)


@dataclasses.dataclass(frozen=True)
class Driver:
  """A command-line driver: ``define(flag_values)`` defines its flags on ``flag_values`` and
  returns what ``body`` needs of them; ``body(flag_values, defined, argv)`` runs it with the
  parsed flags and the arguments left after them (``argv[0]`` the program name)."""

  define: Callable[[flags.FlagValues], Any]
  body: Callable[[flags.FlagValues, Any, list[str]], None]

  def main(self, argv: Sequence[str]) -> None:
    """Runs the driver on the command line ``argv`` (``argv[0]`` the program name, as in
    ``sys.argv``) in this process, its flags defined on a fresh ``FlagValues``. A user
    error prints one line on stderr and raises ``SystemExit(2)``."""
    argv = list(argv)
    if not argv or argv[0].startswith('-'):
      raise ValueError(f'argv[0] is the program name, as in sys.argv; got {argv[:1]}')
    flag_values = flags.FlagValues()
    defined = self.define(flag_values)
    rest = parse_flags(argv, flag_values)
    self.body(flag_values, defined, rest)

  def script(self) -> None:
    """The ``python -m`` entry point: the flags defined on absl's global ``FLAGS``, run by
    ``absl.app.run`` (``--help``, ``--helpfull``, absl's own flags)."""
    defined = self.define(flags.FLAGS)
    app.run(lambda argv: self.body(flags.FLAGS, defined, argv), flags_parser=parse_flags)


def run_reporting_errors(flag_values: flags.FlagValues, main: Callable[[], None]) -> None:
  """Runs ``main``; a user error becomes one line on stderr and exit status 2."""
  logging.set_verbosity(logging.WARNING)  # keep JAX's backend probing out of the output
  try:
    if flag_values['progress'].present:  # else $AMRJAX_PROGRESS, or auto
      progress.set_mode(flag_values.progress)
    start_distributed(flag_values)
    main()
  except AmrjaxError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def run_config(flag_values: flags.FlagValues, kind: str, config_cls, run: Callable,
               overrides: Callable[[], dict]) -> None:
  """The body of every experiment driver: ``config_cls.from_preset(--preset, **overrides())``
  run by ``run`` in ``--workdir`` (default ``runs/<kind>/<dataset>-<preset>-<time>``), a
  user error one line and exit 2. ``overrides`` is called inside, so its errors count too."""

  def body():
    config = config_cls.from_preset(flag_values.preset, **overrides())
    workdir = flag_values.workdir or default_workdir(kind, config.dataset, config.preset)
    run(config, workdir, log=log, write_report=flag_values.report)

  run_reporting_errors(flag_values, body)


def config_driver(kind: str, config_cls, run: Callable, *, dataset: str, dataset_help: str,
                  preset_help: str) -> Driver:
  """The driver of an experiment whose every setting is a flag (a field of ``config_cls``,
  presets ``config_cls.PRESETS``; :func:`define_driver_flags`), run by ``run`` in
  ``runs/<kind>/...`` unless ``--workdir`` says otherwise (:func:`run_config`)."""

  def define(flag_values: flags.FlagValues) -> tuple[str, ...]:
    return define_driver_flags(flag_values, config_cls, config_cls.PRESETS, dataset=dataset,
                               dataset_help=dataset_help, preset_help=preset_help)

  def body(flag_values: flags.FlagValues, settings: tuple[str, ...], argv: list[str]) -> None:
    run_config(flag_values, kind, config_cls, run, lambda: {
        **config_overrides(flag_values, settings), 'dataset': flag_values.dataset})

  return Driver(define, body)


def run_study(flag_values: flags.FlagValues, study, run: Callable) -> None:
  """The body of a study driver (``experiments.duse_study``, ``experiments.foqus_study``;
  flags from :func:`define_study_flags`): runs (or resumes) the named runs of ``study.RUNS``
  given by ``--run`` in order, each with ``run(config, folder)`` in ``<workdir>/<name>``,
  then prints ``study.report(workdir)``. ``--run=all`` runs every one; every name and
  configuration is checked before the first run starts. A user error is one line and exit
  2."""
  run_reporting_errors(flag_values, lambda: _run_study(flag_values, study, run))


def _run_study(flag_values: flags.FlagValues, study, run: Callable) -> None:
  workdir, names = flag_values.workdir, flag_values.run
  names = list(study.RUNS) if names == ['all'] else names
  data_flags = config_overrides(flag_values, ['data_dir', 'cache_dir', 'allow_synthetic'])
  configs = {name: study.config_of(name, **data_flags) for name in names}
  for name, config in configs.items():
    run(config, Path(workdir) / name, log=log, write_report=flag_values.report)
  if not Path(workdir).is_dir():
    raise ConfigError(f'no study folder {workdir}; run some of it first with --run')
  print(study.report(workdir))
