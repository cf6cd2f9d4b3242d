"""Checkpoints of training state with orbax, and the round checkpoints of resumable loops.

:func:`save` writes a pytree of arrays (a ``TrainState``) with orbax's
``StandardCheckpointer``, which writes into a temporary folder and renames it when
complete, so a killed process never leaves a half checkpoint under the final name.
:func:`restore` reads it back into the structure, shapes and dtypes of ``like``. A full
disk is a one-line :class:`~amrjax.errors.ConfigError` naming the folder (orbax reports it
as a ``RESOURCE_EXHAUSTED`` ``ValueError`` from a background thread; its logged traceback
is held back, since the same error reaches the caller).

:class:`RoundCheckpoints` is what a round-based loop (the DUSE expansion) keeps in a folder:
after round r, ``round-r/`` (the state) and then ``round-r.json`` (the loop's own record up
to round r, and the SHA-256 of the state's arrays). The JSON is written last and
atomically, so it marks a complete round; a round folder without its JSON is ignored and
overwritten. The training loop keeps its epoch checkpoints the same way
(``prefix='epoch'``), only the latest one (``keep_only_latest``).

:meth:`RoundCheckpoints.load_latest` resumes from the last *sound* checkpoint: one whose
JSON does not parse, whose state orbax cannot read, or whose arrays do not match the
digest (a flipped bit in orbax's data restores without an error) is damaged; it is
reported in one line, removed, and the next older one is tried, down to a fresh start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from amrjax.errors import AmrjaxError, ConfigError
from amrjax.fileio import WORKDIR_ADVICE, atomic_write, full_disk_error, out_of_space

DIGEST_KEY = 'state_sha256'  # in a round's JSON record, beside the caller's keys


class _HoldBackOrbaxErrors(logging.Filter):
  """Drops the tracebacks orbax logs from its writer threads (the caller gets the error)."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not (record.levelno >= logging.ERROR and 'orbax' in record.pathname)


@contextlib.contextmanager
def _orbax_errors_held_back() -> Iterator[None]:
  held = _HoldBackOrbaxErrors()
  logger = logging.getLogger('absl')
  logger.addFilter(held)
  try:
    yield
  finally:
    logger.removeFilter(held)


def _remove_orbax_temporaries(path: Path) -> None:
  """Deletes what an orbax save into ``path`` left under a temporary name."""
  for tmp in path.parent.glob(f'{path.name}.orbax-checkpoint-tmp*'):
    shutil.rmtree(tmp, ignore_errors=True)


def save(path: Path | str, tree: Any, *, advice: str = WORKDIR_ADVICE) -> Path:
  """Writes ``tree`` (arrays) to the folder ``path``, replacing what is there.

  A full disk raises a one-line ConfigError naming ``path`` and ending with ``advice``; the
  partial write is deleted (it is under orbax's temporary name, never under ``path``).
  """
  path = Path(path).absolute()
  checkpointer = ocp.StandardCheckpointer()
  try:
    with _orbax_errors_held_back():
      checkpointer.save(path, tree, force=True)
      checkpointer.wait_until_finished()
  except Exception as e:
    if not out_of_space(e):
      raise
    with contextlib.suppress(Exception), _orbax_errors_held_back():
      checkpointer.close()  # lets its other writer threads end before the clean-up
    _remove_orbax_temporaries(path)
    raise full_disk_error(path, advice) from None
  return path


def restore(path: Path | str, like: Any) -> Any:
  """The pytree saved at ``path``, with the structure, shapes and dtypes of ``like``."""
  path = Path(path).absolute()
  if not path.is_dir():
    raise ConfigError(f'no checkpoint at {path}')
  with _orbax_errors_held_back():
    return ocp.StandardCheckpointer().restore(path, like)


