"""What a trained model says about a batch: log-softmax outputs and penultimate embeddings.

Every registry model exposes ``embed(x, train=False) -> (B, D)`` and a linear ``head``
(a ``Dense`` named ``'head'``) with ``logits = head(embed(x))`` in eval mode, so one
forward pass gives both, and the head's kernel (D, C) and bias (C,) give the last-layer
gradients GraNd, Glister and EL2N work with. ``amrjax.scoring.pools`` runs these over whole
pools.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax

from amrjax.errors import ConfigError


def _embed_and_logits(module: nn.Module, x: jax.Array):
  h = module.embed(x, train=False)
  return h, module.head(h)


@functools.lru_cache(maxsize=None)
def outputs_fn(model: nn.Module) -> Callable:
  """Jitted ``(variables, x (B, 2, L)) -> {'embedding': (B, D), 'log_probs': (B, C)}``."""

  def outputs(variables, x):
    h, logits = model.apply(variables, x, method=_embed_and_logits)
    return {'embedding': h, 'log_probs': jax.nn.log_softmax(logits, axis=-1)}

  return jax.jit(outputs)


@functools.lru_cache(maxsize=None)
def embedding_fn(model: nn.Module) -> Callable:
  """Jitted ``(variables, x (B, 2, L)) -> (B, D)`` penultimate features, eval mode."""
  return jax.jit(lambda variables, x: model.apply(variables, x, train=False, method='embed'))


def head_params(variables) -> tuple[jax.Array, jax.Array]:
  """The last layer's kernel (D, C) and bias (C,) of a registry model's variables."""
  try:
    head = variables['params']['head']
    return head['kernel'], head['bias']
  except KeyError:
    raise ConfigError('the model has no Dense layer named "head" on top of its embedding; '
                      'registry models must name their last layer "head"') from None
