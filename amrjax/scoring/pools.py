"""Scores and model outputs over whole pools, sharded over every device and host.

The scorers of ``amrjax.scoring`` are functions of arrays; these run them over a
:class:`~amrjax.data.pool.SignalPool` in fixed-size batches through ``amrjax.parallel``
(a mesh of every device, a reader thread, several processes). They live apart so that
importing the pure scorers pulls in no threads, meshes or pools.

- :func:`score_pool`: a softmax score of every member, (n,) float32;
- :func:`select_from_pool`: only the k best scores kept on the way (pools larger than
  memory, several processes);
- :func:`pool_outputs`: embeddings (n, D) and log-probabilities (n, C) in one pass;
- :func:`embeddings`: penultimate features (n, D) for geometric selection.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import numpy as np

from amrjax import parallel
from amrjax.data.pool import SignalPool
from amrjax.scoring import softmax_scorer
from amrjax.scoring.features import embedding_fn, outputs_fn
from amrjax.scoring.uncertainty import margin


def score_pool(model: nn.Module, variables, pool: SignalPool,
               score_fn: Callable[[jax.Array], jax.Array] = margin, *,
               batch_size: int = 1024, mesh=None, compute_dtype: str = 'float32',
               ) -> np.ndarray:
  """``score_fn`` of the softmax of ``model`` for every member of ``pool``, (n,) float32."""
  return parallel.map_pool(softmax_scorer(model, score_fn, compute_dtype), variables, pool,
                           batch_size=batch_size, mesh=mesh)


def select_from_pool(model: nn.Module, variables, pool: SignalPool, k: int, *,
                     score_fn: Callable[[jax.Array], jax.Array] = margin,
                     largest: bool = False, batch_size: int = 1024, mesh=None,
                     compute_dtype: str = 'float32') -> tuple[np.ndarray, np.ndarray]:
  """The ``k`` pool members with the smallest (``largest=False``) or largest score.

  The pool is scored batch by batch and only the k best are kept
  (:func:`amrjax.parallel.top_k_pool`), so it may be larger than memory (an HDF5 pool)
  and be split over several processes. The default is DUSE's selection (Eq. 10): the k
  smallest margins p1 - p2.

  Returns:
    (ids int64 (k,), scores float64 (k,)), best first; ties go to the smaller id.
  """
  return parallel.top_k_pool(softmax_scorer(model, score_fn, compute_dtype), variables, pool,
                             k, largest=largest, batch_size=batch_size, mesh=mesh)


def pool_outputs(model: nn.Module, variables, pool: SignalPool, *,
                 batch_size: int = 1024) -> dict[str, np.ndarray]:
  """Embeddings (n, D) and log-probabilities (n, C) of every pool member, one pass."""
  return parallel.map_pool(outputs_fn(model), variables, pool, batch_size=batch_size)


def embeddings(model: nn.Module, variables, pool: SignalPool, *,
               batch_size: int = 1024) -> np.ndarray:
  """Penultimate-layer embeddings (n, D) of every pool member, for geometric selection."""
  return parallel.map_pool(embedding_fn(model), variables, pool, batch_size=batch_size)
