"""Per-sample scores of every method in the papers: pure, jit-able functions of arrays.

Each returns the paper's own quantity; which end is selected is the strategy's business
(``amrjax.select``, ``amrjax.strategies``).

- softmax outputs (``uncertainty``): :func:`least_confidence`, :func:`entropy`,
  :func:`margin`, :func:`topk_entropy_weight`, :func:`el2n`;
- gradients (``gradients``): :func:`grand`, :func:`grand_last_layer`,
  :func:`per_example_grad_norm`;
- decision boundary (``boundary``): :func:`deepfool`;
- training dynamics (``dynamics``): :class:`Dynamics`, updated per batch by
  ``dynamics.update``; :func:`forgetting_counts`, :func:`persistent_error_counts`,
  :func:`foqus_quality`, :func:`foqus_score`;
- geometry (``geometry``): :func:`herding`, :func:`k_center_greedy`,
  :func:`contextual_diversity`, :func:`cal`, :func:`symmetric_kl`;
- :func:`glister` (last-layer GLISTER with the one-step Taylor update);
- model outputs (``features``): :func:`embeddings`, :func:`pool_outputs`.

:func:`softmax_scorer` closes a softmax score over a model's eval-mode forward pass, and
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
from amrjax.scoring import boundary, dynamics, features, geometry, gradients, uncertainty
from amrjax.scoring.boundary import deepfool
from amrjax.scoring.dynamics import (Dynamics, foqus_quality, foqus_score, forgetting_counts,
                                     persistent_error_counts)
from amrjax.scoring.features import embeddings, pool_outputs
from amrjax.scoring.geometry import (cal, contextual_diversity, herding, k_center_greedy,
                                     symmetric_kl)
from amrjax.scoring.glister import glister
from amrjax.scoring.gradients import grand, grand_last_layer, per_example_grad_norm
from amrjax.scoring.uncertainty import (el2n, entropy, least_confidence, margin,
                                        topk_entropy_weight)


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


__all__ = [
    'Dynamics', 'cal', 'contextual_diversity', 'deepfool', 'el2n', 'embeddings', 'entropy',
    'foqus_quality', 'foqus_score', 'forgetting_counts', 'glister', 'grand',
    'grand_last_layer', 'herding', 'k_center_greedy', 'least_confidence', 'margin',
    'per_example_grad_norm', 'persistent_error_counts', 'pool_outputs', 'score_pool',
    'softmax_scorer', 'symmetric_kl', 'topk_entropy_weight',
]
