"""Distance to the decision boundary by DeepFool (Moosavi-Dezfooli, Fawzi & Frossard 2016).

Ducoffe & Precioso (2018, "Adversarial active learning for deep networks: a margin based
approach") use the norm of the DeepFool perturbation as a margin proxy: a sample with a small
adversarial perturbation lies close to the decision boundary. DeepCore ranks samples the
same way. The score is a distance; selecting the smallest is the strategy layer's business
(``amrjax.selection.select``).

DeepFool linearises the classifier around the current iterate (paper Alg. 2). With k0 the
originally predicted class, f'_k = f_k - f_k0 and w'_k = grad f_k - grad f_k0 at
x_i = x + (1 + overshoot) r_tot, it picks the class whose linearised boundary is nearest,
l = argmin_{k != k0} |f'_k| / ||w'_k||_2, and steps onto that boundary,
r_i = (|f'_l| + 1e-4) / ||w'_l||^2 w'_l, until the label at x + (1 + overshoot) r_tot
differs from k0. For an affine classifier one step reaches the exact distance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from amrjax.errors import ConfigError

_STEP_SLACK = 1e-4  # added to |f'_l| so each step lands just past the linearised boundary


class DeepFoolResult(NamedTuple):
  """What :func:`deepfool_attack` returns; B is the batch size."""

  perturbation: jax.Array  # (B, ...) the total perturbation (1 + overshoot) r_tot
  score: jax.Array  # (B,) float32 ||perturbation||_2
  flipped: jax.Array  # (B,) bool, the label at x + perturbation differs from k0
  iterations: jax.Array  # (B,) int32 DeepFool steps taken (<= max_iter)


def deepfool_attack(logits_fn: Callable[[jax.Array], jax.Array], x: jax.Array, *,
                    max_iter: int = 50, overshoot: float = 0.02,
                    num_candidates: int | None = None) -> DeepFoolResult:
  """Batched DeepFool (Moosavi-Dezfooli et al. 2016, Alg. 2 with the overshoot of Sec. 3).

  The whole batch iterates in one ``lax.while_loop`` with a per-example ``done`` mask: an
  example stops moving once its label flips, and the loop ends when all have flipped or after
  ``max_iter`` steps. Each step takes the Jacobian of the candidate logits by ``jax.jacrev``,
  vmapped over the batch. Jit-able with ``logits_fn`` and ``num_candidates`` static.

  Args:
    logits_fn: maps ONE input, shape ``x.shape[1:]``, to its logits (C,).
    x: (B, ...) inputs, e.g. (B, 2, L) float32.
    max_iter: most DeepFool steps per example (the paper's code uses 50).
    overshoot: the step scale 1 + overshoot that pushes the iterate across the boundary.
    num_candidates: consider only the ``num_candidates`` classes with the largest logits at
      ``x`` (the predicted class included), as the reference implementation does; default
      all C classes. The label-flip test always uses all classes.

  Returns:
    :class:`DeepFoolResult`. If the label does not flip within ``max_iter`` steps, the
    perturbation (and score) is the one reached so far and ``flipped`` is false. Where every
    candidate's w'_k vanishes (locally flat logits) the step is zero, so such an example may
    keep a score of 0 with ``flipped`` false.
  """
  x = jnp.asarray(x)
  if x.ndim < 2:
    raise ConfigError(f'x must be a batch (B, ...) of at least 2 dims, got shape {x.shape}')
  if isinstance(max_iter, int) and max_iter < 1:
    raise ConfigError(f'max_iter must be >= 1, got {max_iter}')
  f0 = jax.vmap(logits_fn)(x)
  if f0.ndim != 2 or f0.shape[1] < 2:
    raise ConfigError(f'logits_fn must map one input to logits (C,) with C >= 2, got batched '
                      f'shape {f0.shape}; pass a single-example function (see deepfool_model)')
  batch, num_classes = f0.shape
  n = num_classes if num_candidates is None else int(num_candidates)
  if not 2 <= n <= num_classes:
    raise ConfigError(f'num_candidates must be in [2, {num_classes}] (the class count), got '
                      f'{num_candidates}')
  _, candidates = lax.top_k(f0, n)  # (B, n); column 0 is the predicted class k0
  k0 = jnp.argmax(f0, axis=-1)
  candidates = candidates.at[:, 0].set(k0)  # agree with argmax even on exact ties
  scale = 1.0 + overshoot

  def candidate_logits(x_i, c_i):
    f = logits_fn(x_i)[c_i]
    return f, f

  jacobian = jax.vmap(jax.jacrev(candidate_logits, has_aux=True))

  def step(r_tot):
    jac, f = jacobian(x + scale * r_tot, candidates)  # (B, n, ...), (B, n)
    w = jac.reshape(batch, n, -1)
    w = w - w[:, :1]  # w'_k = grad f_k - grad f_k0; row 0 is zero
    f = jnp.abs(f - f[:, :1])  # |f'_k|
    w_norm = jnp.linalg.norm(w, axis=-1)
    usable = (jnp.arange(n) > 0) & (w_norm > 0)
    dist = jnp.where(usable, f / jnp.where(usable, w_norm, 1.0), jnp.inf)
    l = jnp.argmin(dist, axis=-1)  # noqa: E741  (DeepFool's l-hat, Algorithm 2)
    f_l = jnp.take_along_axis(f, l[:, None], axis=1)[:, 0]
    w_l = jnp.take_along_axis(w, l[:, None, None], axis=1)[:, 0]
    w_l_sq = jnp.take_along_axis(w_norm, l[:, None], axis=1)[:, 0] ** 2
    ok = jnp.isfinite(jnp.min(dist, axis=-1))
    coef = jnp.where(ok, (f_l + _STEP_SLACK) / jnp.where(ok, w_l_sq, 1.0), 0.0)
    return (coef[:, None] * w_l).reshape(x.shape).astype(r_tot.dtype)

  def cond(state):
    it, _, done, _ = state
    return (it < max_iter) & ~jnp.all(done)

  def body(state):
    it, r_tot, done, iterations = state
    active = ~done
    mask = active.reshape((batch,) + (1,) * (x.ndim - 1))
    r_tot = r_tot + jnp.where(mask, step(r_tot), 0)
    pred = jnp.argmax(jax.vmap(logits_fn)(x + scale * r_tot), axis=-1)
    return it + 1, r_tot, done | (pred != k0), iterations + active.astype(jnp.int32)

  init = (jnp.int32(0), jnp.zeros_like(x), jnp.zeros(batch, bool), jnp.zeros(batch, jnp.int32))
  _, r_tot, flipped, iterations = lax.while_loop(cond, body, init)
  perturbation = scale * r_tot
  score = jnp.linalg.norm(perturbation.reshape(batch, -1), axis=-1).astype(jnp.float32)
  return DeepFoolResult(perturbation, score, flipped, iterations)


def deepfool(logits_fn: Callable[[jax.Array], jax.Array], x: jax.Array, *, max_iter: int = 50,
             overshoot: float = 0.02, num_candidates: int | None = None) -> jax.Array:
  """DeepFool boundary distance ||(1 + overshoot) r_tot||_2 per sample (Ducoffe & Precioso).

  See :func:`deepfool_attack` for the iteration and the arguments. Jit-able with
  ``logits_fn``, ``max_iter`` and ``num_candidates`` static, e.g.
  ``jax.jit(deepfool, static_argnames=('logits_fn', 'max_iter', 'num_candidates'))``.

  Args:
    logits_fn: maps ONE input, shape ``x.shape[1:]``, to its logits (C,).
    x: (B, ...) inputs.
    max_iter: most DeepFool steps per example.
    overshoot: step scale 1 + overshoot.
    num_candidates: restrict to the top-n classes by logit at ``x``; default all.

  Returns:
    (B,) float32 perturbation norms; smaller = nearer the decision boundary. A sample whose
    label does not flip within ``max_iter`` steps scores the perturbation norm reached.
  """
  return deepfool_attack(logits_fn, x, max_iter=max_iter, overshoot=overshoot,
                         num_candidates=num_candidates).score


def deepfool_model(model: nn.Module, variables: Any) -> Callable[[jax.Array], jax.Array]:
  """A single-example eval-mode ``logits_fn`` for :func:`deepfool`: x (...) -> logits (C,).

  Build it inside a jitted function when ``variables`` change between calls, so they are
  traced rather than baked in as constants (see :func:`deepfool_scorer`).
  """

  def logits_fn(x_i: jax.Array) -> jax.Array:
    return model.apply(variables, x_i[None], train=False)[0]

  return logits_fn


@functools.lru_cache(maxsize=None)
def deepfool_scorer(model: nn.Module, max_iter: int = 50, overshoot: float = 0.02,
                    num_candidates: int | None = None) -> Callable:
  """Jitted ``(variables, x (B, ...)) -> deepfool score (B,)``, cached per model and settings.

  The ``fn(variables, x)`` form :func:`amrjax.parallel.map_pool` runs over a pool.
  """

  def scores(variables, x):
    return deepfool(deepfool_model(model, variables), x, max_iter=max_iter,
                    overshoot=overshoot, num_candidates=num_candidates)

  return jax.jit(scores)
