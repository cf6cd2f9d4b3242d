"""The resumable loop every experiment runs through: :class:`Run`.

An experiment computes cells (a training and its test, a selection, a measurement), each
named by a key of its ``runs.jsonl`` record. A :class:`Run` owns what every experiment does
around its cells, once:

- the run directory: begun, or resumed when it holds the same configuration (a different
  one is refused: ``RunDir.start``) and was begun on the same data (``data.json``: a real
  file's path, size and modification time, or the synthetic stand-in's generator version,
  seed and size; other data is refused, never mixed in);
- one writer: a run directory is locked for the life of the run that writes it (an
  ``fcntl`` lock on ``.lock``, released by the system when that process ends, so a killed
  run's lock never blocks its resume); a second run on it is refused with the holder's pid;
- resume: a cell whose record an interrupted run already wrote is read back, not
  recomputed (:meth:`Run.reuse`); a new record is appended to ``runs.jsonl`` as soon as it
  exists, so it survives a later failure (:meth:`Run.record`);
- trainings: every epoch's metrics in ``metrics.jsonl``, epoch checkpoints to resume from,
  and a divergence named by the cell it happened in (:meth:`Run.fit`);
- the end: ``results.json``, the printed tables and ``report.md`` (:meth:`Run.finish`).

The rule for holding a dataset's signals in memory is here too (:func:`fits_in_memory`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from pathlib import Path

from amrjax.data import sources
from amrjax.errors import ConfigError
from amrjax.experiments import common
from amrjax.experiments.rundir import RunDir, differing_keys
from amrjax.reporting import tables as report_tables
from amrjax.train import diverged_where, fit

IN_MEMORY_LIMIT_BYTES = 4 << 30
"""Experiments hold a split's signals in memory when they take at most this many bytes
(float32); larger ones are read from the file batch by batch."""


def fits_in_memory(*splits) -> bool:
  """Whether the signals of ``splits`` (anything with ``nbytes``: a pool or a split) take at
  most :data:`IN_MEMORY_LIMIT_BYTES` together."""
  return sum(s.nbytes for s in splits) <= IN_MEMORY_LIMIT_BYTES


def percent_label(fraction: float) -> str:
  """A rate or a fraction as a table column: 0.04 -> '4%'."""
  return f'{fraction * 100:g}%'


class Run:
  """An experiment's run directory, begun or resumed, and the records of its cells.

  Args:
    config: the experiment's config dataclass (``config.json`` holds it).
    workdir: the run directory.
    key: the key of a ``runs.jsonl`` record (e.g. method, rate, seed, model).
    data: the dataset the run computes on (its identity goes into ``data.json``); None
      for a run that reads no dataset.
    log: where progress lines go.
    started: when the run started (``time.time()``), for ``results.json``'s seconds.
  """

  def __init__(self, config, workdir: Path | str, *, key: Callable[[dict], Hashable],
               data: sources.Dataset | None = None, log: Callable[[str], None] = print,
               started: float | None = None):
    self.config = config
    self.log = log
    self.started = time.time() if started is None else started
    self.dir = RunDir(workdir)
    self._lock = _lock(self.dir) if self.dir.writes else None
    self.records: list[dict] = []
    identity = None if data is None else data_identity(data)
    try:
      if identity is not None:
        _refuse_other_data(self.dir, identity)  # before resuming touches anything
      # The records of runs.jsonl an interrupted run wrote, by key.
      self.prior = {key(r): r for r in self.dir.start(dataclasses.asdict(config), log=log)}
      if identity is not None and not self.dir.file('data.json').is_file():
        self.dir.write_json('data.json', identity)
    except BaseException:
      self.release()  # refused: the directory is free for the corrected command
      raise

  def reuse(self, key: Hashable) -> dict | None:
    """The record of the cell ``key`` if an interrupted run tested it (then it is also one of
    this run's records); None when the cell must be computed."""
    record = self.prior.get(key)
    if record is not None:
      self.records.append(record)
    return record

  def record(self, record: dict) -> dict:
    """Adds a new cell's ``record`` to the results and appends it to ``runs.jsonl`` at once,
    so it is kept even if a later cell fails."""
    self.records.append(record)
    self.dir.append_jsonl('runs.jsonl', record)
    return record

  def fit(self, model, pool, train_config, *, seed: int, where: str, tag: Mapping,
          checkpoint: str, **kwargs):
    """``amrjax.train.fit`` for one cell: every epoch's metrics logged with ``tag``, epoch
    checkpoints in ``checkpoints/<checkpoint>`` (resumed from after a kill), and a diverged
    training reported as ``'<where>: ...'``. Returns fit's (state, history)."""
    with diverged_where(where):
      return fit(model, pool, train_config, seed=seed,
                 on_epoch=lambda m: self.dir.log_metrics({**tag, **m}),
                 checkpoint=self.dir.checkpoint_folder(checkpoint), **kwargs)

  def finish(self, experiment: str, data: sources.Dataset, split_sizes: Mapping[str, object],
             printed: Iterable[str], *, write_report: bool, **fields) -> dict:
    """Writes ``results.json`` (``common.results_record`` of this run's records and
    ``fields``), removes the checkpoints, prints ``printed`` (the text tables) and writes
    ``report.md`` when ``write_report``. Returns the results."""
    results = common.results_record(experiment, self.config, data, split_sizes, self.records,
                                    self.started, **fields)
    try:
      return common.finish(self.dir, results, printed, log=self.log, write_report=write_report)
    finally:
      self.release()

  def release(self) -> None:
    """Gives up the run directory's lock and removes ``.lock`` (``finish`` does; when a
    process ends, the system releases its lock and the next run takes the file over)."""
    if self._lock is not None:
      self.dir.file(LOCK_FILE).unlink(missing_ok=True)
      self._lock.close()
      self._lock = None


LOCK_FILE = '.lock'


def _lock(run_dir: RunDir):
  """The open ``.lock`` of ``run_dir``, locked by this process (``fcntl.flock``); another
  process holding it is a one-line :class:`ConfigError` naming its pid."""
  path = run_dir.file(LOCK_FILE)
  f = open(path, 'a+')  # held open for the run's life
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    f.seek(0)
    holder = f.read().strip() or 'unknown'
    f.close()
    raise ConfigError(f'{run_dir.path} is being written by another run (pid {holder}); '
                      'wait for it to end, or choose another --workdir') from None
  f.seek(0)
  f.truncate()
  f.write(str(os.getpid()))
  f.flush()
  return f


def data_identity(data: sources.Dataset) -> dict:
  """What identifies ``data`` for a resume: the dataset and its source; for a real file its
  path, size and modification time, for the synthetic stand-in its generator version, seed
  and vectors per cell (it is generated alike wherever it is cached); the vectors kept."""
  origin = data.origin
  identity = {'dataset': data.spec.name, 'kind': origin.get('kind'),
              'vectors': origin.get('vectors'),
              'nonfinite_dropped': origin.get('nonfinite_dropped', 0)}
  if origin.get('kind') == sources.SYNTHETIC:
    identity.update({k: origin.get(k) for k in ('generator_version', 'seed',
                                                'count_per_cell')})
  else:
    path = Path(origin.get('path', ''))
    stat = path.stat() if path.is_file() else None
    identity.update(path=str(path), bytes=stat and stat.st_size,
                    mtime_ns=stat and stat.st_mtime_ns)
  return identity


def _refuse_other_data(run_dir: RunDir, identity: dict) -> None:
  """A one-line :class:`ConfigError` when ``run_dir`` was begun on data other than
  ``identity`` (``data.json``; a run directory from before it gets one when resumed)."""
  if not run_dir.file('data.json').is_file():
    return
  changed = differing_keys(run_dir.read_json_object('data.json'), identity)
  if changed:
    raise ConfigError(f'{run_dir.path} was begun on other data (differs in: '
                      f'{", ".join(changed)}); resume it with the same data, or use a new '
                      '--workdir')


def text_tables(tables: Iterable[dict]) -> Iterator[str]:
  """The tables (``{'title', 'row_header', 'columns', 'rows', 'summary'}``) as printed."""
  return map(report_tables.text_of, tables)
