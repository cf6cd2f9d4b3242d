"""The pool and scorer the two-process test and its worker processes share."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amrjax import models
from tests.helpers import random_pool

N, K, BATCH, LENGTH, CLASSES = 203, 29, 16, 128, 4


def scorer_and_pool():
  """A 1D-CNN (random Glorot head, so margins differ) and a random pool of N vectors."""
  model = models.get('cnn1d', CLASSES, LENGTH)
  variables = model.init(jax.random.key(3), jnp.zeros((1, 2, LENGTH)), train=False)
  return model, variables, random_pool(n=N, num_classes=CLASSES, length=LENGTH, seed=5)
