"""Uncertainty scores from softmax outputs.

Each function returns the quantity its paper defines, one value per sample; which end of
the ranking is selected is the strategy's business (``amrjax.select``), not the scorer's.
"""

from __future__ import annotations

import jax
from jax import lax


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
