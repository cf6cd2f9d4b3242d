"""Atomic file writes: write a temporary sibling, then ``os.replace`` it into place.

A killed process leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
  """Yields a temporary path beside ``path``; renames it to ``path`` on a clean exit.

  The temporary name ends in ``path``'s own suffix (``.x.png`` -> ``.x.png.<random>.png``),
  for writers that pick the format from the name (matplotlib).
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=f'.tmp{path.suffix}',
                             dir=path.parent)
  os.close(fd)
  tmp = Path(tmp)
  os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the group
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: Path | str, mode: str = 'wb') -> Iterator:
  """Yields a file object whose content replaces ``path`` atomically on a clean exit."""
  with atomic_path(path) as tmp, open(tmp, mode) as f:
    yield f
