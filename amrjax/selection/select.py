"""Selecting from scored pools: top-k with an explicit direction, class budgets, FoQuS tiers.

Scorers return the paper's quantity and never decide which end is wanted; the caller says
``largest=True`` or ``largest=False`` here. Ties are broken deterministically by position
(the earlier position wins), and pools keep their ids sorted, so equal scores resolve to
the smaller sample id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from amrjax.errors import ConfigError


def check_rate(rate: float, kind: str) -> float:
  """``rate`` (a fraction in (0, 1]) or a one-line :class:`ConfigError` naming ``kind``
  ('expansion', 'coreset') and how to write a percentage."""
  if not 0 < rate <= 1:
    raise ConfigError(f'{kind} rate must be in (0, 1], got {rate}; write 4 % as 0.04')
  return rate


def _order_key(scores: np.ndarray, largest: bool) -> np.ndarray:
  scores = np.asarray(scores)
  if scores.ndim != 1:
    raise ConfigError(f'scores must be one value per sample (n,), got shape {scores.shape}')
  if np.isnan(scores).any():
    raise ConfigError(f'{int(np.isnan(scores).sum())} scores are NaN; cannot rank them')
  scores = scores.astype(np.float64)
  return -scores if largest else scores


def top_k(scores: np.ndarray, k: int, *, largest: bool,
          tie_rng: np.random.Generator | None = None) -> np.ndarray:
  """Positions of the ``k`` largest (or smallest) scores, best first.

  Ties are broken by position (earlier first), or, with ``tie_rng``, by a random order
  drawn from it: deterministic for a seed either way. Pass ``tie_rng`` for integer-valued
  scores with many ties (forgetting counts): pools are in file order, grouped by class and
  SNR, so breaking ties by position would pick whole classes or SNR cells.

  Args:
    scores: (n,) finite or infinite scores; NaN is refused.
    k: how many to take, 0 <= k <= n.
    largest: take the largest scores if True, the smallest if False.
    tie_rng: breaks ties in a random order when given.

  Returns:
    int64 (k,) positions into ``scores``.
  """
  if tie_rng is not None:
    perm = tie_rng.permutation(len(np.asarray(scores)))
    return perm[top_k(np.asarray(scores)[perm], k, largest=largest)].astype(np.int64)
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


class StreamingTopK:
  """The ``k`` best of a stream of (score, sample id) pairs, in O(k + chunk) memory.

  Scores arrive batch by batch (:meth:`add`) and are cut back to the k best whenever more
  than ``k + max(k, chunk)`` are held, so a pool of any size is ranked without keeping its
  scores. :meth:`result` equals :func:`top_k` over all scores of a pool in id order: ties
  go to the smaller id.

  Args:
    k: how many to keep, k >= 0.
    largest: keep the largest scores if True, the smallest if False.
    chunk: scores buffered between reductions (amortises the partition).
  """

  def __init__(self, k: int, *, largest: bool, chunk: int = 1 << 16):
    if k < 0:
      raise ConfigError(f'cannot keep {k} samples; k must be >= 0')
    self.k, self.largest, self.chunk = int(k), bool(largest), int(chunk)
    self.seen = 0
    self._keys: list[np.ndarray] = []
    self._ids: list[np.ndarray] = []
    self._held = 0

  def add(self, scores: np.ndarray, ids: np.ndarray) -> None:
    """Adds (b,) ``scores`` of the samples ``ids`` (b,); NaN is refused."""
    key = _order_key(scores, self.largest)
    ids = np.asarray(ids, np.int64)
    if ids.shape != key.shape:
      raise ConfigError(f'{len(ids)} ids for {len(key)} scores')
    self._keys.append(key)
    self._ids.append(ids)
    self._held += len(key)
    self.seen += len(key)
    if self._held > self.k + max(self.k, self.chunk):  # amortised: O(1) per score
      self._reduce()

  def _reduce(self) -> None:
    if not self._keys:
      self._keys, self._ids = [np.zeros(0)], [np.zeros(0, np.int64)]
    keys, ids = np.concatenate(self._keys), np.concatenate(self._ids)
    if len(keys) > self.k:
      if self.k == 0:
        keys, ids = keys[:0], ids[:0]
      else:
        kth = np.partition(keys, self.k - 1)[self.k - 1]
        better = keys < kth
        tied = np.flatnonzero(keys == kth)
        tied = tied[np.argsort(ids[tied], kind='stable')][:self.k - int(better.sum())]
        keep = np.concatenate([np.flatnonzero(better), tied])
        keys, ids = keys[keep], ids[keep]
    self._keys, self._ids, self._held = [keys], [ids], len(keys)

  def result(self) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64 (k,), scores float64 (k,)) best first; raises if fewer than k were seen."""
    if self.seen < self.k:
      raise ConfigError(f'cannot select {self.k} of {self.seen} samples')
    self._reduce()
    keys, ids = self._keys[0], self._ids[0]
    order = np.lexsort((ids, keys))
    keys, ids = keys[order], ids[order]
    return ids, (-keys if self.largest else keys)


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


