"""Per-sample scores: pure functions of arrays, and pool scoring with a model.

``margin`` and friends map softmax outputs (..., C) to one score per sample.
:func:`softmax_scorer` closes a score over a model's eval-mode forward pass, and
:func:`score_pool` runs it over a whole pool in fixed-size sharded batches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import numpy as np

from amrjax import parallel
from amrjax.data.pool import SignalPool
from amrjax.scoring.uncertainty import margin


@functools.lru_cache(maxsize=None)
def softmax_scorer(model: nn.Module, score_fn: Callable[[jax.Array], jax.Array]) -> Callable:
  """Jitted ``(variables, x (B, 2, L)) -> score_fn(softmax(logits)) (B,)`` in eval mode."""

  def scores(variables, x):
    return score_fn(jax.nn.softmax(model.apply(variables, x, train=False), axis=-1))

  return jax.jit(scores)


def score_pool(model: nn.Module, variables, pool: SignalPool,
               score_fn: Callable[[jax.Array], jax.Array] = margin, *,
               batch_size: int = 1024, mesh=None) -> np.ndarray:
  """``score_fn`` of the softmax of ``model`` for every member of ``pool``, (n,) float32."""
  return parallel.map_pool(softmax_scorer(model, score_fn), variables, pool,
                           batch_size=batch_size, mesh=mesh)


__all__ = ['margin', 'score_pool', 'softmax_scorer']
