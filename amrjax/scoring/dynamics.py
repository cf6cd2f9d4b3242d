"""Training dynamics: per-sample correctness over epochs, forgetting and FoQuS scores.

A :class:`Dynamics` holds running per-sample counters for a pool of n samples, updated
once per presentation of a sample by :func:`update`, a pure function of arrays that the
training loop calls inside its jitted step (``amrjax.train.fit_recording``). With one
presentation per epoch, the counters give:

- forgetting events (Toneva et al. 2019; FoQuS Eq. 4): 1 -> 0 changes of correctness
  between consecutive presentations;
- persistent errors (FoQuS Eq. 5): 0 -> 0 "changes" between consecutive presentations;
- the accumulated cross-entropy and the number of correct presentations (FoQuS Eq. 6).

Nothing of size n x T is kept: every counter is (n,), so recording is O(n) memory and a
few scatters per batch. Scores are derived by :func:`forgetting_counts`,
:func:`persistent_error_counts`, :func:`foqus_quality` and :func:`foqus_score`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Dynamics(NamedTuple):
  """Running per-sample training-dynamics counters, every field (n,).

  Attributes:
    last_correct: correctness at the latest presentation: 1, 0, or -1 (not presented yet).
    presentations: T, how many times the sample was presented.
    correct: sum_t c_t (FoQuS Eq. 6, L_count).
    forgetting: number of t >= 2 with c_{t-1} = 1 and c_t = 0 (FoQuS Eq. 4).
    persistent: number of t >= 2 with c_{t-1} = 0 and c_t = 0 (FoQuS Eq. 5).
    loss_sum: sum_t CE_t (FoQuS Eq. 6, L_accum), in nats.
  """

  last_correct: jax.Array
  presentations: jax.Array
  correct: jax.Array
  forgetting: jax.Array
  persistent: jax.Array
  loss_sum: jax.Array

  @property
  def size(self) -> int:
    return self.presentations.shape[0]


def init(n: int) -> Dynamics:
  """Counters for a pool of ``n`` samples, none presented yet."""
  def zeros():  # a separate buffer per field: the train step donates them
    return jnp.zeros((n,), jnp.int32)

  return Dynamics(last_correct=jnp.full((n,), -1, jnp.int8), presentations=zeros(),
                  correct=zeros(), forgetting=zeros(), persistent=zeros(),
                  loss_sum=jnp.zeros((n,), jnp.float32))


def update(dynamics: Dynamics, positions: jax.Array, correct: jax.Array, loss: jax.Array,
           mask: jax.Array) -> Dynamics:
  """Records one presentation of the samples at ``positions``.

  Pure and jit-able. Rows with ``mask`` false (batch padding) are dropped; every real
  position must appear at most once per call, as it does in a batch of one epoch.

  Args:
    dynamics: counters for the n pool samples.
    positions: (B,) int pool positions of the batch rows.
    correct: (B,) bool, whether the prediction at this presentation was right (c_t, Eq. 3).
    loss: (B,) per-example cross-entropy at this presentation.
    mask: (B,) bool, true for real rows.

  Returns:
    The updated counters.
  """
  n = dynamics.size
  pos = jnp.where(mask, positions, n)  # out of range -> dropped by the scatters
  c = correct.astype(jnp.int32)
  prev = dynamics.last_correct[jnp.minimum(pos, n - 1)].astype(jnp.int32)
  forgot = (prev == 1) & (c == 0)
  persisted = (prev == 0) & (c == 0)

  def add(counter, values):
    return counter.at[pos].add(values.astype(counter.dtype), mode='drop')

  return Dynamics(
      last_correct=dynamics.last_correct.at[pos].set(c.astype(jnp.int8), mode='drop'),
      presentations=add(dynamics.presentations, jnp.ones_like(c)),
      correct=add(dynamics.correct, c),
      forgetting=add(dynamics.forgetting, forgot),
      persistent=add(dynamics.persistent, persisted),
      loss_sum=add(dynamics.loss_sum, loss))


def forgetting_counts(dynamics: Dynamics, never_learned: float | None = None) -> jax.Array:
  """Toneva's forgetting score, (n,) float32: the number of forgetting events.

  A sample that was never classified correctly has no forgetting event but is the
  hardest of all; Toneva et al. rank it above every forgettable sample.

  Args:
    dynamics: recorded counters.
    never_learned: the score of never-learned samples. None (default, Toneva) gives them
      their number of presentations T, more than any sample can be forgotten (at most
      T / 2 times); data_diet uses ``inf``. DeepCore scores them 0, tied with unforgettable
      samples: do not copy that.

  Returns:
    (n,) scores; larger = more forgettable (the baseline keeps the largest).
  """
  learned = dynamics.correct > 0
  never = (dynamics.presentations.astype(jnp.float32) if never_learned is None
           else jnp.full(dynamics.forgetting.shape, never_learned, jnp.float32))
  return jnp.where(learned, dynamics.forgetting.astype(jnp.float32), never)


def persistent_error_counts(dynamics: Dynamics) -> jax.Array:
  """FoQuS Eq. 5: S_persist_err = #{t >= 2: c_{t-1} = 0 and c_t = 0}, (n,) float32."""
  return dynamics.persistent.astype(jnp.float32)


def foqus_quality(dynamics: Dynamics, beta: float = 0.1) -> jax.Array:
  """FoQuS Eq. 7: S_quality = L_count / T - beta L_accum / T, (n,) float32.

  NaN for samples never presented (T = 0).
  """
  t = dynamics.presentations.astype(jnp.float32)
  return (dynamics.correct.astype(jnp.float32) - beta * dynamics.loss_sum) / t


FOQUS_COMPONENTS = ('forgetting', 'persistent', 'quality')
"""The three terms of the FoQuS score (Eq. 8), in the paper's order (Table V ablation)."""


def foqus_components(dynamics: Dynamics, beta: float = 0.1) -> dict[str, jax.Array]:
  """The three normalised terms of FoQuS Eq. 8, each (n,) float32.

  ``'forgetting'``: S_forget / (T - 1); ``'persistent'``: S_persist_err / (T - 1);
  ``'quality'``: S_quality (Eq. 7). NaN for samples with fewer than T = 2 presentations.
  """
  t = dynamics.presentations.astype(jnp.float32)
  valid = t >= 2
  per_transition = lambda counts: jnp.where(  # noqa: E731
      valid, counts.astype(jnp.float32) / (t - 1.0), jnp.nan)
  return {'forgetting': per_transition(dynamics.forgetting),
          'persistent': per_transition(dynamics.persistent),
          'quality': jnp.where(valid, foqus_quality(dynamics, beta), jnp.nan)}


def foqus_score(dynamics: Dynamics, beta: float = 0.1,
                components: tuple[str, ...] = FOQUS_COMPONENTS) -> jax.Array:
  """FoQuS Eq. 8: S_forget / (T - 1) + S_persist_err / (T - 1) + S_quality, (n,) float32.

  Needs T >= 2 presentations; samples with fewer get NaN, which every selection refuses.

  Args:
    dynamics: counters from T epochs of training on the pool.
    beta: weight of the mean cross-entropy in the quality score (FoQuS: 0.1).
    components: which terms to add (default all three); a subset gives the single-metric
      and pairwise scores of the Table V ablation.
  """
  unknown = set(components) - set(FOQUS_COMPONENTS)
  if unknown or not components:
    raise ValueError(f'FoQuS components must be a non-empty subset of {FOQUS_COMPONENTS}, '
                     f'got {tuple(components)}')
  terms = foqus_components(dynamics, beta)
  return sum(terms[name] for name in components)