def tree_digest(tree: Any) -> str:
  """SHA-256 of a pytree's arrays: every leaf's path, dtype, shape and bytes, in order."""
  digest = hashlib.sha256()
  for key_path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    array = np.ascontiguousarray(jax.device_get(leaf))
    digest.update(f'{jax.tree_util.keystr(key_path)}|{array.dtype.str}|{array.shape}|'
                  .encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def _warn(message: str) -> None:
  print(f'warning: {message}', file=sys.stderr, flush=True)


class _Damaged(Exception):
  """A checkpoint that cannot be resumed from (the message says why)."""


def _first_line(error: BaseException) -> str:
  lines = str(error).strip().splitlines()
  text = lines[0] if lines else ''
  text = text if len(text) <= 160 else text[:157] + '...'
  return f'{type(error).__name__}: {text}' if text else type(error).__name__


class RoundCheckpoints:
  """Per-round checkpoints of a loop in ``folder``: a state and a JSON record per round.

  Args:
    folder: where the checkpoints go (created on the first save).
    prefix: the file names' stem, ``<prefix>-<index>/`` and ``<prefix>-<index>.json``.
    keep_only_latest: after a save, delete the checkpoints of earlier indices.
    log: where the line about a damaged checkpoint goes (default: stderr, as a warning).
  """

  def __init__(self, folder: Path | str, *, prefix: str = 'round',
               keep_only_latest: bool = False, log: Callable[[str], None] | None = None):
    self.folder = Path(folder)
    self.prefix = prefix
    self.keep_only_latest = keep_only_latest
    self.log = log or _warn
    self._json = re.compile(rf'{re.escape(prefix)}-(\d+)\.json$')

  def _name(self, index: int) -> str:
    return f'{self.prefix}-{index}'

  def _marker(self, index: int) -> Path:
    return self.folder / f'{self._name(index)}.json'

  def save(self, round_index: int, state: Any, record: dict) -> None:
    """Saves round ``round_index``'s state, then its record (which marks it complete).

    A full disk raises a one-line ConfigError; the round is then left without its record,
    so a rerun resumes from the round before.
    """
    marker = self._marker(round_index)
    # A record left from an earlier save of this index must not vouch for the new state.
    marker.unlink(missing_ok=True)
    save(self.folder / self._name(round_index), state)
    with atomic_write(marker, 'w', advice=WORKDIR_ADVICE) as f:
      f.write(json.dumps({**record, DIGEST_KEY: tree_digest(state)}))
    if self.keep_only_latest:
      for index in self._complete():
        if index < round_index:
          self._marker(index).unlink()  # first: it marks complete
          shutil.rmtree(self.folder / self._name(index), ignore_errors=True)

  def _complete(self) -> list[int]:
    if not self.folder.is_dir():
      return []
    indices = [int(m.group(1)) for p in self.folder.iterdir() if (m := self._json.match(p.name))]
    return sorted(i for i in indices if (self.folder / self._name(i)).is_dir())

  def latest(self) -> int:
    """The last complete round (its record written; not checked for damage), 0 if none."""
    return max(self._complete(), default=0)

  def _read_record(self, round_index: int) -> tuple[dict, str | None]:
    """(record, state digest) of a complete round; None: written before digests were."""
    marker = self._marker(round_index)
    try:
      stored = json.loads(marker.read_text())
    except (OSError, ValueError) as e:  # ValueError: bad JSON or bad UTF-8
      raise _Damaged(f'{marker} is unreadable ({_first_line(e)})') from None
    if not isinstance(stored, dict):
      raise _Damaged(f'{marker} holds no checkpoint record')
    return stored, stored.pop(DIGEST_KEY, None)

  def _damage_error(self, why: str, detail: str = '') -> ConfigError:
    return ConfigError(f'damaged checkpoint: {why}{detail}; delete {self.folder} (the run '
                       'restarts that step) or choose a new --workdir')

  def record(self, round_index: int) -> dict:
    """The JSON record of a complete round; a damaged one raises a one-line ConfigError."""
    try:
      return self._read_record(round_index)[0]
    except _Damaged as e:
      raise self._damage_error(str(e)) from None

  def load(self, round_index: int, like: Any) -> tuple[Any, dict]:
    """(state, record) of a complete round; a damaged one raises a one-line ConfigError."""
    try:
      return self._load_sound(round_index, like)
    except _Damaged as e:
      raise self._damage_error(str(e)) from None

  def _load_sound(self, round_index: int, like: Any,
                  check: Callable[[dict], None] | None = None) -> tuple[Any, dict]:
    record, digest = self._read_record(round_index)
    if check is not None:
      try:
        check(record)
      except AmrjaxError:
        raise  # a sound checkpoint of something else: the caller's error
      except Exception as e:  # noqa: BLE001 (a record without the caller's fields)
        raise _Damaged(f'{self._marker(round_index)} is not a complete record '
                       f'({_first_line(e)})') from None
    folder = self.folder / self._name(round_index)
    try:
      state = restore(folder, like)
    except MemoryError:
      raise
    except Exception as e:  # noqa: BLE001 (orbax and tensorstore raise many types)
      raise _Damaged(f'{folder} is unreadable ({_first_line(e)})') from None
    if digest is not None and tree_digest(state) != digest:
      raise _Damaged(f'{folder} does not hold the arrays its record was written for')
    return state, record

  def load_latest(self, like: Any, check: Callable[[dict], None] | None = None
                  ) -> tuple[int, Any, dict | None]:
    """(index, state, record) of the last sound checkpoint; (0, None, None) when none is.

    ``check(record)`` runs before the state is read: an :class:`AmrjaxError` it raises (a
    checkpoint of other settings) is passed on; any other error marks the record damaged.
    A damaged checkpoint is logged in one line and removed, and the one before it is
    tried; if it cannot be removed, a one-line ConfigError says what to delete.
    """
    for index in reversed(self._complete()):
      try:
        state, record = self._load_sound(index, like, check)
      except _Damaged as e:
        self._discard_damaged(index, str(e))
        continue
      return index, state, record
    return 0, None, None

  def _discard_damaged(self, index: int, why: str) -> None:
    older = [i for i in self._complete() if i < index]
    try:
      self._marker(index).unlink(missing_ok=True)
      shutil.rmtree(self.folder / self._name(index))
    except FileNotFoundError:
      pass
    except OSError as e:
      raise self._damage_error(why, f', and it cannot be removed ({e.strerror})') from None
    then = (f'resuming from {self._name(older[-1])}' if older else 'starting this step afresh')
    self.log(f'damaged checkpoint: {why}; removed it, {then}')
