"""The papers' splits: SNR filter, train/test per (class, SNR) cell, target D_T and D_A.

DUSE Sec. IV-A: only vectors with SNR > 10 dB are used; each dataset is split into train
and test by its ratio (8:2 or 2:1); the target set D_T is a class-balanced random 1 % of
the training set and the auxiliary set D_A is the rest. The train/test split is done
inside every (class, SNR) cell so both halves keep the cell proportions. Disjointness and
coverage are checked every time (:meth:`Splits.check`).

AFNet Sec. IV-A: every SNR, train/test 8:2 per cell; :func:`train_validation_test` also
carves a validation share out of every training cell for early stopping. ClST: a small
``fraction`` of every cell to train, the rest to validation and test
(:func:`few_shot_split`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.selection import select


@dataclasses.dataclass(frozen=True)
class Splits:
  """train = target + auxiliary; test is disjoint from train."""

  train: SignalPool
  test: SignalPool
  target: SignalPool
  auxiliary: SignalPool

  def check(self) -> Splits:
    """Raises unless test, D_T and D_A are pairwise disjoint and D_T + D_A = train."""
    for a, b, what in ((self.train, self.test, 'train and test'),
                       (self.target, self.auxiliary, 'target and auxiliary'),
                       (self.target, self.test, 'target and test'),
                       (self.auxiliary, self.test, 'auxiliary and test')):
      shared = np.intersect1d(a.ids, b.ids)
      if shared.size:
        raise RuntimeError(f'split invariant broken: {what} share {shared.size} ids')
    joined = np.union1d(self.target.ids, self.auxiliary.ids)
    if not np.array_equal(joined, self.train.ids):
      raise RuntimeError('split invariant broken: target + auxiliary != train')
    return self

  def in_memory(self) -> Splits:
    """The same splits over one in-memory copy of the train and test signals."""
    memory = self.train.union(self.test).in_memory()
    rebind = lambda pool: memory.take_ids(pool.ids)
    return Splits(rebind(self.train), rebind(self.test), rebind(self.target),
                  rebind(self.auxiliary))

  @property
  def nbytes(self) -> int:
    """Bytes the train and test signals take in memory (float32)."""
    return self.train.nbytes + self.test.nbytes

  def summary(self) -> dict:
    return {name: len(getattr(self, name)) for name in ('train', 'test', 'target',
                                                         'auxiliary')}


def filter_snr(pool: SignalPool, min_snr: float | None) -> SignalPool:
  """Members with SNR strictly above ``min_snr`` dB (all members when None)."""
  if min_snr is None:
    return pool
  kept = pool.subset(pool.snr > min_snr)
  if len(kept) == 0:
    raise ConfigError(f'no vectors have SNR > {min_snr} dB (the file spans '
                      f'{pool.snr.min()}..{pool.snr.max()} dB); lower --min_snr')
  empty = [name for c, name in enumerate(pool.classes) if not np.any(kept.y == c)]
  if empty:
    raise ConfigError(f'class(es) {", ".join(empty)} have no vectors with SNR > {min_snr} '
                      'dB; lower --min_snr')
  return kept


def _cells(pool: SignalPool) -> list[np.ndarray]:
  """Positions of each (class, SNR) cell, cells in (class, SNR) order."""
  key = pool.y.astype(np.int64) * 100_000 + (pool.snr.astype(np.int64) + 50_000)
  order = np.argsort(key, kind='stable')
  bounds = np.flatnonzero(np.diff(key[order])) + 1
  return np.split(order, bounds)


def subsample_cells(pool: SignalPool, max_per_cell: int | None,
                    rng: np.random.Generator) -> SignalPool:
  """At most ``max_per_cell`` random members of every (class, SNR) cell."""
  if max_per_cell is None:
    return pool
  if max_per_cell < 1:
    raise ConfigError(f'max_per_cell must be at least 1, got {max_per_cell}')
  keep = [cell if len(cell) <= max_per_cell else rng.choice(cell, max_per_cell, replace=False)
          for cell in _cells(pool)]
  return pool.subset(np.concatenate(keep))


def split_train_test(pool: SignalPool, train_fraction: float, rng: np.random.Generator, *,
                     sides: tuple[str, str] | None = ('train', 'test'),
                     ) -> tuple[SignalPool, SignalPool]:
  """Splits every (class, SNR) cell at random, round(n * train_fraction) to the first side.

  ``sides`` names the two sides for the error raised when a cell leaves one of them empty
  (a cell of one vector, or a fraction that rounds a small cell's share to 0 or n): such a
  cell could not be tested (or trained on) per SNR, and is refused here, before any
  training, with the cells named. None allows empty sides (ClST's few-shot split, which
  checks its classes itself).
  """
  if not 0 < train_fraction < 1:
    raise ConfigError(f'train fraction must be in (0, 1), got {train_fraction}')
  train, unserved = [], []
  for cell in _cells(pool):
    n_train = int(round(len(cell) * train_fraction))
    if sides is not None and not 0 < n_train < len(cell):
      unserved.append((cell, sides[0] if n_train == 0 else sides[1]))
    train.append(rng.permutation(cell)[:n_train])
  if unserved:
    named = ', '.join(f'({pool.classes[pool.y[cell[0]]]}, {pool.snr[cell[0]]} dB: '
                      f'{len(cell)} vector(s), no {side})' for cell, side in unserved[:5])
    more = f' and {len(unserved) - 5} more' if len(unserved) > 5 else ''
    raise ConfigError(f'{len(unserved)} (class, SNR) cell(s) are too small for a '
                      f'{train_fraction:.0%} / {1 - train_fraction:.0%} {sides[0]} / '
                      f'{sides[1]} split: {named}{more}; give every cell more vectors '
                      '(--max_per_cell, --synthetic_per_cell) or check the data file')
  train = np.concatenate(train)
  is_train = np.zeros(len(pool), bool)
  is_train[train] = True
  return pool.subset(is_train), pool.subset(~is_train)


def split_target(train: SignalPool, fraction: float,
                 rng: np.random.Generator) -> tuple[SignalPool, SignalPool]:
  """D_T = class-balanced random ``fraction`` of ``train``; D_A = the rest.

  The target size is round(fraction * |train|), shared equally over classes (largest
  remainder to the lowest class indices); members are drawn uniformly within a class.
  """
  if not 0 < fraction < 1:
    raise ConfigError(f'target fraction must be in (0, 1), got {fraction}')
  total = int(round(fraction * len(train)))
  if total < train.num_classes:
    raise ConfigError(f'{fraction:.2%} of {len(train)} training vectors is {total}, fewer '
                      f'than one per class ({train.num_classes}); use more data or a larger '
                      'target fraction')
  quotas = select.equal_shares(total, train.num_classes, train.class_counts())
  picks = select.class_balanced_uniform(train.y, quotas, rng)
  in_target = np.zeros(len(train), bool)
  in_target[picks] = True
  return train.subset(in_target), train.subset(~in_target)


def make_splits(pool: SignalPool, *, train_fraction: float, min_snr: float | None = 10,
                target_fraction: float = 0.01, max_per_cell: int | None = None,
                split_seed: int = 0, target_seed: int = 0) -> Splits:
  """The papers' splits of a whole dataset ``pool``.

  Args:
    pool: the whole dataset.
    train_fraction: the dataset's train share (``DatasetSpec.train_fraction``).
    min_snr: keep SNR > min_snr dB (DUSE: 10); None keeps all.
    target_fraction: |D_T| / |train| (DUSE: 1 %).
    max_per_cell: keep at most this many vectors per (class, SNR) cell before splitting
      (the quick preset's smaller pools); None keeps all.
    split_seed: seeds the subsampling and the train/test split (fixed across runs).
    target_seed: seeds the draw of D_T (varies with the run's seed).
  """
  rng = np.random.default_rng([split_seed, 0x5EED])
  pool = filter_snr(pool, min_snr)
  pool = subsample_cells(pool, max_per_cell, rng)
  train, test = split_train_test(pool, train_fraction, rng)
  target, auxiliary = split_target(train, target_fraction,
                                   np.random.default_rng([target_seed, 0x7A26]))
  return Splits(train, test, target, auxiliary).check()


@dataclasses.dataclass(frozen=True)
class TrainValidationTest:
  """Train, validation (early stopping; None without) and test pools (AFNet's split)."""

  train: SignalPool
  validation: SignalPool | None
  test: SignalPool

  def summary(self) -> dict:
    return {'train': len(self.train), 'test': len(self.test),
            'validation': 0 if self.validation is None else len(self.validation)}

  @property
  def nbytes(self) -> int:
    """Bytes all its signals take in memory (float32)."""
    return sum(p.nbytes for p in (self.train, self.validation, self.test) if p is not None)

  def in_memory(self) -> TrainValidationTest:
    """The same split over one in-memory copy of all its signals."""
    pools = [self.train, self.test] + ([] if self.validation is None else [self.validation])
    memory = pools[0]
    for p in pools[1:]:
      memory = memory.union(p)
    memory = memory.in_memory()
    rebind = lambda p: None if p is None else memory.take_ids(p.ids)  # noqa: E731
    return TrainValidationTest(rebind(self.train), rebind(self.validation), rebind(self.test))


def train_validation_test(pool: SignalPool, *, train_fraction: float,
                          validation_fraction: float, min_snr: float | None = None,
                          max_per_cell: int | None = None,
                          split_seed: int = 0) -> TrainValidationTest:
  """AFNet's split: train/test per (class, SNR) cell, then validation carved from train.

  Args:
    pool: the whole dataset.
    train_fraction: the train share of every cell (AFNet: 0.8).
    validation_fraction: the share of every training cell held out for early stopping.
    min_snr: keep SNR > min_snr dB; None keeps every SNR (AFNet).
    max_per_cell: keep at most this many vectors per cell first; None keeps all.
    split_seed: seeds the subsampling and both splits.
  """
  rng = np.random.default_rng([split_seed, 0xC1055])
  pool = filter_snr(pool, min_snr)
  pool = subsample_cells(pool, max_per_cell, rng)
  train, test = split_train_test(pool, train_fraction, rng)
  validation = None
  if validation_fraction > 0:
    train, validation = split_train_test(train, 1 - validation_fraction, rng,
                                         sides=('train', 'validation'))
  return TrainValidationTest(train, validation, test)


@dataclasses.dataclass(frozen=True)
class FewShotSplit:
  """train, validation and test: pairwise disjoint, each stratified by (class, SNR)."""

  train: SignalPool
  validation: SignalPool
  test: SignalPool

  def check(self) -> FewShotSplit:
    """Raises unless the three pools are pairwise disjoint."""
    for a, b, what in ((self.train, self.validation, 'train and validation'),
                       (self.train, self.test, 'train and test'),
                       (self.validation, self.test, 'validation and test')):
      shared = np.intersect1d(a.ids, b.ids)
      if shared.size:
        raise RuntimeError(f'split invariant broken: {what} share {shared.size} ids')
    return self

  def summary(self) -> dict:
    return {name: len(getattr(self, name)) for name in ('train', 'validation', 'test')}

  def held_out_in_memory(self) -> FewShotSplit:
    """The same split with validation and test over one in-memory copy of their signals."""
    memory = self.validation.union(self.test).in_memory()
    return FewShotSplit(self.train, memory.take_ids(self.validation.ids),
                        memory.take_ids(self.test.ids))


def few_shot_split(pool: SignalPool, fraction: float, *, seed: int,
                   validation_share: float = 0.5, min_snr: float | None = None,
                   eval_per_cell: int | None = None) -> FewShotSplit:
  """ClST's split: ``fraction`` of every (class, SNR) cell to train, the rest to
  validation and test.

  Args:
    pool: the whole dataset.
    fraction: round(n * fraction) vectors of each cell of n go to train.
    seed: drives every draw.
    validation_share: round(m * share) of the m remaining vectors of a cell go to
      validation, the others to test.
    min_snr: keep vectors with SNR strictly above this first (None keeps all).
    eval_per_cell: then keep at most this many validation and this many test vectors per
      cell (None keeps all).
  """
  rng = np.random.default_rng([seed, 0xC157])
  pool = filter_snr(pool, min_snr)
  train, rest = split_train_test(pool, fraction, rng, sides=None)
  missing = [name for c, name in enumerate(pool.classes) if not np.any(train.y == c)]
  if missing:
    raise ConfigError(f'{fraction:.2%} of every (class, SNR) cell leaves no training vector '
                      f'of {", ".join(missing)}; use a larger fraction or more vectors per '
                      'cell (--synthetic_per_cell)')
  if len(rest) == 0:
    raise ConfigError(f'nothing is left for validation and test after taking {fraction:.2%} '
                      'of every cell; use a smaller fraction')
  validation, test = split_train_test(rest, validation_share, rng, sides=None)
  if len(validation) == 0 or len(test) == 0:
    raise ConfigError('too few vectors per (class, SNR) cell to split the rest into '
                      'validation and test; use more vectors per cell')
  validation = subsample_cells(validation, eval_per_cell, rng)
  test = subsample_cells(test, eval_per_cell, rng)
  return FewShotSplit(train, validation, test).check()
