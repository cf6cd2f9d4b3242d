"""Run directories: ``config.json``, ``metrics.jsonl``, ``results.json`` and selected ids.

Every result file is written atomically (a temporary file in the same folder, then
``os.replace``), so a killed run leaves either the previous version or the new one,
never half of one.

With several processes (``jax.distributed``) every process computes the same results and
only process 0 writes; the others' ``RunDir`` methods return without touching the disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from amrjax.errors import ConfigError
from amrjax.fileio import atomic_write


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
  with atomic_write(path, 'w') as f:
    f.write(json.dumps(_jsonable(obj), indent=2) + '\n')
  return Path(path)


def write_ids(path: Path, ids: np.ndarray) -> Path:
  """Writes sample ids as an int64 ``.npy``, atomically."""
  with atomic_write(path) as f:
    np.save(f, np.asarray(ids, np.int64))
  return Path(path)


class RunDir:
  """A run's output folder (written by process 0 only; see the module docstring)."""

  def __init__(self, path: Path | str):
    self.path = Path(path)
    self.writes = jax.process_index() == 0
    if not self.writes:
      return
    try:
      with atomic_write(self.path / '.write-test') as f:
        f.write(b'ok')
      (self.path / '.write-test').unlink()
    except OSError as e:
      raise ConfigError(f'cannot write to the run directory {self.path} ({e.strerror}); '
                        'choose another --workdir') from None

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
      with atomic_write(target) as f:
        np.save(f, np.asarray(array))
    return target

  def append_jsonl(self, name: str, record: dict) -> None:
    """Appends ``record`` as one JSON line to ``name``, flushed at once."""
    if not self.writes:
      return
    with open(self.path / name, 'a') as f:
      f.write(json.dumps(_jsonable(record)) + '\n')

  def log_metrics(self, record: dict) -> None:
    """Appends one JSON line to ``metrics.jsonl`` (a log, not a result)."""
    self.append_jsonl('metrics.jsonl', record)
