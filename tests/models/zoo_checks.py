"""Helpers the zoo models' tests share: parameter counts and a few real training steps."""

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


def training_losses(model, variables, length: int, steps: int = 6, batch: int = 12,
                    learning_rate: float = 1e-3) -> list[float]:
  """Losses of ``steps`` Adam steps from ``variables`` in train mode (dropout rng, mutable
  BatchNorm statistics) on one fixed random batch; a model that trains drives them down."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, 2, length)), jnp.float32)
  num_classes = variables['params']['head']['bias'].shape[0]
  y = jnp.asarray(np.arange(batch) % num_classes)
  tx = optax.adam(learning_rate)
  params, opt = variables['params'], tx.init(variables['params'])
  rest = {k: v for k, v in variables.items() if k != 'params'}

  @jax.jit
  def step(params, rest, opt, key):
    def loss_fn(params):
      out, new_rest = model.apply({'params': params, **rest}, x, train=True,
                                  rngs={'dropout': key}, mutable=list(rest))
      return optax.softmax_cross_entropy_with_integer_labels(out, y).mean(), new_rest

    (loss, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), new_rest, opt, loss

  losses = []
  for i in range(steps):
    params, rest, opt, loss = step(params, rest, opt, jax.random.key(i))
    losses.append(float(loss))
  return losses
