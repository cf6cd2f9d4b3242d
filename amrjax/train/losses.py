"""Per-example losses, the training objectives built on them, and masked reductions.

Losses are per example, shape (B,), never mean-reduced inside: padded rows are removed by
the mask, and per-sample scores never depend on the batch they were computed in.

An *objective* is what ``amrjax.train.fit`` minimises: a callable ``(logits (B, C), labels
(B,), extra) -> (B,)``, where ``extra`` holds the batch rows of the per-sample targets
given to ``fit`` (or None). Objectives are frozen dataclasses so that equal settings
compare and hash equal and share one compiled train step. An objective whose
``reads_features`` is true is called with a fourth argument: the (B, D) array the model
sowed in train mode as ``self.sow('intermediates', FEATURES, ...)`` (a feature-distillation
term, ``amrjax.protocols.distill``).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import jax
import jax.numpy as jnp
import optax

from amrjax.errors import ConfigError


FEATURES = 'features'
"""The ``'intermediates'`` name under which a model sows what a feature-reading objective
gets (``reads_features``)."""


class Objective(Protocol):
  """A per-example training loss; hashable and compared by value."""

  def __call__(self, logits: jax.Array, labels: jax.Array, extra) -> jax.Array:
    ...


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy in nats, (B,), from logits (B, C) and int labels (B,)."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of ``values`` (B,) over rows where ``mask`` (B,) is true; 0 if none is."""
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


@dataclasses.dataclass(frozen=True)
class CrossEntropy:
  """Plain softmax cross-entropy; reads no targets."""

  def __call__(self, logits, labels, extra=None):
    return cross_entropy(logits, labels)


@dataclasses.dataclass(frozen=True)
class WeightedCrossEntropy:
  """AFNet's confidence-weighted loss (Eq. 11): w_i * CE_i per example.

  ``extra`` is the (B,) weights of the batch rows (the top-k entropy weights of
  ``amrjax.scoring.uncertainty.topk_entropy_weight``, computed by the stage-one model).
  The batch loss is their masked mean, (1/B) sum_i w_i CE_i, as Eq. 11 averages over the
  batch.
  """

  def __call__(self, logits, labels, extra):
    if extra is None:
      raise ConfigError('the weighted cross-entropy needs per-sample weights: pass '
                        'targets=weights to fit')
    return extra.astype(logits.dtype) * cross_entropy(logits, labels)


CROSS_ENTROPY = CrossEntropy()
