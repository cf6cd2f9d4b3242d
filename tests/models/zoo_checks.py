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


def forward_with_dropout(model, variables, length: int, batch: int = 2):
  """Eval-mode logits and embedding of a random (batch, 2, length) input, checked: the
  logits are finite, the head of the embedding gives them, and train mode (dropout on)
  gives other logits. Returns (logits, embedding)."""
  x = jax.random.normal(jax.random.key(1), (batch, 2, length))

  @jax.jit
  def outputs(variables, x, key):
    def run(m, x):
      emb = m.embed(x)
      return m(x), emb, m.head(emb), m(x, train=True)
    return model.apply(variables, x, method=run, rngs={'dropout': key})

  logits, emb, head_of_emb, train_logits = outputs(variables, x, jax.random.key(2))
  assert np.isfinite(logits).all()
  np.testing.assert_allclose(logits, head_of_emb, rtol=1e-5, atol=1e-6)
  assert not np.allclose(logits, train_logits)
  return logits, emb


def train_step_against_eval(model, variables, x, y, forward):
  """One Adam step in train mode from ``variables`` on ``(x, y)``, checked against eval mode
  (``forward(variables, x)`` -> logits, the test's own jitted pass): eval mode repeats
  exactly, train mode's logits differ from it, and the step changes every BatchNorm
  statistic.

  Returns the BatchNorm statistics before the step (leaves), the step's train-mode logits
  and ``train_logits(key)``: those of the same step with dropout key ``key``.
  """
  eval_logits = forward(variables, x)
  np.testing.assert_array_equal(eval_logits, forward(variables, x))
  params = variables['params']
  rest = {k: v for k, v in variables.items() if k != 'params'}
  opt, step = adam_init()(params), adam_step(model)
  _, updated, _, _, logits = step(params, rest, opt, x, y, jax.random.key(2))
  assert not np.allclose(eval_logits, logits)
  before = jax.tree.leaves(rest['batch_stats'])
  after = jax.tree.leaves(updated['batch_stats'])
  # Exact inequality: a BatchNorm fed by another's output sees a batch mean of ~1e-8 (zero
  # up to rounding), so its running mean moves by less than allclose's atol (KD-MobileNet's
  # InvertedResidual_2 on an AVX2 CPU), but it does move.
  assert before and all(not np.array_equal(u, w) for u, w in zip(before, after))
  return before, logits, lambda key: step(params, rest, opt, x, y, key)[-1]


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
