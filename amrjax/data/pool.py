"""``SignalPool``: a set of labelled I/Q vectors addressed by stable sample ids.

A pool is a sorted array of sample ids plus their labels and SNRs, over a *store* that
reads signals by id: an in-memory array (``ArrayStore``) or a lazily read HDF5 dataset
(``formats.H5Store``). Splitting, expanding and selecting only ever move ids; a sample's
id never changes, so every selection can be written down, compared and replayed.

Signals come out of a store as float32 (k, 2, L): row 0 is I, row 1 is Q.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from amrjax.errors import ConfigError


class SignalStore(Protocol):
  """Reads signals by sample id."""

  length: int

  def read(self, ids: np.ndarray) -> np.ndarray:
    """float32 (len(ids), 2, L) in the order of ``ids``."""


class ArrayStore:
  """Signals held in memory: ``x`` float32 (n, 2, L) with the sorted ``ids`` of its rows.

  With ``ids=None`` row i holds sample id i (a whole file in memory).
  """

  def __init__(self, x: np.ndarray, ids: np.ndarray | None = None):
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1] != 2:
      raise ConfigError(f'signals must be (N, 2, L) with I and Q rows, got shape {x.shape}')
    self.x = x if x.dtype == np.float32 else x.astype(np.float32)
    self.ids = None if ids is None else np.asarray(ids, np.int64)
    if self.ids is not None and len(self.ids) != len(x):
      raise ConfigError(f'{len(self.ids)} ids for {len(x)} signals')
    self.length = x.shape[2]

  @property
  def nbytes(self) -> int:
    return self.x.nbytes

  def rows(self, ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, np.int64)
    if self.ids is None:
      if ids.size and (ids.min() < 0 or ids.max() >= len(self.x)):
        raise KeyError(f'sample ids outside 0..{len(self.x) - 1}')
      return ids
    rows = np.searchsorted(self.ids, ids)
    rows = np.minimum(rows, len(self.ids) - 1)
    if ids.size and not np.array_equal(self.ids[rows], ids):
      raise KeyError('some sample ids are not in this store')
    return rows

  def read(self, ids: np.ndarray) -> np.ndarray:
    return self.x[self.rows(ids)]


@dataclasses.dataclass(frozen=True, eq=False)
class SignalPool:
  """Labelled vectors: sorted int64 ``ids``, int32 ``y`` and int32 ``snr`` (dB), aligned.

  Attributes:
    store: reads the signals of ``ids``.
    ids: (n,) sorted, unique sample ids.
    y: (n,) class indices into ``classes``.
    snr: (n,) SNR in dB.
    classes: class names in label-index order.
  """

  store: SignalStore
  ids: np.ndarray
  y: np.ndarray
  snr: np.ndarray
  classes: tuple[str, ...]

  def __post_init__(self):
    n = len(self.ids)
    if len(self.y) != n or len(self.snr) != n:
      raise ConfigError(f'pool arrays disagree: {n} ids, {len(self.y)} labels, '
                        f'{len(self.snr)} SNRs')
    if n > 1 and not np.all(np.diff(self.ids) > 0):
      raise ConfigError('pool ids must be sorted and unique')

  @classmethod
  def from_arrays(cls, x: np.ndarray, y: np.ndarray, snr: np.ndarray,
                  classes: tuple[str, ...]) -> SignalPool:
    """A pool over in-memory signals whose ids are their row numbers 0..N-1."""
    x = np.asarray(x)
    return cls(ArrayStore(x), np.arange(len(x), dtype=np.int64),
               np.asarray(y, np.int32), np.asarray(snr, np.int32), tuple(classes))

  def __len__(self) -> int:
    return len(self.ids)

  @property
  def length(self) -> int:
    return self.store.length

  @property
  def num_classes(self) -> int:
    return len(self.classes)

  @property
  def nbytes(self) -> int:
    """Bytes the members' signals take in memory (float32 (n, 2, L))."""
    return len(self) * 2 * self.length * 4

  def signals(self, positions: np.ndarray | None = None) -> np.ndarray:
    """float32 (k, 2, L) of the members at ``positions`` (all members when None)."""
    ids = self.ids if positions is None else self.ids[positions]
    return self.store.read(ids)

  def subset(self, positions: np.ndarray) -> SignalPool:
    """The members at ``positions`` (int indices or a boolean mask), kept in id order."""
    positions = np.asarray(positions)
    if positions.dtype == bool:
      positions = np.flatnonzero(positions)
    positions = np.unique(positions.astype(np.int64))
    return SignalPool(self.store, self.ids[positions], self.y[positions], self.snr[positions],
                      self.classes)

  def positions_of(self, ids: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in this pool; raises if any id is not a member."""
    ids = np.asarray(ids, np.int64)
    pos = np.minimum(np.searchsorted(self.ids, ids), max(len(self.ids) - 1, 0))
    if ids.size and (len(self.ids) == 0 or not np.array_equal(self.ids[pos], ids)):
      missing = np.setdiff1d(ids, self.ids)
      raise ConfigError(f'{len(missing)} sample ids are not in this pool '
                        f'(first: {missing[:5].tolist()})')
    return pos

  def take_ids(self, ids: np.ndarray) -> SignalPool:
    return self.subset(self.positions_of(ids))

  def drop_ids(self, ids: np.ndarray) -> SignalPool:
    """This pool without ``ids``; every id must be a member."""
    keep = np.ones(len(self), bool)
    keep[self.positions_of(ids)] = False
    return self.subset(keep)

  def union(self, other: SignalPool) -> SignalPool:
    """Members of either pool; both must read from the same store and share no id."""
    if other.store is not self.store:
      raise ConfigError('cannot join pools over different stores')
    if np.intersect1d(self.ids, other.ids).size:
      raise ConfigError('pools to join share sample ids')
    ids = np.concatenate([self.ids, other.ids])
    order = np.argsort(ids, kind='stable')
    return SignalPool(self.store, ids[order],
                      np.concatenate([self.y, other.y])[order],
                      np.concatenate([self.snr, other.snr])[order], self.classes)

  def class_counts(self) -> np.ndarray:
    """Members per class, int64 (C,)."""
    return np.bincount(self.y, minlength=self.num_classes)

  def in_memory(self) -> SignalPool:
    """The same pool over an in-memory copy of exactly its signals."""
    if isinstance(self.store, ArrayStore) and self.store.ids is None and (
        len(self) == len(self.store.x)):
      return self
    return SignalPool(ArrayStore(self.signals(), self.ids), self.ids, self.y, self.snr,
                      self.classes)

  def batches(self, batch_size: int, *, rng: np.random.Generator | None = None,
              ) -> Iterator[Batch]:
    """Fixed-size batches over all members; see :func:`iter_batches`."""
    return iter_batches(self, batch_size, rng=rng)


@dataclasses.dataclass(frozen=True)
class Batch:
  """One fixed-shape batch: ``x`` (B, 2, L), ``y`` (B,), ``mask`` (B,) true for real rows.

  ``positions`` (B,) are pool positions of the rows; padded rows repeat real ones, so
  their signals are valid (batch statistics stay sane) and ``mask`` drops them from
  every loss and metric.
  """

  x: np.ndarray
  y: np.ndarray
  mask: np.ndarray
  positions: np.ndarray


def iter_batches(pool: SignalPool, batch_size: int, *,
                 rng: np.random.Generator | None = None) -> Iterator[Batch]:
  """Yields ceil(n / batch_size) batches of exactly ``batch_size`` rows.

  The order is a fresh permutation from ``rng`` when given, else pool order. The last
  batch is padded by repeating rows of the same epoch and masked.
  """
  n = len(pool)
  if batch_size < 1:
    raise ConfigError(f'batch size must be positive, got {batch_size}')
  if n == 0:
    return
  order = rng.permutation(n) if rng is not None else np.arange(n)
  for start in range(0, n, batch_size):
    pos = order[start:start + batch_size]
    real = len(pos)
    if real < batch_size:
      pos = np.concatenate([pos, np.resize(order, batch_size - real)])
    mask = np.arange(batch_size) < real
    yield Batch(pool.signals(pos), pool.y[pos], mask, pos)
