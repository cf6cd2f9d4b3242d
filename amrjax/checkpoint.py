"""Checkpoints of training state with orbax, and the round checkpoints of resumable loops.

:func:`save` writes a pytree of arrays (a ``TrainState``) with orbax's
``StandardCheckpointer``, which writes into a temporary folder and renames it when
complete, so a killed process never leaves a half checkpoint under the final name.
:func:`restore` reads it back into the structure, shapes and dtypes of ``like``.

:class:`RoundCheckpoints` is what a round-based loop (the DUSE expansion) keeps in a folder:
after round r, ``round-r/`` (the state) and then ``round-r.json`` (the loop's own record up
to round r). The JSON is written last and atomically, so it marks a complete round; a
round folder without its JSON is ignored and overwritten. The training loop keeps its
epoch checkpoints the same way (``prefix='epoch'``), only the latest one
(``keep_only_latest``).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from amrjax.errors import ConfigError
from amrjax.fileio import atomic_write


def save(path: Path | str, tree: Any) -> Path:
  """Writes ``tree`` (arrays) to the folder ``path``, replacing what is there."""
  path = Path(path).absolute()
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(path, tree, force=True)
  checkpointer.wait_until_finished()
  return path


def restore(path: Path | str, like: Any) -> Any:
  """The pytree saved at ``path``, with the structure, shapes and dtypes of ``like``."""
  path = Path(path).absolute()
  if not path.is_dir():
    raise ConfigError(f'no checkpoint at {path}')
  return ocp.StandardCheckpointer().restore(path, like)


class RoundCheckpoints:
  """Per-round checkpoints of a loop in ``folder``: a state and a JSON record per round.

  Args:
    folder: where the checkpoints go (created on the first save).
    prefix: the file names' stem, ``<prefix>-<index>/`` and ``<prefix>-<index>.json``.
    keep_only_latest: after a save, delete the checkpoints of earlier indices.
  """

  def __init__(self, folder: Path | str, *, prefix: str = 'round',
               keep_only_latest: bool = False):
    self.folder = Path(folder)
    self.prefix = prefix
    self.keep_only_latest = keep_only_latest
    self._json = re.compile(rf'{re.escape(prefix)}-(\d+)\.json$')

  def _name(self, index: int) -> str:
    return f'{self.prefix}-{index}'

  def save(self, round_index: int, state: Any, record: dict) -> None:
    """Saves round ``round_index``'s state, then its record (which marks it complete)."""
    save(self.folder / self._name(round_index), state)
    with atomic_write(self.folder / f'{self._name(round_index)}.json', 'w') as f:
      f.write(json.dumps(record))
    if self.keep_only_latest:
      for index in self._complete():
        if index < round_index:
          (self.folder / f'{self._name(index)}.json').unlink()  # first: it marks complete
          shutil.rmtree(self.folder / self._name(index), ignore_errors=True)

  def _complete(self) -> list[int]:
    if not self.folder.is_dir():
      return []
    indices = [int(m.group(1)) for p in self.folder.iterdir() if (m := self._json.match(p.name))]
    return [i for i in indices if (self.folder / self._name(i)).is_dir()]

  def latest(self) -> int:
    """The last complete round, 0 when there is none."""
    return max(self._complete(), default=0)

  def record(self, round_index: int) -> dict:
    """The JSON record of a complete round."""
    return json.loads((self.folder / f'{self._name(round_index)}.json').read_text())

  def load(self, round_index: int, like: Any) -> tuple[Any, dict]:
    """(state, record) of a complete round."""
    return restore(self.folder / self._name(round_index), like), self.record(round_index)
