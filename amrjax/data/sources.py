"""``--dataset=NAME``: the real file when the user has it, else the synthetic stand-in.

Resolution: ``data_dir / <spec file name>`` if it exists (any of the spec's accepted
names); otherwise a synthetic stand-in generated once into ``cache_dir`` in the same real
format and reused. A one-line notice says which, and how to point at the real file. The
returned ``origin`` dict goes into every ``results.json``.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from amrjax import progress
from amrjax.data import formats, specs as specs_lib, synth
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError, DataFormatError

REAL = 'real'
SYNTHETIC = 'synthetic'


def default_data_dir() -> Path:
  return Path(os.environ.get('AMRJAX_DATA_DIR', 'data'))


def default_cache_dir() -> Path:
  root = os.environ.get('AMRJAX_CACHE_DIR') or os.path.join(
      os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')), 'amrjax')
  return Path(root)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A whole dataset file opened as a pool, with where it came from.

  ``origin``: ``{'kind': 'real' | 'synthetic', 'path': ..., ...}``; synthetic origins also
  record the generator version, seed and count per cell. ``missing_cells``: the
  ``(class name, SNR)`` cells of the spec's grid that hold no vector in ``pool``, in grid
  order (a real file may lack some; see :func:`missing_cells`).
  """

  spec: specs_lib.DatasetSpec
  pool: SignalPool
  origin: dict
  missing_cells: tuple[tuple[str, int], ...] = ()


