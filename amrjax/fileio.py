"""Atomic file writes: write a temporary sibling, then ``os.replace`` it into place.

A killed process leaves either the old file or the new one, never half of one. A full
disk (``ENOSPC``, a full quota, or the same reported by tensorstore as
``RESOURCE_EXHAUSTED``) becomes a one-line :class:`~amrjax.errors.ConfigError` that names
the file and what to do (:func:`full_disk_error`); the temporary file is deleted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from amrjax.errors import ConfigError

DEFAULT_ADVICE = 'free space there or choose another folder'
WORKDIR_ADVICE = 'free space there or choose another --workdir'  # for run directories
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# How tensorstore (orbax's writer) words ENOSPC and EDQUOT inside its ValueErrors.
_FULL_TEXTS = ('No space left on device', 'Disk quota exceeded',
               f"os_error_code='{errno.ENOSPC}'", f"os_error_code='{errno.EDQUOT}'")


def out_of_space(error: BaseException) -> bool:
  """Whether ``error``, or an error it was raised from, says the disk (or quota) is full.

  An ``OSError`` with ``ENOSPC``/``EDQUOT``, or any error whose text says so (tensorstore's
  ``RESOURCE_EXHAUSTED`` write errors arrive as ``ValueError``). An out-of-memory
  ``RESOURCE_EXHAUSTED`` from XLA is not one: it names no failed write.
  """
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
      return True
    text = str(error)
    if any(t in text for t in _FULL_TEXTS) or (
        'RESOURCE_EXHAUSTED' in text and 'writ' in text.lower()):
      return True
    error = error.__cause__ or error.__context__
  return False


def full_disk_error(path: Path | str, advice: str = DEFAULT_ADVICE) -> ConfigError:
  """The one-line error for a write to ``path`` that found no space left."""
  return ConfigError(f'no space left on the device to write {path}; {advice}')


@contextlib.contextmanager
def reporting_full_disk(path: Path | str, advice: str = DEFAULT_ADVICE) -> Iterator[None]:
  """Turns an out-of-space error (:func:`out_of_space`) in the block into
  :func:`full_disk_error`; other errors pass unchanged."""
  try:
    yield
  except ConfigError:
    raise
  except Exception as e:
    if out_of_space(e):
      raise full_disk_error(path, advice) from None
    raise


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def atomic_path(path: Path | str, *, advice: str = DEFAULT_ADVICE) -> Iterator[Path]:
  """Yields a temporary path beside ``path``; renames it to ``path`` on a clean exit.

  The temporary name ends in ``path``'s own suffix (``.x.png`` -> ``.x.png.<random>.png``),
  for writers that pick the format from the name (matplotlib). A full disk raises
  :func:`full_disk_error` with ``advice``, and ``path`` keeps its old content.
  """
  path = Path(path)
  with reporting_full_disk(path, advice):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=f'.tmp{path.suffix}',
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
      os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the group
      yield tmp
      os.replace(tmp, path)
    finally:
      tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: Path | str, mode: str = 'wb', *,
                 advice: str = DEFAULT_ADVICE) -> Iterator:
  """Yields a file object whose content replaces ``path`` atomically on a clean exit."""
  with atomic_path(path, advice=advice) as tmp, open(tmp, mode) as f:
    yield f
