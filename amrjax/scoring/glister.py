"""GLISTER-ONLINE greedy selection (Killamsetty et al. 2021; DUSE Eq. 14), last-layer form.

GLISTER picks the training subset whose gradient step most lowers the validation loss. As
in DeepCore, only the final dense layer z = h W + b is differentiated, with h (D,) the
penultimate embedding, W (D, C), b (C,). The CE gradient of a sample e is
g_e = [p_e - y_e, h_e (x) (p_e - y_e)], length C + D * C, with p_e = softmax(h_e W + b).

Greedy step (Killamsetty et al. Alg. 1, the Taylor approximation of Sec. 4.2): with G_val =
[Gb, Gw] the MEAN validation gradient at the current head, the first-order gain of a step
-eta g_e is L_val(theta) - L_val(theta - eta g_e) ~= eta g_e . G_val, and

  g_e . G_val = (p_e - y_e) . (Gb + Gw^T h_e),

an N x D x C contraction: the N x (D * C) train-gradient matrix is never formed. The best
unselected sample is picked, then the head takes the one-step Taylor update
(W, b) = (W0, b0) - eta * mean_{s in S} g_s from its initial value (DeepCore's
``update_val_gradients``) and the validation probabilities and G_val are recomputed there.
That update is what makes later picks depend on earlier ones. DeepCore passes it to the
greedy optimizer as ``upadate_state=`` (sic), a keyword the optimizer swallows into
``**kwargs``, so DeepCore's GLISTER never updates and reduces to a static top-budget by gain;
``eta=0`` reproduces that here.

Train-sample gradients are evaluated once, at the INITIAL head, as DeepCore does (only the
validation side moves); with a small eta the difference is second order and it keeps each
step at O(N D C) with no N-wide softmax per step.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from amrjax.errors import ConfigError


def _residual(embeddings, labels, kernel, bias):
  """dl/dz = softmax(h W + b) - onehot(y), (n, C)."""
  probs = jax.nn.softmax(embeddings @ kernel + bias, axis=-1)
  return probs - jax.nn.one_hot(labels, bias.shape[-1], dtype=probs.dtype)


def _val_gradient(embeddings, labels, kernel, bias):
  """Mean validation gradient at (W, b): Gb (C,), Gw (D, C)."""
  residual = _residual(embeddings, labels, kernel, bias)
  return jnp.mean(residual, axis=0), embeddings.T @ residual / embeddings.shape[0]


@functools.partial(jax.jit, static_argnames=('budget',))
def _glister(train_embeddings, train_labels, val_embeddings, val_labels, head_kernel,
             head_bias, initial_mask, eta, *, budget):
  if budget == 0:
    return jnp.zeros(0, jnp.int32)
  dtype = jnp.result_type(train_embeddings.dtype, head_kernel.dtype, jnp.float32)
  h = train_embeddings.astype(dtype)
  hv = val_embeddings.astype(dtype)
  kernel0 = head_kernel.astype(dtype)
  bias0 = head_bias.astype(dtype)
  residual = _residual(h, train_labels, kernel0, bias0)  # (N, C), at the initial head

  # Running sums of the selected gradients: sum of g and of h (x) g, (C,) and (D, C).
  init_mask = initial_mask.astype(dtype)
  sum_b = init_mask @ residual
  sum_w = (h * init_mask[:, None]).T @ residual
  count = jnp.sum(init_mask)

  def head(sum_b, sum_w, count):
    inv = jnp.where(count > 0, 1.0 / jnp.maximum(count, 1.0), 0.0)
    return kernel0 - eta * inv * sum_w, bias0 - eta * inv * sum_b

  def pick(i, state):
    selected, sum_b, sum_w, count, picks = state
    kernel, bias = head(sum_b, sum_w, count)
    gb, gw = _val_gradient(hv, val_labels, kernel, bias)
    gain = jnp.sum(residual * (gb + h @ gw), axis=-1)  # g_e . G_val, (N,)
    best = jnp.argmax(jnp.where(selected, -jnp.inf, gain)).astype(jnp.int32)
    return (selected.at[best].set(True), sum_b + residual[best],
            sum_w + jnp.outer(h[best], residual[best]), count + 1, picks.at[i].set(best))

  state = (initial_mask, sum_b, sum_w, count, jnp.zeros(budget, jnp.int32))
  return lax.fori_loop(0, budget, pick, state)[-1]


def glister(train_embeddings: jax.Array, train_labels: jax.Array, val_embeddings: jax.Array,
            val_labels: jax.Array, head_kernel: jax.Array, head_bias: jax.Array, budget: int, *,
            eta: float = 0.1, initial_mask: jax.Array | None = None) -> jax.Array:
  """GLISTER-ONLINE greedy picks with the last-layer Taylor update (DUSE Eq. 14).

  Jitted with ``budget`` static; ``eta`` and ``initial_mask`` are traced, so changing them
  does not recompile.

  Args:
    train_embeddings: (N, D) penultimate embeddings h of the candidate pool.
    train_labels: (N,) integer labels of the pool.
    val_embeddings: (V, D) embeddings of the validation set.
    val_labels: (V,) integer labels of the validation set.
    head_kernel: (D, C) kernel W0 of the final ``nn.Dense``.
    head_bias: (C,) bias b0 of the final ``nn.Dense``.
    budget: number of NEW picks, 0 <= budget <= N - (samples in ``initial_mask``).
    eta: step size of the Taylor head update (Killamsetty et al. use the training learning
      rate; DeepCore defaults to its SGD rate, 0.1). ``eta=0`` freezes the head, so the picks
      are the static top-``budget`` by initial gain.
    initial_mask: (N,) bool, samples already selected: they are never picked, and they count
      in the mean selected gradient of the head update from the start (as in DeepCore's
      ``already_selected``). Default none.

  Returns:
    (budget,) int32 positions into the pool, in pick order, without repeats.
  """
  h = jnp.asarray(train_embeddings)
  hv = jnp.asarray(val_embeddings)
  kernel = jnp.asarray(head_kernel)
  bias = jnp.asarray(head_bias)
  if h.ndim != 2 or hv.ndim != 2 or kernel.ndim != 2 or bias.ndim != 1:
    raise ConfigError(f'expected train (N, D), val (V, D), kernel (D, C), bias (C,), got shapes '
                      f'{h.shape}, {hv.shape}, {kernel.shape}, {bias.shape}')
  n, d = h.shape
  if hv.shape[1] != d or kernel.shape != (d, bias.shape[0]):
    raise ConfigError(f'embedding width and head disagree: train {h.shape}, val {hv.shape}, '
                      f'kernel {kernel.shape}, bias {bias.shape}; pass the final Dense of the '
                      f'model that made the embeddings')
  if jnp.shape(train_labels) != (n,) or jnp.shape(val_labels) != (hv.shape[0],):
    raise ConfigError(f'labels must be (N,) and (V,), got {jnp.shape(train_labels)} and '
                      f'{jnp.shape(val_labels)} for N = {n}, V = {hv.shape[0]}')
  if hv.shape[0] == 0:
    raise ConfigError('the validation set is empty; pass at least one validation sample')
  budget = int(budget)
  if initial_mask is None:
    initial_mask = jnp.zeros(n, bool)
  elif jnp.shape(initial_mask) != (n,):
    raise ConfigError(f'initial_mask must be (N,) = ({n},) bool, got {jnp.shape(initial_mask)}')
  available = n
  if not isinstance(initial_mask, jax.core.Tracer):
    available = n - int(np.count_nonzero(np.asarray(initial_mask)))
  if not 0 <= budget <= available:
    raise ConfigError(f'budget must be in [0, {available}] (unselected pool samples), got '
                      f'{budget}')
  return _glister(h, train_labels, hv, val_labels, kernel, bias,
                  jnp.asarray(initial_mask, bool), jnp.asarray(eta), budget=budget)
