"""Run directories: ``config.json``, ``metrics.jsonl``, ``results.json`` and selected ids.

Every result file is written atomically (a temporary file in the same folder, then
``os.replace``), so a killed run leaves either the previous version or the new one,
never half of one. A full disk is a one-line ConfigError naming the file (free space or
choose another ``--workdir``). ``.npz`` files carry no zip timestamps, so the same arrays
give the same bytes.

Resuming: :meth:`RunDir.start` writes ``config.json`` in a new folder; in a folder that
already holds one it checks that the configuration is the same (a different one is refused,
never mixed in) and returns the records of ``runs.jsonl``, so a driver run again with the
same ``--workdir`` after a kill skips what is already done. ``metrics.jsonl`` then ends
as an uninterrupted run's does: the resumed run's lines that the interrupted one had
already logged (work redone from a checkpoint) are matched to those lines in order and
not written again (:meth:`RunDir.log_metrics`).

With several processes (``jax.distributed``) every process computes the same results and
only process 0 writes; the others' ``RunDir`` methods return without touching the disk.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from amrjax.errors import ConfigError
from amrjax.fileio import WORKDIR_ADVICE, atomic_write, full_disk_error, out_of_space


def _jsonable(obj: Any) -> Any:
  if isinstance(obj, dict):
    return {str(k): _jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  if isinstance(obj, np.generic):
    return obj.item()
  if isinstance(obj, Path):
    return str(obj)
  return obj


def write_json(path: Path, obj: Any) -> Path:
  """Writes ``obj`` as indented JSON, atomically."""
  with atomic_write(path, 'w', advice=WORKDIR_ADVICE) as f:
    f.write(json.dumps(_jsonable(obj), indent=2) + '\n')
  return Path(path)


def write_ids(path: Path, ids: np.ndarray) -> Path:
  """Writes sample ids as an int64 ``.npy``, atomically."""
  with atomic_write(path, advice=WORKDIR_ADVICE) as f:
    np.save(f, np.asarray(ids, np.int64))
  return Path(path)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
  """Writes ``arrays`` as an uncompressed ``.npz``, atomically, with fixed zip timestamps
  (``np.savez`` stamps each member with the time of writing)."""
  with atomic_write(path, advice=WORKDIR_ADVICE) as f, zipfile.ZipFile(
      f, 'w', zipfile.ZIP_STORED, allowZip64=True) as archive:
    for name, array in arrays.items():
      member = zipfile.ZipInfo(f'{name}.npy', date_time=(1980, 1, 1, 0, 0, 0))
      with archive.open(member, 'w', force_zip64=True) as out:
        np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)
  return Path(path)


def differing_keys(recorded: dict, current: dict) -> list[str]:
  """The keys, sorted, whose values differ between ``recorded`` and ``current`` (a key one
  of them lacks differs): what a refused resume names."""
  return sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))


class RunDir:
  """A run's output folder (written by process 0 only; see the module docstring)."""

  def __init__(self, path: Path | str):
    self.path = Path(path)
    self.writes = jax.process_index() == 0
    self._logged: list[str] | None = None  # an interrupted run's metrics lines, to match
    self._logged_at = 0
    if not self.writes:
      return
    try:
      with atomic_write(self.path / '.write-test', advice=WORKDIR_ADVICE) as f:
        f.write(b'ok')
      (self.path / '.write-test').unlink()
    except OSError as e:
      raise ConfigError(f'cannot write to the run directory {self.path} ({e.strerror}); '
                        'choose another --workdir') from None

  def start(self, config: dict, log=print) -> list[dict]:
    """Begins or resumes the run of ``config``; returns the ``runs.jsonl`` records so far.

    A new folder gets ``config.json``. A folder with a ``config.json`` of the same
    configuration is resumed: its ``runs.jsonl`` records are returned (a last line cut off
    by a kill is removed from the file and reported; its run is redone). A folder with a
    different configuration is refused with the keys that differ.
    """
    config = _jsonable(config)
    existing = self.path / 'config.json'
    if not existing.is_file():
      self.write_json('config.json', config)
      return []
    keys = differing_keys(self.read_json_object('config.json'), config)
    if keys:
      raise ConfigError(f'{self.path} holds a run with a different configuration (differs '
                        f'in: {", ".join(keys)}); use a new --workdir, or the same flags to '
                        'resume it')
    records = self.read_jsonl('runs.jsonl', log=log)
    self._logged, self._logged_at = self._logged_lines('metrics.jsonl'), 0
    log(f'resuming the run in {self.path}: {len(records)} result(s) already in runs.jsonl')
    return records

  def read_json_object(self, name: str) -> dict:
    """The JSON object in ``name``; unreadable, or not an object, is a one-line
    :class:`ConfigError` (the run directory is damaged)."""
    path = self.path / name
    try:
      obj = json.loads(path.read_text())
    except (OSError, ValueError) as e:
      raise ConfigError(f'{path} is unreadable ({e}); choose a new --workdir') from None
    if not isinstance(obj, dict):
      raise ConfigError(f'{path} is not a JSON object; choose a new --workdir')
    return obj

  def read_jsonl(self, name: str, log=print) -> list[dict]:
    """The records of ``name``; a cut-off last line is dropped from the file and reported."""
    path = self.path / name
    if not path.is_file():
      return []
    lines = path.read_text().split('\n')
    records = []
    for i, line in enumerate(lines):
      if not line.strip():
        continue
      try:
        records.append(json.loads(line))
      except ValueError:
        if i < len(lines) - 1 and any(rest.strip() for rest in lines[i + 1:]):
          raise ConfigError(f'{path} line {i + 1} is not JSON; the run directory is '
                            'damaged: use a new --workdir') from None
        log(f'{path}: dropped a last line cut off by an interrupted write; that run is redone')
        if self.writes:
          with atomic_write(path, 'w', advice=WORKDIR_ADVICE) as f:
            f.write(''.join(json.dumps(r) + '\n' for r in records))
    return records

  def _logged_lines(self, name: str) -> list[str]:
    """The complete lines of the log ``name``; a last line cut off by a kill is removed from
    the file, so the next line starts on a line of its own."""
    path = self.path / name
    if not path.is_file():
      return []
    data = path.read_bytes()
    complete = data[:data.rfind(b'\n') + 1]
    if len(complete) < len(data) and self.writes:
      with open(path, 'r+b') as f:
        f.truncate(len(complete))
    return complete.decode('utf-8', 'replace').splitlines()

  def checkpoint_folder(self, name: str) -> Path | None:
    """``checkpoints/<name>`` for a loop's round or epoch checkpoints; None with several
    processes (each would need its own copy to resume alike), so such runs resume cell by
    cell only."""
    if jax.process_count() > 1:
      return None
    return self.path / 'checkpoints' / name

  def discard_checkpoints(self, name: str | None = None) -> None:
    """Deletes ``checkpoints/<name>`` (all of ``checkpoints/`` when None): a finished
    result no longer needs the state it resumes from."""
    if self.writes:
      shutil.rmtree(self.path / 'checkpoints' / (name or ''), ignore_errors=True)

  def file(self, name: str) -> Path:
    return self.path / name

  def write_json(self, name: str, obj: Any) -> Path:
    if not self.writes:
      return self.path / name
    return write_json(self.path / name, obj)

  def write_ids(self, name: str, ids: np.ndarray) -> Path:
    if not self.writes:
      return self.path / name
    target = self.path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_ids(target, ids)

  def write_npy(self, name: str, array: np.ndarray) -> Path:
    """Writes ``array`` as ``name`` (a ``.npy``, folders created), atomically."""
    target = self.path / name
    if self.writes:
      with atomic_write(target, advice=WORKDIR_ADVICE) as f:
        np.save(f, np.asarray(array))
    return target

  def write_npz(self, name: str, arrays: dict[str, np.ndarray]) -> Path:
    """Writes ``arrays`` as the ``.npz`` ``name`` (folders created), atomically; the same
    arrays give the same bytes (:func:`write_npz`)."""
    target = self.path / name
    if self.writes:
      write_npz(target, arrays)
    return target

  def append_jsonl(self, name: str, record: dict) -> None:
    """Appends ``record`` as one JSON line to ``name``, flushed at once."""
    if self.writes:
      self._append_line(name, json.dumps(_jsonable(record)))

  def _append_line(self, name: str, line: str) -> None:
    """Appends ``line`` with one unbuffered write; on a full disk the file is cut back to
    its old end (no half line left) and a one-line ConfigError is raised."""
    path = self.path / name
    data = memoryview((line + '\n').encode())
    try:
      fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as e:
      if out_of_space(e):
        raise full_disk_error(path, WORKDIR_ADVICE) from None
      raise
    try:
      end = os.lseek(fd, 0, os.SEEK_END)
      try:
        while data:
          data = data[os.write(fd, data):]
      except OSError as e:
        if not out_of_space(e):
          raise
        try:
          os.ftruncate(fd, end)
        except OSError:
          pass  # a cut-off last line is dropped when the run is resumed (read_jsonl)
        raise full_disk_error(path, WORKDIR_ADVICE) from None
    finally:
      os.close(fd)

  def log_metrics(self, record: dict) -> None:
    """Appends one JSON line to ``metrics.jsonl`` (a log, not a result).

    In a resumed run, lines the interrupted run already logged are matched, in order,
    against that run's lines and skipped: work redone from a checkpoint logs the same
    lines again, and the file ends as an uninterrupted run's. From the first line not
    found there on, every line is appended.
    """
    if not self.writes:
      return
    line = json.dumps(_jsonable(record))
    if self._logged is not None:
      try:
        self._logged_at = self._logged.index(line, self._logged_at) + 1
        return
      except ValueError:
        self._logged = None  # new work from here on
    self._append_line('metrics.jsonl', line)
