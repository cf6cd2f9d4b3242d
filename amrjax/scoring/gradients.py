"""Gradient-norm scores: GraNd (Paul, Ganguli & Dziugaite 2021; DUSE Eq. 15).

GraNd of a sample is the L2 norm of the gradient of its own loss with respect to the model
parameters, chi(x, y) = ||grad_theta l(f_theta(x), y)||_2. Every score here is per example:
each loss is that of ONE sample, never a batch mean, so a score never depends on which batch
the sample was computed in. A large norm marks a sample the model has not yet fit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from amrjax.errors import ConfigError


def _tree_sq_norm(tree: Any) -> jax.Array:
  """Per-row squared global L2 norm of a pytree whose leaves share leading axis B, (B,)."""
  leaves = jax.tree_util.tree_leaves(tree)
  if not leaves:
    raise ConfigError('the parameters have no leaves; pass the pytree the loss differentiates')
  return sum(jnp.sum(jnp.square(leaf.reshape(leaf.shape[0], -1)), axis=1) for leaf in leaves)


def per_example_grad_norm(loss_fn: Callable[..., jax.Array], params: Any,
                          *batch: jax.Array) -> jax.Array:
  """Global L2 norm of each example's own loss gradient, ||grad_params loss_fn(params, *ex)||.

  Computed as ``jax.vmap(jax.grad(loss_fn), in_axes=(None, 0, ...))``: one gradient per
  example, no loop over samples, then the norm over all leaves of each gradient pytree.

  Args:
    loss_fn: ``loss_fn(params, *example) -> ()``, the scalar loss of ONE example (not
      mean-reduced over a batch; the example arrays arrive without their batch axis).
    params: pytree the gradient is taken with respect to.
    *batch: one or more arrays (B, ...) sharing the leading batch axis.

  Returns:
    (B,) gradient norms.
  """
  if not batch:
    raise ConfigError('per_example_grad_norm needs at least one batched array after params')
  sizes = {jnp.shape(a)[0] if jnp.ndim(a) else None for a in batch}
  if len(sizes) != 1 or None in sizes:
    raise ConfigError(f'batch arrays must share a leading axis, got shapes '
                      f'{[jnp.shape(a) for a in batch]}; pass (B, ...) arrays')
  grads = jax.vmap(jax.grad(loss_fn), in_axes=(None,) + (0,) * len(batch))(params, *batch)
  return jnp.sqrt(_tree_sq_norm(grads))


@functools.lru_cache(maxsize=None)
def grand_scorer(model: nn.Module) -> Callable:
  """Jitted ``(variables, x (B, ...), labels (B,)) -> GraNd (B,)`` for ``model`` in eval mode.

  Cached per model, like :func:`amrjax.scoring.softmax_scorer`, so repeated calls reuse one
  compilation per input shape.
  """

  def scores(variables, x, labels):
    rest = {name: value for name, value in variables.items() if name != 'params'}

    def loss(params, x_i, y_i):
      logits = model.apply({**rest, 'params': params}, x_i[None], train=False)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y_i[None])[0]

    return per_example_grad_norm(loss, variables['params'], x, labels)

  return jax.jit(scores)


def grand(model: nn.Module, variables: Any, x: jax.Array, labels: jax.Array) -> jax.Array:
  """GraNd (Paul et al. 2021, Sec. 2; DUSE Eq. 15) over all of a model's parameters.

  chi(x_i, y_i) = ||grad_theta CE(f_theta(x_i), y_i)||_2 with f_theta the eval-mode forward
  pass ``model.apply(variables, x_i[None], train=False)``. The gradient covers every leaf of
  ``variables['params']``; other collections (e.g. ``batch_stats``) are held fixed. Paul et
  al. average the norm over several early-training initialisations; pass each run's
  ``variables`` and average the results for that.

  Args:
    model: linen module mapping (B, ...) inputs to logits (B, C); static (a jit cache key).
    variables: its variables, with a ``'params'`` collection.
    x: (B, ...) inputs, e.g. (B, 2, L) float32 I/Q.
    labels: (B,) integer class labels.

  Returns:
    (B,) float32 gradient norms; larger = harder / less-fit sample.
  """
  if 'params' not in variables:
    raise ConfigError("variables have no 'params' collection; pass the output of model.init")
  if jnp.ndim(labels) != 1 or jnp.shape(labels)[0] != jnp.shape(x)[0]:
    raise ConfigError(f'labels must be (B,) with B = {jnp.shape(x)[0]} (the rows of x), got '
                      f'shape {jnp.shape(labels)}')
  return grand_scorer(model)(variables, x, labels)


def grand_last_layer(embeddings: jax.Array, probs: jax.Array, labels: jax.Array) -> jax.Array:
  """GraNd restricted to the final dense layer, in closed form (DeepCore's GraNd variant).

  For logits z = h W + b (h the (D,) embedding, W (D, C), b (C,)) and CE loss,
  dl/dz = g = p - onehot(y), hence dl/db = g and dl/dW = h (x) g, the (D, C) outer product
  h_d g_c. The gradient vector is the concatenation [g, h (x) g] and, because
  ||h (x) g||_F^2 = sum_{d,c} h_d^2 g_c^2 = ||h||^2 ||g||^2,

    ||[g, h (x) g]||_2 = sqrt(||g||^2 + ||h||^2 ||g||^2) = ||g||_2 sqrt(1 + ||h||_2^2).

  No (B, D * C) gradient matrix is formed.

  Args:
    embeddings: (B, D) inputs h of the final dense layer.
    probs: (B, C) softmax outputs p of the model.
    labels: (B,) integer class labels.

  Returns:
    (B,) last-layer gradient norms.
  """
  if jnp.ndim(embeddings) != 2 or jnp.ndim(probs) != 2 or jnp.ndim(labels) != 1:
    raise ConfigError(f'expected embeddings (B, D), probs (B, C), labels (B,), got shapes '
                      f'{jnp.shape(embeddings)}, {jnp.shape(probs)}, {jnp.shape(labels)}')
  if not jnp.shape(embeddings)[0] == jnp.shape(probs)[0] == jnp.shape(labels)[0]:
    raise ConfigError(f'embeddings, probs and labels must share B, got shapes '
                      f'{jnp.shape(embeddings)}, {jnp.shape(probs)}, {jnp.shape(labels)}')
  g = probs - jax.nn.one_hot(labels, probs.shape[-1], dtype=probs.dtype)
  g_norm = jnp.linalg.norm(g, axis=-1)
  return g_norm * jnp.sqrt(1.0 + jnp.sum(jnp.square(embeddings), axis=-1))
