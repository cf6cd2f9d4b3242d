"""Helpers the zoo models' tests share: parameter counts and a few real training steps."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from amrjax import models


def count(params) -> int:
  """Number of scalars in a parameter tree."""
  return models.parameter_count(params)


def init(model, length: int, batch: int = 2):
  """Variables of ``model`` for (batch, 2, length) inputs."""
  return model.init(jax.random.key(0), jnp.zeros((batch, 2, length)), train=False)


def shapes(model, length: int):
  """``init``'s shapes and dtypes, without compiling or running anything."""
  return jax.eval_shape(lambda: init(model, length))


def adam_init(learning_rate: float = 1e-3):
  """Jitted Adam ``init`` (eager, it compiles one zeros_like per parameter shape)."""
  return _adam_init(float(learning_rate))


@functools.lru_cache(maxsize=None)
def _adam_init(learning_rate: float):
  return jax.jit(optax.adam(learning_rate).init)


def adam_step(model, learning_rate: float = 1e-3):
  """Jitted Adam step in train mode (dropout rng, mutable BatchNorm statistics):
  ``(params, rest, opt, x, y, key) -> (params, rest, opt, loss, logits)``, where ``rest``
  holds the non-parameter collections. The loss (mean cross-entropy) and the train-mode
  logits are those of the parameters passed in. Cached per (model, learning rate), however
  the rate is passed (``lru_cache`` alone keys ``f(m)`` and ``f(m, 1e-3)`` apart, and each
  miss recompiled the step: 28 s for IQFormer)."""
  return _adam_step(model, float(learning_rate))


@functools.lru_cache(maxsize=None)
def _adam_step(model, learning_rate: float):
  tx = optax.adam(learning_rate)

  def step(params, rest, opt, x, y, key):
    def loss_fn(params):
      out, new_rest = model.apply({'params': params, **rest}, x, train=True,
                                  rngs={'dropout': key}, mutable=list(rest))
      return optax.softmax_cross_entropy_with_integer_labels(out, y).mean(), (new_rest, out)

    (loss, (new_rest, out)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), new_rest, opt, loss, out

  return jax.jit(step)


def training_losses(model, variables, length: int, steps: int = 6, batch: int = 12,
                    learning_rate: float = 1e-3) -> list[float]:
  """Losses of ``steps`` Adam steps from ``variables`` in train mode (dropout rng, mutable
  BatchNorm statistics) on one fixed random batch; a model that trains drives them down."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, 2, length)), jnp.float32)
  num_classes = variables['params']['head']['bias'].shape[0]
  y = jnp.asarray(np.arange(batch) % num_classes)
  params = variables['params']
  opt = adam_init(learning_rate)(params)
  rest = {k: v for k, v in variables.items() if k != 'params'}
  step = adam_step(model, learning_rate)
  losses = []
  for i in range(steps):
    params, rest, opt, loss, _ = step(params, rest, opt, x, y, jax.random.key(i))
    losses.append(float(loss))
  return losses
