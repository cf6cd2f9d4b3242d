"""Uncertainty scores from softmax outputs.

Each function returns the quantity its paper defines, one value per sample; which end of
the ranking is selected is the strategy's business (``amrjax.selection.select``), not the scorer's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import xlogy

from amrjax.errors import ConfigError


def margin(probs: jax.Array) -> jax.Array:
  """DUSE Eq. 7: u = p*_1 - p*_2, the gap between the two largest class probabilities.

  Args:
    probs: (..., C) softmax probabilities, C >= 2.

  Returns:
    (...) margins in [0, 1]; a small margin means an uncertain sample (DUSE selects the
    smallest, Eq. 10).
  """
  top2, _ = lax.top_k(probs, 2)
  return top2[..., 0] - top2[..., 1]


def least_confidence(probs: jax.Array) -> jax.Array:
  """Least confidence (DUSE Sec. IV-B; Settles 2009): 1 - max_c p_c.

  Args:
    probs: (..., C) softmax probabilities.

  Returns:
    (...) scores in [0, 1 - 1/C]; larger = less confident (the baseline selects the largest).
  """
  return 1.0 - jnp.max(probs, axis=-1)


def entropy(probs: jax.Array) -> jax.Array:
  """Shannon entropy of the prediction (DUSE Eq. 13): -sum_c p_c log p_c, in nats.

  ``xlogy`` makes 0 log 0 = 0, so one-hot predictions score exactly 0.

  Args:
    probs: (..., C) softmax probabilities.

  Returns:
    (...) entropies in [0, log C]; larger = more uncertain (the baseline selects the largest).
  """
  return -jnp.sum(xlogy(probs, probs), axis=-1)


def topk_entropy_weight(probs: jax.Array, k: int = 3) -> jax.Array:
  """AFNet's confidence weight (Eq. 9-10 of the AFNet paper, as we read them).

  The k largest probabilities are renormalised to q_1..q_k (sum 1), H_k = -sum q log q
  (Eq. 9), and the weight is w = 1 - H_k / log k (Eq. 10): 1 for a prediction with all its
  top-k mass on one class, 0 when the top k are equal. AFNet found k = 3 best.

  Args:
    probs: (..., C) softmax probabilities, C >= k.
    k: how many of the largest probabilities enter the entropy, k >= 2.

  Returns:
    (...) weights in [0, 1]; larger = more confident.
  """
  if k < 2:
    raise ConfigError(f'top-k entropy needs k >= 2, got {k}')
  if probs.shape[-1] < k:
    raise ConfigError(f'top-{k} entropy needs at least {k} classes, got {probs.shape[-1]}')
  top, _ = lax.top_k(probs, k)
  q = top / jnp.sum(top, axis=-1, keepdims=True)
  h_k = -jnp.sum(xlogy(q, q), axis=-1)
  return 1.0 - h_k / jnp.log(k)


def el2n(probs: jax.Array, labels: jax.Array) -> jax.Array:
  """EL2N (Paul et al. 2021): the L2 error norm ||p - onehot(y)||_2.

  Args:
    probs: (..., C) softmax probabilities.
    labels: (...) integer class indices.

  Returns:
    (...) scores in [0, sqrt(2)]; larger = harder (the coreset keeps the largest).
  """
  onehot = jax.nn.one_hot(labels, probs.shape[-1], dtype=probs.dtype)
  return jnp.sqrt(jnp.sum(jnp.square(probs - onehot), axis=-1))