def proportional_quotas(class_counts: np.ndarray, budget: int) -> np.ndarray:
  """``budget`` split over classes in proportion to ``class_counts`` (largest remainder).

  Each class gets floor(budget n_c / n); the units left go to the largest fractional
  parts, ties to the lower class index. The quotas sum to exactly ``budget`` and never
  exceed a class's count.

  Args:
    class_counts: (C,) samples per class.
    budget: total to select, 0 <= budget <= sum(class_counts).

  Returns:
    int64 (C,) quotas.
  """
  counts = np.asarray(class_counts, np.int64)
  total = int(counts.sum())
  if not 0 <= budget <= total:
    raise ConfigError(f'cannot select {budget} of {total} samples')
  exact = counts * budget
  quotas = exact // max(total, 1)
  remainders = exact - quotas * max(total, 1)
  left = budget - int(quotas.sum())
  order = np.lexsort((np.arange(len(counts)), -remainders))  # largest remainder first
  quotas[order[:left]] += 1
  return quotas


def per_class(labels: np.ndarray, quotas: np.ndarray,
              pick: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
  """Applies a selection to each class separately; sorted positions of the union.

  Args:
    labels: (n,) class indices.
    quotas: (C,) how many to take from each class.
    pick: ``pick(members, quota)`` returns ``quota`` of the positions ``members`` (int
      (m,) positions of one class, ascending).
  """
  labels = np.asarray(labels)
  picks = []
  for c, quota in enumerate(np.asarray(quotas, np.int64)):
    members = np.flatnonzero(labels == c)
    if quota > len(members):
      raise ConfigError(f'class {c} has {len(members)} samples, {quota} requested')
    chosen = np.asarray(pick(members, int(quota)), np.int64)
    if len(chosen) != quota or not np.isin(chosen, members).all():
      raise RuntimeError(f'selection for class {c} returned positions outside the class')
    picks.append(chosen)
  return np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64)


def class_balanced_top_k(scores: np.ndarray, labels: np.ndarray, quotas: np.ndarray, *,
                         largest: bool, tie_rng: np.random.Generator | None = None
                         ) -> np.ndarray:
  """Per class c, the ``quotas[c]`` best-scoring positions of that class; sorted positions.

  Args:
    scores: (n,) scores.
    labels: (n,) class indices.
    quotas: (C,) how many to take from each class.
    largest: direction, as in :func:`top_k`.
    tie_rng: random tie-breaking, as in :func:`top_k`.
  """
  scores = np.asarray(scores)
  return per_class(labels, quotas, lambda members, q: members[
      top_k(scores[members], q, largest=largest, tie_rng=tie_rng)])


def uniform(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
  """``k`` positions of ``n`` drawn uniformly without replacement; sorted."""
  if not 0 <= k <= n:
    raise ConfigError(f'cannot select {k} of {n} samples')
  return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)


def class_balanced_uniform(labels: np.ndarray, quotas: np.ndarray,
                           rng: np.random.Generator) -> np.ndarray:
  """Per class c, ``quotas[c]`` of its positions uniformly at random; sorted positions."""
  return per_class(labels, quotas, lambda members, q: members[uniform(len(members), q, rng)])


DEFAULT_TIER_SHARES = (0.5, 0.3, 0.2)
"""FoQuS tier shares (highest-score tier first). The paper does not give them; this is
our default: half the budget from the top third of FoQuS scores, the rest spread over
the middle and bottom thirds so the coreset keeps easy, learnable samples too."""


def tiered(scores: np.ndarray, k: int, rng: np.random.Generator, *,
           shares: Sequence[float] = DEFAULT_TIER_SHARES) -> np.ndarray:
  """FoQuS tiered sampling (Algorithm 1, lines 11-12): sorted positions of ``k`` samples.

  The samples are ranked by score (largest first, ties by position) and cut into
  ``len(shares)`` tiers of equal size (the first ``n mod T`` tiers one larger); tier i
  gives round(shares[i] k) samples (largest-remainder rounding, so the counts sum to k),
  drawn uniformly within the tier. A tier too small for its share gives all it has and
  the shortfall is drawn from the other tiers with room, highest tier first.

  Args:
    scores: (n,) FoQuS scores (or any score; larger = higher tier).
    k: how many to select, 0 <= k <= n.
    rng: draws within tiers.
    shares: fraction of the budget from each tier, highest tier first; non-negative,
      summing to 1.

  Returns:
    int64 (k,) sorted positions.
  """
  shares = np.asarray(shares, np.float64)
  if shares.ndim != 1 or len(shares) == 0 or (shares < 0).any() or not np.isclose(
      shares.sum(), 1.0):
    raise ConfigError(f'tier shares must be non-negative and sum to 1, got {shares.tolist()}')
  ranked = top_k(scores, len(np.asarray(scores)), largest=True)
  n = len(ranked)
  if not 0 <= k <= n:
    raise ConfigError(f'cannot select {k} of {n} samples')
  tiers = np.array_split(ranked, len(shares))
  sizes = np.array([len(t) for t in tiers], np.int64)
  wanted = _largest_remainder(shares * k)
  quotas = np.minimum(wanted, sizes)
  overflow = int(wanted.sum() - quotas.sum())
  for i in range(len(tiers)):
    room = int(sizes[i] - quotas[i])
    moved = min(room, overflow)
    quotas[i] += moved
    overflow -= moved
  picks = [tier[uniform(len(tier), int(q), rng)] for tier, q in zip(tiers, quotas)]
  return np.sort(np.concatenate(picks)).astype(np.int64)


def _largest_remainder(exact: np.ndarray) -> np.ndarray:
  """Integers summing to round(sum(exact)), each floor(exact) or one more."""
  floors = np.floor(exact).astype(np.int64)
  left = int(round(exact.sum())) - int(floors.sum())
  order = np.lexsort((np.arange(len(exact)), -(exact - floors)))
  floors[order[:left]] += 1
  return floors
