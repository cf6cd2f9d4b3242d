"""What every experiment config shares: the data settings (:class:`DataSettings`, the base
of every config), built from a named preset plus overrides, and the dataset it names loaded
with its data settings."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from typing import ClassVar, TypeVar

from amrjax.data import sources, specs
from amrjax.errors import ConfigError

Config = TypeVar('Config')


@dataclasses.dataclass(frozen=True)
class DataSettings:
  """Where an experiment's dataset comes from and how it is checked (:func:`load_dataset`);
  the base of every experiment's config, whose own fields follow these.

  Attributes:
    data_dir: folder holding the real dataset file; default (None) $AMRJAX_DATA_DIR, else
      ./data. Without the file the synthetic stand-in is used.
    cache_dir: where the synthetic stand-in is cached; default (None) $AMRJAX_CACHE_DIR,
      else ~/.cache/amrjax.
    synthetic_per_cell: vectors per (class, SNR) cell of the synthetic stand-in ('all' or
      None: the real file's count); each config's default is its preset's.
    allow_synthetic: use the synthetic stand-in when the real file is absent; False
      (--noallow_synthetic) makes a missing file an error.
    drop_nonfinite: leave out vectors holding NaN or infinite values (their count is
      recorded in results.json); False (the default) refuses them.
  """

  data_dir: str | None = None
  cache_dir: str | None = None
  synthetic_per_cell: int | None = None
  allow_synthetic: bool = True
  drop_nonfinite: bool = False

  PRESETS: ClassVar[Mapping[str, Mapping]] = {}
  """Each experiment's config: its named presets, ``{preset: {setting: value}}``."""
  EXPERIMENT: ClassVar[str] = 'experiment'
  """The experiment's name in messages (``'DUSE'``)."""

  @classmethod
  def from_preset(cls, preset: str = 'quick', **overrides):
    """The settings of ``cls.PRESETS[preset]`` with ``overrides`` on top (:func:`from_preset`)."""
    return from_preset(cls, cls.PRESETS, preset, cls.EXPERIMENT, overrides)


def from_preset(cls: type[Config], presets: Mapping[str, Mapping], preset: str, what: str,
                overrides: Mapping) -> Config:
  """``cls`` with the settings of ``presets[preset]``, ``overrides`` on top and its
  ``preset`` field set; an unknown preset or setting is a one-line :class:`ConfigError`
  naming ``what`` experiment it is for."""
  if preset not in presets:
    raise ConfigError(f'unknown preset {preset!r}; choose one of {", ".join(presets)}')
  unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
  if unknown:
    raise ConfigError(f'unknown {what} setting(s): {", ".join(sorted(unknown))}')
  return cls(**{**presets[preset], **overrides, 'preset': preset})


def check_seeds(seeds) -> tuple[int, ...]:
  """``seeds`` as a tuple of ints; none given, a negative or a repeated one is a one-line
  :class:`ConfigError` (NumPy's generators take no negative seed, and a repeated seed would
  run and count the same training twice)."""
  seeds = tuple(seeds)
  if not seeds:
    raise ConfigError('give at least one seed (--seeds=0,1,2)')
  bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
  if bad:
    raise ConfigError(f'seeds must be integers >= 0, got {", ".join(map(repr, bad))}')
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f'seeds repeat: {", ".join(map(str, seeds))}; give each seed once')
  return seeds


def check_split_seed(split_seed) -> int:
  """``split_seed`` if it is an integer >= 0; else a one-line :class:`ConfigError` (NumPy's
  generators take no negative seed)."""
  if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
    raise ConfigError(f'split_seed must be an integer >= 0, got {split_seed!r}')
  return split_seed


def check_methods(methods, what: str = 'method') -> None:
  """An empty list of methods is a one-line :class:`ConfigError` (it would write an empty
  table and exit 0)."""
  if not methods:
    raise ConfigError(f'give at least one {what} (--methods=...); the run would compute '
                      'nothing')


def load_dataset(config: DataSettings, notify: Callable[[str], None] = print
                 ) -> sources.Dataset:
  """``sources.load`` with a config's ``dataset`` and :class:`DataSettings` fields
  (``data_dir``, ``cache_dir``, ``synthetic_per_cell``, ``allow_synthetic``), then
  ``sources.check_finite`` with its ``drop_nonfinite``. The (class, SNR) cells the file
  lacks are also put in ``origin['missing_cells']`` (``[[class, snr], ...]``), which every
  driver writes into ``results.json`` as its ``data`` record."""
  data = sources.load(config.dataset, data_dir=config.data_dir, cache_dir=config.cache_dir,
                      synthetic_per_cell=config.synthetic_per_cell,
                      allow_synthetic=config.allow_synthetic, notify=notify)
  data = sources.check_finite(data, drop=config.drop_nonfinite, notify=notify)
  return dataclasses.replace(data, origin={
      **data.origin, 'missing_cells': [[name, snr] for name, snr in data.missing_cells]})


def dataset_record(spec: specs.DatasetSpec) -> dict:
  """What ``results.json`` says of the dataset: its name, classes and vector length."""
  return {'name': spec.name, 'classes': list(spec.classes), 'length': spec.length}


def results_record(experiment: str, config: DataSettings, data: sources.Dataset,
                   splits: Mapping[str, int], runs: list[dict], started: float,
                   **fields) -> dict:
  """What every experiment's ``results.json`` holds: the experiment's name, its config, the
  data's origin (``load_dataset``), the dataset, the split sizes, then the experiment's own
  ``fields`` (tables, labels, ...), every run's record and the seconds since ``started``."""
  return {'experiment': experiment, 'config': dataclasses.asdict(config), 'data': data.origin,
          'dataset': dataset_record(data.spec), 'splits': dict(splits), **fields,
          'runs': runs, 'seconds': time.time() - started}


def finish(run_dir, results: dict, printed: Iterable[str], *, log: Callable[[str], None],
           write_report: bool) -> dict:
  """The end every experiment shares: ``results.json`` written (atomically), the epoch and
  round checkpoints it no longer needs removed, ``printed`` (the text tables) and where the
  results are logged, and ``report.md`` written when ``write_report``. Returns ``results``."""
  run_dir.write_json('results.json', results)
  run_dir.discard_checkpoints()
  for text in printed:
    log(text)
  log(f'wrote {run_dir.file("results.json")} ({results["seconds"]:.0f} s in all)')
  if write_report and run_dir.writes:
    # Imported here: it brings matplotlib (0.3 s), which a driver that stops at a bad flag or
    # input, or runs with --noreport, never needs.
    from amrjax.reporting import run_report
    run_report.write_report_logged(run_dir.path, log=log)
  return results