def missing_cells(spec: specs_lib.DatasetSpec,
                  pool: SignalPool) -> tuple[tuple[str, int], ...]:
  """The ``(class name, SNR)`` cells of ``spec``'s grid with no member in ``pool``."""
  snrs = np.asarray(spec.snrs)
  on_grid = np.isin(pool.snr, snrs) & (pool.y >= 0) & (pool.y < spec.num_classes)
  cell = (pool.y[on_grid].astype(np.int64) * len(snrs) +
          np.searchsorted(snrs, pool.snr[on_grid]))
  counts = np.bincount(cell, minlength=spec.num_classes * len(snrs))
  return tuple((spec.classes[i // len(snrs)], int(snrs[i % len(snrs)]))
               for i in np.flatnonzero(counts == 0))


def _missing_notice(data: Dataset, cells: tuple[tuple[str, int], ...], why: str) -> str:
  shown = ', '.join(f'{name} at {snr} dB' for name, snr in cells[:5])
  more = f' and {len(cells) - 5} more' if len(cells) > 5 else ''
  total = data.spec.num_classes * len(data.spec.snrs)
  return (f'amrjax: {data.origin.get("path", data.spec.name)}: {len(cells)} of {total} '
          f'(class, SNR) cells hold no vectors{why}: {shown}{more}')


def _with_missing_cells(data: Dataset, notify: Callable[[str], None]) -> Dataset:
  """``data`` with its ``missing_cells``; a one-line notice names them if there are any."""
  cells = missing_cells(data.spec, data.pool)
  if cells:
    notify(_missing_notice(data, cells, ''))
  return dataclasses.replace(data, missing_cells=cells)


def synthetic_path(spec: specs_lib.DatasetSpec, cache_dir: Path, *,
                   count_per_cell: int | None, seed: int) -> Path:
  """Where the stand-in for these settings lives in the cache."""
  count = spec.count_per_cell if count_per_cell is None else int(count_per_cell)
  folder = f'{spec.name}-n{count}-seed{seed}-v{synth.GENERATOR_VERSION}'
  return Path(cache_dir) / 'synthetic' / folder / spec.file_name


def ensure_synthetic(spec: specs_lib.DatasetSpec, path: Path, *,
                     count_per_cell: int | None, seed: int,
                     notify: Callable[[str], None] = print) -> bool:
  """Generates the stand-in at ``path`` unless it is there; True if it was generated."""
  if path.is_file():
    return False
  counts = synth.cell_counts(spec, count_per_cell, seed)
  total = int(counts.sum())
  need = formats.estimated_bytes(spec, total)
  _check_free_space(path, need)
  t0 = time.time()
  try:
    with progress.task(f'generating {spec.name}', total=total, unit='vector') as shown:

      def cells():
        for cell in synth.iter_cells(spec, count_per_cell=count_per_cell, seed=seed):
          yield cell
          shown.advance(len(cell[2]))
      formats.write_cells(path, spec, cells(), total=total)
  except (OSError, ConfigError) as e:
    failed = _failed_write(e)
    if failed is None:  # a bad setting, not a failed write
      raise
    room = (f'; it needs about {_size(need)}: free some space or point --cache_dir (or '
            '$AMRJAX_CACHE_DIR) at a disk with room'
            if failed.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else
            '; point --cache_dir (or $AMRJAX_CACHE_DIR) at a folder you can write')
    raise ConfigError(f'could not write the synthetic stand-in {path} '
                      f'({formats.one_line(failed)}){room}; nothing was left behind') from None
  notify(f'amrjax: generated {total:,} synthetic {spec.name} vectors in '
         f'{time.time() - t0:.0f} s')
  return True


def _size(nbytes: int) -> str:
  """``nbytes`` for people: '1.4 GB', '320 MB', '12 kB'."""
  for unit, scale in (('GB', 1e9), ('MB', 1e6), ('kB', 1e3)):
    if nbytes >= scale:
      return f'{nbytes / scale:.3g} {unit}'
  return f'{nbytes} bytes'


def _failed_write(error: BaseException) -> OSError | None:
  """The OSError behind ``error``: itself, or the one it was raised from or while handling.

  ``fileio.atomic_path`` may have turned a full disk into its own one-line ConfigError;
  the OSError it came from is still its context.
  """
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, OSError):
      return error
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  return None


def _check_free_space(path: Path, need: int) -> None:
  """Refuses to start writing ``need`` bytes at ``path`` when its disk has less free."""
  folder = Path(path).parent
  while not folder.exists() and folder != folder.parent:
    folder = folder.parent
  try:
    free = shutil.disk_usage(folder).free
  except OSError:  # unknown: the write itself will tell
    return
  if free < need:
    raise ConfigError(f'cannot generate the synthetic stand-in {path}: it needs about '
                      f'{_size(need)} and {folder} has {_size(free)} free; free some space '
                      'or point --cache_dir (or $AMRJAX_CACHE_DIR) at a disk with room')


def load(name: str, *, data_dir: Path | str | None = None,
         cache_dir: Path | str | None = None, synthetic_per_cell: int | None = None,
         synthetic_seed: int = 0, allow_synthetic: bool = True,
         notify: Callable[[str], None] = print) -> Dataset:
  """Opens dataset ``name``: the real file in ``data_dir``, else the cached stand-in.

  Args:
    name: a registered dataset name (``amrjax.data.specs.names()``).
    data_dir: where real files are looked for (default ``$AMRJAX_DATA_DIR`` or ``data``).
    cache_dir: where stand-ins are cached (default ``$AMRJAX_CACHE_DIR`` or
      ``~/.cache/amrjax``).
    synthetic_per_cell: vectors per (class, SNR) cell of the stand-in; default: the real
      file's count.
    synthetic_seed: the stand-in's generator seed.
    allow_synthetic: if False, a missing real file is an error.
    notify: receives the one-line notices: which file is used, and the (class, SNR)
      cells it lacks (also in the returned ``missing_cells``).
  """
  spec = specs_lib.get_spec(name)
  data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
  for file_name in spec.file_names:
    real = data_dir / file_name
    if real.exists():
      pool = formats.read_dataset(real, spec)
      return _with_missing_cells(Dataset(spec, pool, {
          'kind': REAL, 'path': str(real.resolve()), 'vectors': len(pool)}), notify)
  if not allow_synthetic:
    raise ConfigError(f'no {spec.name} file in {data_dir} (looked for '
                      f'{" or ".join(spec.file_names)}); put it there or pass --data_dir')
  cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
  path = synthetic_path(spec, cache_dir, count_per_cell=synthetic_per_cell,
                        seed=synthetic_seed)
  generated = ensure_synthetic(spec, path, count_per_cell=synthetic_per_cell,
                               seed=synthetic_seed, notify=notify)
  notify(f'amrjax: no real {spec.name} file at {data_dir / spec.file_name}; using the '
         f'synthetic stand-in {"generated at" if generated else "cached at"} {path}. For '
         f'the real data put {spec.file_name} in --data_dir.')
  pool = formats.read_dataset(path, spec)
  return _with_missing_cells(Dataset(spec, pool, {
      'kind': SYNTHETIC, 'path': str(path.resolve()), 'vectors': len(pool),
      'generator_version': synth.GENERATOR_VERSION, 'seed': synthetic_seed,
      'count_per_cell': spec.count_per_cell if synthetic_per_cell is None
                        else int(synthetic_per_cell)}), notify)


def nonfinite_positions(pool: SignalPool, chunk: int = 8192) -> np.ndarray:
  """Positions (int64) of the members whose signal holds a NaN or an infinity.

  Reads the pool in chunks of ``chunk`` vectors, so an HDF5 pool is scanned without being
  held in memory (one pass over the file).
  """
  bad = []
  for start in range(0, len(pool), chunk):
    positions = np.arange(start, min(start + chunk, len(pool)))
    x = pool.signals(positions)
    bad.append(positions[~np.isfinite(x).all(axis=(1, 2))])
  return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def check_finite(data: Dataset, *, drop: bool = False,
                 notify: Callable[[str], None] = print) -> Dataset:
  """Refuses a dataset with NaN or infinite samples, or (``drop=True``) leaves them out.

  The count of dropped vectors is recorded in ``origin['nonfinite_dropped']`` (0 when none),
  so results.json says how many were left out; ``missing_cells`` is brought up to date (a
  notice names the cells the drop emptied).
  """
  bad = nonfinite_positions(data.pool)
  if bad.size and not drop:
    raise DataFormatError(
        f'{data.origin.get("path", data.spec.name)}: {bad.size} of {len(data.pool):,} '
        f'vectors hold NaN or infinite values (first sample ids: '
        f'{data.pool.ids[bad[:5]].tolist()}); fix the file, or pass --drop_nonfinite to '
        'leave them out')
  if bad.size:
    keep = np.ones(len(data.pool), bool)
    keep[bad] = False
    notify(f'amrjax: left out {bad.size} of {len(data.pool):,} vectors holding NaN or '
           'infinite values (--drop_nonfinite)')
    before = set(missing_cells(data.spec, data.pool))
    data = dataclasses.replace(data, pool=data.pool.subset(keep))
    cells = missing_cells(data.spec, data.pool)
    emptied = tuple(c for c in cells if c not in before)
    if emptied:
      notify(_missing_notice(data, emptied, ' after --drop_nonfinite'))
    data = dataclasses.replace(data, missing_cells=cells)
  return dataclasses.replace(data, origin={**data.origin, 'nonfinite_dropped': int(bad.size)})
