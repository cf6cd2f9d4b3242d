"""Per-sample scores of every method in the papers: pure, jit-able functions of arrays.

Each returns the paper's own quantity; which end is selected is the strategy's business
(``amrjax.selection.select``, ``amrjax.selection.strategies``).

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
- model outputs on a batch (``features``): ``outputs_fn``, ``embedding_fn``, ``head_params``.

:func:`softmax_scorer` closes a softmax score over a model's eval-mode forward pass (in
float32 or bfloat16). ``amrjax.scoring.pools`` runs it over a whole pool in fixed-size
sharded batches (``score_pool``) or keeps only the k best scores on the way
(``select_from_pool``: pools larger than memory, several processes). Importing this package
starts no threads and builds no mesh.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from amrjax.errors import ConfigError
# The scorer modules, importable as amrjax.scoring.<module>.
from amrjax.scoring import (boundary, dynamics, features, geometry,  # noqa: F401
                            gradients, uncertainty)
from amrjax.scoring.boundary import deepfool
from amrjax.scoring.dynamics import (Dynamics, foqus_quality, foqus_score, forgetting_counts,
                                     persistent_error_counts)
from amrjax.scoring.geometry import (cal, contextual_diversity, herding, k_center_greedy,
                                     symmetric_kl)
from amrjax.scoring.glister import glister
from amrjax.scoring.gradients import grand, grand_last_layer, per_example_grad_norm
from amrjax.scoring.uncertainty import (el2n, entropy, least_confidence, margin,
                                        topk_entropy_weight)


COMPUTE_DTYPES = ('float32', 'bfloat16')


def cast_floating(tree, dtype: str):
  """``tree`` with every floating-point leaf cast to ``dtype`` (integer leaves kept)."""
  return jax.tree.map(
      lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _forward_probs(model: nn.Module, variables, x: jax.Array, compute_dtype: str) -> jax.Array:
  """Softmax (B, C) float32 of the eval-mode forward pass, run in ``compute_dtype``.

  In bfloat16 the floating variables and the input are cast before the forward pass and the
  logits cast back, so the softmax and every score stay in float32.
  """
  if compute_dtype not in COMPUTE_DTYPES:
    raise ConfigError(f'compute dtype must be one of {", ".join(COMPUTE_DTYPES)}, got '
                      f'{compute_dtype!r}')
  if compute_dtype != 'float32':
    variables = cast_floating(variables, compute_dtype)
    x = x.astype(compute_dtype)
  logits = model.apply(variables, x, train=False).astype(jnp.float32)
  return jax.nn.softmax(logits, axis=-1)


@functools.lru_cache(maxsize=None)
def softmax_scorer(model: nn.Module, score_fn: Callable[[jax.Array], jax.Array],
                   compute_dtype: str = 'float32') -> Callable:
  """Jitted ``(variables, x (B, 2, L)) -> score_fn(softmax(logits)) (B,)`` in eval mode.

  ``compute_dtype='bfloat16'`` runs the forward pass in bfloat16 (see
  ``benchmarks/README.md`` for its speed and how far it moves the selected set).
  """

  def scores(variables, x):
    return score_fn(_forward_probs(model, variables, x, compute_dtype))

  return jax.jit(scores)


@functools.lru_cache(maxsize=None)
def labelled_softmax_scorer(model: nn.Module,
                            score_fn: Callable[[jax.Array, jax.Array], jax.Array],
                            compute_dtype: str = 'float32') -> Callable:
  """Jitted ``(variables, x (B, 2, L), y (B,)) -> score_fn(softmax(logits), y) (B,)`` (EL2N)."""

  def scores(variables, x, y):
    return score_fn(_forward_probs(model, variables, x, compute_dtype), y)

  return jax.jit(scores)


__all__ = [
    'Dynamics', 'cal', 'cast_floating', 'contextual_diversity', 'deepfool', 'el2n',
    'entropy',
    'foqus_quality', 'foqus_score', 'forgetting_counts', 'glister', 'grand',
    'grand_last_layer', 'herding', 'k_center_greedy', 'labelled_softmax_scorer',
    'least_confidence', 'margin', 'per_example_grad_norm', 'persistent_error_counts',
    'softmax_scorer', 'symmetric_kl',
    'topk_entropy_weight',
]
