"""Selecting from scored pools: top-k with an explicit direction, class-balanced budgets.

Scorers return the paper's quantity and never decide which end is wanted; the caller says
``largest=True`` or ``largest=False`` here. Ties are broken deterministically by position
(the earlier position wins), and pools keep their ids sorted, so equal scores resolve to
the smaller sample id.
"""

from __future__ import annotations

import numpy as np

from amrjax.errors import ConfigError


def _order_key(scores: np.ndarray, largest: bool) -> np.ndarray:
  scores = np.asarray(scores)
  if scores.ndim != 1:
    raise ConfigError(f'scores must be one value per sample (n,), got shape {scores.shape}')
  if np.isnan(scores).any():
    raise ConfigError(f'{int(np.isnan(scores).sum())} scores are NaN; cannot rank them')
  scores = scores.astype(np.float64)
  return -scores if largest else scores


def top_k(scores: np.ndarray, k: int, *, largest: bool) -> np.ndarray:
  """Positions of the ``k`` largest (or smallest) scores, best first, ties by position.

  Args:
    scores: (n,) finite or infinite scores; NaN is refused.
    k: how many to take, 0 <= k <= n.
    largest: take the largest scores if True, the smallest if False.

  Returns:
    int64 (k,) positions into ``scores``.
  """
  key = _order_key(scores, largest)
  n = key.shape[0]
  if not 0 <= k <= n:
    raise ConfigError(f'cannot select {k} of {n} samples')
  if k == 0:
    return np.zeros(0, np.int64)
  if k < n:
    # Everything strictly better than the k-th value, plus all ties with it, then a
    # stable sort by (key, position) keeps tie-breaking independent of the partition.
    kth = np.partition(key, k - 1)[k - 1]
    candidates = np.flatnonzero(key <= kth)
  else:
    candidates = np.arange(n)
  order = candidates[np.argsort(key[candidates], kind='stable')]
  return order[:k].astype(np.int64)


def balanced_quotas(current: np.ndarray, add: int, available: np.ndarray) -> np.ndarray:
  """How many to add per class so that ``current + quota`` is as equal as possible.

  Water-filling: classes are raised to a common level, never above what they have
  ``available``; the units that do not divide evenly go to the lowest class indices among
  those at the level. The quotas sum to exactly ``add``.

  Args:
    current: (C,) counts already held per class.
    add: total to add.
    available: (C,) how many each class can still give.

  Returns:
    int64 (C,) quotas with 0 <= quota <= available and sum == add.
  """
  current = np.asarray(current, np.int64)
  available = np.asarray(available, np.int64)
  if add < 0:
    raise ConfigError(f'cannot add a negative number of samples ({add})')
  if add > available.sum():
    raise ConfigError(f'budget {add} exceeds the {int(available.sum())} samples available')

  def filled(level: int) -> np.ndarray:
    return np.clip(level - current, 0, available)

  lo, hi = int(current.min()), int((current + available).max())
  while lo < hi:  # smallest level whose fill reaches `add`
    mid = (lo + hi) // 2
    if filled(mid).sum() >= add:
      hi = mid
    else:
      lo = mid + 1
  quotas = filled(lo - 1) if lo > current.min() else np.zeros_like(current)
  remainder = add - int(quotas.sum())
  can_rise = np.flatnonzero((current + quotas == lo - 1) & (quotas < available))
  quotas[can_rise[:remainder]] += 1
  if quotas.sum() != add:  # pragma: no cover - guarded by the search above
    raise RuntimeError('balanced_quotas failed to meet the budget')
  return quotas


def equal_shares(total: int, num_classes: int, available: np.ndarray | None = None,
                 ) -> np.ndarray:
  """``total`` split over classes as equally as possible (largest-remainder rounding)."""
  if available is None:
    available = np.full(num_classes, total, np.int64)
  return balanced_quotas(np.zeros(num_classes, np.int64), total, available)


def class_balanced_top_k(scores: np.ndarray, labels: np.ndarray, quotas: np.ndarray, *,
                         largest: bool) -> np.ndarray:
  """Per class c, the ``quotas[c]`` best-scoring positions of that class; sorted positions.

  Args:
    scores: (n,) scores.
    labels: (n,) class indices.
    quotas: (C,) how many to take from each class.
    largest: direction, as in :func:`top_k`.
  """
  labels = np.asarray(labels)
  picks = []
  for c, quota in enumerate(np.asarray(quotas, np.int64)):
    members = np.flatnonzero(labels == c)
    if quota > len(members):
      raise ConfigError(f'class {c} has {len(members)} samples, {quota} requested')
    picks.append(members[top_k(np.asarray(scores)[members], int(quota), largest=largest)])
  return np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64)


def uniform(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
  """``k`` positions of ``n`` drawn uniformly without replacement; sorted."""
  if not 0 <= k <= n:
    raise ConfigError(f'cannot select {k} of {n} samples')
  return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)


def class_balanced_uniform(labels: np.ndarray, quotas: np.ndarray,
                           rng: np.random.Generator) -> np.ndarray:
  """Per class c, ``quotas[c]`` of its positions uniformly at random; sorted positions."""
  labels = np.asarray(labels)
  picks = []
  for c, quota in enumerate(np.asarray(quotas, np.int64)):
    members = np.flatnonzero(labels == c)
    picks.append(members[uniform(len(members), int(quota), rng)])
  return np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64)
