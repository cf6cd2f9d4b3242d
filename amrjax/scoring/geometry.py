"""Greedy geometric coreset methods: Herding, k-Center Greedy, Contextual Diversity, and Cal.

Each greedy method returns int32 positions into the input rows, in the order they were picked.

* **Herding** (Welling 2009, in the argmin form of Chen et al. 2010). With mu the mean of all N
  embeddings and s rows already selected, the next pick is

      x_{s+1} = argmin_{x not selected} || (s + 1) mu - sum_{i <= s} x_i - x ||_2,

  the row that brings the running mean of the selection closest to mu. DeepCore takes the argmax
  of this distance, which selects the row that pushes the mean furthest away.
* **k-Center Greedy** (Sener & Savarese 2018, farthest-first traversal). With
  d(x) = min_{c selected} ||x - c||_2, the next pick is argmax_{x not selected} d(x); d is then
  lowered with the distances to the new center.
* **Contextual Diversity** (Agarwal et al. 2020, as DeepCore runs it): k-Center Greedy over the
  softmax vectors with the symmetric KL distance
  d(p, q) = KL(p || q) + KL(q || p) = sum_c (p_c - q_c)(log p_c - log q_c). It takes
  log-probabilities, so no logarithm of a raw probability is ever taken. DeepCore halves this
  distance; the scale does not change a pick.
* **Cal** (contrastive active learning, Margatina et al. 2021): for each query, the mean
  symmetric KL between its softmax and those of its k nearest reference rows (Euclidean distance
  in embedding space). A score, not a selection: Cal selects the largest.

Memory: the greedy methods keep O(N) running state (minima, a selected mask) besides the O(N D)
input, and compute distances in row chunks inside a ``lax.fori_loop``, so no N x N or budget x N
matrix is ever formed; each step costs O(N D) work, and every initially selected row costs one
such pass when the minima are seeded. Cal forms one (chunk, M) distance block at a time, so it
needs O(chunk M) beyond its inputs. Chunks are dynamic slices of the input (the last one shifted
back to end at row N), so the input is never padded or copied.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from amrjax.errors import ConfigError

GREEDY_CHUNK = 4096
CAL_CHUNK = 256


def symmetric_kl(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
  """Symmetric KL divergence KL(p || q) + KL(q || p) from log-probabilities.

  Computed as sum_c (p_c - q_c)(log p_c - log q_c) (Agarwal et al. 2020, Contextual Diversity;
  the divergence Cal averages over neighbours, Margatina et al. 2021). Classes where
  log p_c == log q_c contribute exactly 0, including log p_c = log q_c = -inf.

  Args:
    log_p: (..., C) log-probabilities, e.g. from ``jax.nn.log_softmax``.
    log_q: (..., C) log-probabilities, broadcastable against ``log_p``.

  Returns:
    (...) divergences in nats, >= 0, zero for identical distributions, symmetric in p and q.
  """
  log_p = jnp.asarray(log_p)
  log_q = jnp.asarray(log_q)
  term = (jnp.exp(log_p) - jnp.exp(log_q)) * (log_p - log_q)
  return jnp.sum(jnp.where(log_p == log_q, 0.0, term), axis=-1)


def _sq_euclidean(rows: jax.Array, center: jax.Array) -> jax.Array:
  """(c, D) rows, (D,) center -> (c,) squared Euclidean distances (same argmin/argmax)."""
  return jnp.sum(jnp.square(rows - center), axis=-1)


def _chunked(fn: Callable[[jax.Array], jax.Array], n: int, chunk: int) -> jax.Array:
  """(n,) float32 from ``fn(start) -> (chunk,)``, the values of rows start .. start + chunk - 1.

  Chunks start at multiples of ``chunk`` (chunk <= n); the last is moved back to end at row n, so
  it overlaps its neighbour and no padded copy of the input is needed.
  """

  def body(g, out):
    start = jnp.minimum(g * chunk, n - chunk)
    return lax.dynamic_update_slice_in_dim(out, fn(start), start, axis=0)

  return lax.fori_loop(0, -(-n // chunk), body, jnp.zeros((n,), jnp.float32))


def _rows(x: jax.Array, start, chunk: int) -> jax.Array:
  return lax.dynamic_slice_in_dim(x, start, chunk, axis=0)


@functools.partial(jax.jit, static_argnames=('budget', 'chunk'))
def _herding(x, initial, *, budget, chunk):
  n = x.shape[0]
  mu = jnp.sum(x, axis=0) / n
  running = jnp.sum(jnp.where(initial[:, None], x, 0.0), axis=0)
  count = jnp.sum(initial).astype(jnp.float32)

  def step(i, carry):
    picks, selected, running = carry
    target = (count + i + 1) * mu - running
    dist = _chunked(lambda s: _sq_euclidean(_rows(x, s, chunk), target), n, chunk)
    j = jnp.argmin(jnp.where(selected, jnp.inf, dist)).astype(jnp.int32)
    return picks.at[i].set(j), selected.at[j].set(True), running + x[j]

  picks = jnp.zeros((budget,), jnp.int32)
  return lax.fori_loop(0, budget, step, (picks, initial, running))[0]


@functools.partial(jax.jit, static_argnames=('budget', 'chunk', 'distance'))
def _farthest_first(features, initial_idx, first, *, budget, chunk, distance):
  """Greedy farthest-first traversal shared by k-Center Greedy and Contextual Diversity.

  ``distance((chunk, F) rows, (F,) center) -> (chunk,)``; ``initial_idx`` (L,) seeds the running
  minima (L static; with L = 0 the first pick is ``first`` and counts toward the budget).
  """
  n = features.shape[0]
  selected = jnp.zeros((n,), bool)
  min_dist = jnp.full((n,), jnp.inf, jnp.float32)

  def lower(min_dist, center_idx):
    center = features[center_idx]
    dist = _chunked(lambda s: distance(_rows(features, s, chunk), center), n, chunk)
    return jnp.minimum(min_dist, dist)

  picks = jnp.zeros((budget,), jnp.int32)
  if initial_idx.shape[0]:
    min_dist = lax.fori_loop(0, initial_idx.shape[0],
                             lambda i, m: lower(m, initial_idx[i]), min_dist)
    selected = selected.at[initial_idx].set(True)
    start = 0
  else:
    picks = picks.at[0].set(first)
    selected = selected.at[first].set(True)
    min_dist = lower(min_dist, first)
    start = 1

  def step(i, carry):
    picks, selected, min_dist = carry
    j = jnp.argmax(jnp.where(selected, -jnp.inf, min_dist)).astype(jnp.int32)
    return picks.at[i].set(j), selected.at[j].set(True), lower(min_dist, j)

  return lax.fori_loop(start, budget, step, (picks, selected, min_dist))[0]


@functools.partial(jax.jit, static_argnames=('k', 'chunk', 'exclude_self'))
def _cal(q_emb, q_logp, r_emb, r_logp, *, k, chunk, exclude_self):
  r_sq = jnp.sum(jnp.square(r_emb), axis=-1)
  r_idx = jnp.arange(r_emb.shape[0])

  def one_chunk(start):
    e, lp = _rows(q_emb, start, chunk), _rows(q_logp, start, chunk)  # (c, D), (c, C)
    d2 = (jnp.sum(jnp.square(e), axis=-1)[:, None] + r_sq[None, :]
          - 2.0 * jnp.matmul(e, r_emb.T, precision=lax.Precision.HIGHEST))  # (c, M)
    if exclude_self:
      rows = start + jnp.arange(chunk)
      d2 = jnp.where(rows[:, None] == r_idx[None, :], jnp.inf, d2)
    _, nbr = lax.top_k(-d2, k)  # (c, k)
    return jnp.mean(symmetric_kl(lp[:, None, :], r_logp[nbr]), axis=-1)

  return _chunked(one_chunk, q_emb.shape[0], chunk)


def _matrix(x, name: str) -> jax.Array:
  x = jnp.asarray(x, jnp.float32)
  if x.ndim != 2:
    raise ConfigError(f'{name} must be a 2-D (rows, features) array, got shape {x.shape}; '
                      'flatten the trailing axes first')
  return x


def _count(value, name: str, low: int) -> int:
  try:
    if isinstance(value, bool):
      raise TypeError
    value = operator.index(value)
  except TypeError:
    raise ConfigError(f'{name} must be an integer, got {value!r}') from None
  if value < low:
    raise ConfigError(f'{name} must be at least {low}, got {value}')
  return value


def _initial(initial_mask, n: int) -> np.ndarray:
  if initial_mask is None:
    return np.zeros((n,), bool)
  mask = np.asarray(initial_mask)
  if mask.shape != (n,) or mask.dtype != np.bool_:
    raise ConfigError(f'initial_mask must be a ({n},) bool array, got {mask.dtype} {mask.shape}; '
                      'pass True for the rows already selected')
  return mask


def _check_budget(budget, n: int, taken: int) -> int:
  budget = _count(budget, 'budget', 0)
  if budget > n - taken:
    raise ConfigError(f'budget {budget} exceeds the {n - taken} selectable rows '
                      f'({n} rows, {taken} already selected); lower the budget')
  return budget


def _chunk(chunk_size, n: int) -> int:
  return min(_count(chunk_size, 'chunk_size', 1), max(n, 1))


def herding(embeddings, budget: int, *, initial_mask=None,
            chunk_size: int = GREEDY_CHUNK) -> jax.Array:
  """Herding selection (Welling 2009; argmin form of Chen et al. 2010).

  With mu the mean of all N embeddings and s rows selected so far (``initial_mask`` rows count
  as selected, and their sum seeds the running sum), the next pick is
  argmin over unselected x of ||(s + 1) mu - sum(selected) - x||_2. DeepCore's Herding takes the
  argmax, the wrong end. Selected rows are never picked again.

  Args:
    embeddings: (N, D) feature vectors.
    budget: number of rows to pick, at most N minus the initially selected rows.
    initial_mask: optional (N,) bool, True for rows already selected (never returned).
    chunk_size: rows per distance chunk; results do not depend on it.

  Returns:
    (budget,) int32 row positions in selection order.
  """
  x = _matrix(embeddings, 'embeddings')
  n = x.shape[0]
  initial = _initial(initial_mask, n)
  budget = _check_budget(budget, n, int(initial.sum()))
  if budget == 0:
    return jnp.zeros((0,), jnp.int32)
  return _herding(x, jnp.asarray(initial), budget=budget, chunk=_chunk(chunk_size, n))


def _greedy(features, budget, initial_mask, first, chunk_size, distance) -> jax.Array:
  n = features.shape[0]
  initial = _initial(initial_mask, n)
  taken = int(initial.sum())
  budget = _check_budget(budget, n, taken)
  if taken and first is not None:
    raise ConfigError('first is only used without initial centers; drop first or initial_mask')
  first = _count(0 if first is None else first, 'first', 0)
  if first >= max(n, 1):
    raise ConfigError(f'first must index one of the {n} rows, got {first}')
  if budget == 0:
    return jnp.zeros((0,), jnp.int32)
  return _farthest_first(features, jnp.asarray(np.flatnonzero(initial), jnp.int32),
                         jnp.int32(first), budget=budget, chunk=_chunk(chunk_size, n),
                         distance=distance)


def k_center_greedy(embeddings, budget: int, *, initial_mask=None, first: int | None = None,
                    chunk_size: int = GREEDY_CHUNK) -> jax.Array:
  """k-Center Greedy selection (Sener & Savarese 2018), farthest-first in Euclidean distance.

  Keeps min_dist (N,) = distance of each row to its nearest selected center; each step picks
  argmax of min_dist over unselected rows, then lowers min_dist with the new center.

  Args:
    embeddings: (N, D) feature vectors.
    budget: number of rows to pick, at most N minus the initially selected rows.
    initial_mask: optional (N,) bool, True for already-labelled rows; they seed min_dist and are
      never returned. Seeding costs one O(N D) pass per such row.
    first: the first pick when there are no initial centers (default 0); it counts toward the
      budget. Not allowed together with initial centers.
    chunk_size: rows per distance chunk; results do not depend on it.

  Returns:
    (budget,) int32 row positions in selection order.
  """
  return _greedy(_matrix(embeddings, 'embeddings'), budget, initial_mask, first, chunk_size,
                 _sq_euclidean)


def contextual_diversity(log_probs, budget: int, *, initial_mask=None, first: int | None = None,
                         chunk_size: int = GREEDY_CHUNK) -> jax.Array:
  """Contextual Diversity selection (Agarwal et al. 2020, as DeepCore runs it).

  k-Center Greedy over softmax vectors with the symmetric KL distance
  d(p, q) = KL(p || q) + KL(q || p) = sum_c (p_c - q_c)(log p_c - log q_c) (:func:`symmetric_kl`).

  Args:
    log_probs: (N, C) log-probabilities, e.g. ``jax.nn.log_softmax(logits)``.
    budget: number of rows to pick, at most N minus the initially selected rows.
    initial_mask: optional (N,) bool, True for already-labelled rows (seed the minima, never
      returned).
    first: the first pick when there are no initial centers (default 0); it counts toward the
      budget.
    chunk_size: rows per distance chunk; results do not depend on it.

  Returns:
    (budget,) int32 row positions in selection order.
  """
  return _greedy(_matrix(log_probs, 'log_probs'), budget, initial_mask, first, chunk_size,
                 symmetric_kl)


def cal(query_embeddings, query_log_probs, ref_embeddings, ref_log_probs, *, k: int = 10,
        exclude_self: bool = False, chunk_size: int = CAL_CHUNK) -> jax.Array:
  """Contrastive active learning score (Margatina et al. 2021), as REFERENCE defines it.

  For each query, its k nearest reference rows by Euclidean distance in embedding space; the
  score is the mean symmetric KL (:func:`symmetric_kl`) between the query's softmax and each
  neighbour's. Cal selects the LARGEST scores (the most contrastive samples); DeepCore picks the
  wrong end. Ties in distance go to the lower reference index.

  Args:
    query_embeddings: (N, D) query feature vectors.
    query_log_probs: (N, C) query log-probabilities.
    ref_embeddings: (M, D) reference feature vectors (e.g. the labelled set).
    ref_log_probs: (M, C) reference log-probabilities.
    k: neighbours per query, 1 <= k <= M (M - 1 with ``exclude_self``).
    exclude_self: the query set is the reference set (same rows, same order) and a row is not
      its own neighbour.
    chunk_size: queries per (chunk, M) distance block; results do not depend on it.

  Returns:
    (N,) float32 scores in nats, >= 0; larger = more contrastive.
  """
  qe = _matrix(query_embeddings, 'query_embeddings')
  ql = _matrix(query_log_probs, 'query_log_probs')
  re = _matrix(ref_embeddings, 'ref_embeddings')
  rl = _matrix(ref_log_probs, 'ref_log_probs')
  n, m = qe.shape[0], re.shape[0]
  if ql.shape[0] != n or rl.shape[0] != m:
    raise ConfigError(f'embeddings and log-probabilities disagree on row counts: queries '
                      f'{n} vs {ql.shape[0]}, references {m} vs {rl.shape[0]}')
  if qe.shape[1] != re.shape[1] or ql.shape[1] != rl.shape[1]:
    raise ConfigError(f'query and reference widths differ: embeddings {qe.shape[1]} vs '
                      f'{re.shape[1]}, classes {ql.shape[1]} vs {rl.shape[1]}')
  exclude_self = bool(exclude_self)
  if exclude_self and n != m:
    raise ConfigError(f'exclude_self needs the query set to be the reference set, got {n} '
                      f'queries and {m} references; pass exclude_self=False')
  k = _count(k, 'k', 1)
  if k > m - exclude_self:
    raise ConfigError(f'k = {k} exceeds the {m - exclude_self} available neighbours; lower k')
  if n == 0:
    return jnp.zeros((0,), jnp.float32)
  return _cal(qe, ql, re, rl, k=k, chunk=_chunk(chunk_size, n), exclude_self=exclude_self)


__all__ = ['cal', 'contextual_diversity', 'herding', 'k_center_greedy', 'symmetric_kl']
