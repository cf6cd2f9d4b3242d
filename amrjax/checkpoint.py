"""Checkpoints of training state with orbax, and the round checkpoints of resumable loops.

:func:`save` writes a pytree of arrays (a ``TrainState``) with orbax's
``StandardCheckpointer``, which writes into a temporary folder and renames it when
complete, so a killed process never leaves a half checkpoint under the final name.
:func:`restore` reads it back into the structure, shapes and dtypes of ``like``.

:class:`RoundCheckpoints` is what a round-based loop (the DUSE expansion) keeps in a folder:
after round r, ``round-r/`` (the state) and then ``round-r.json`` (the loop's own record up
to round r). The JSON is written last and atomically, so it marks a complete round; a
round folder without its JSON is ignored and overwritten.
"""

from __future__ import annotations

import json
import re
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
  """Per-round checkpoints of a loop in ``folder``: a state and a JSON record per round."""

  _JSON = re.compile(r'round-(\d+)\.json$')

  def __init__(self, folder: Path | str):
    self.folder = Path(folder)

  def save(self, round_index: int, state: Any, record: dict) -> None:
    """Saves round ``round_index``'s state, then its record (which marks it complete)."""
    save(self.folder / f'round-{round_index}', state)
    with atomic_write(self.folder / f'round-{round_index}.json', 'w') as f:
      f.write(json.dumps(record))

  def latest(self) -> int:
    """The last complete round, 0 when there is none."""
    if not self.folder.is_dir():
      return 0
    rounds = [int(m.group(1)) for p in self.folder.iterdir()
              if (m := self._JSON.match(p.name)) and (self.folder / f'round-{m.group(1)}').is_dir()]
    return max(rounds, default=0)

  def load(self, round_index: int, like: Any) -> tuple[Any, dict]:
    """(state, record) of a complete round."""
    record = json.loads((self.folder / f'round-{round_index}.json').read_text())
    return restore(self.folder / f'round-{round_index}', like), record
