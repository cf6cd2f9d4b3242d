"""Per-example losses and masked reductions.

Losses are per example, shape (B,), never mean-reduced inside: padded rows are removed by
the mask, and per-sample scores never depend on the batch they were computed in.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy in nats, (B,), from logits (B, C) and int labels (B,)."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of ``values`` (B,) over rows where ``mask`` (B,) is true; 0 if none is."""
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)
