import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from amrjax.errors import ConfigError
from amrjax.scoring.gradients import grand, grand_last_layer, per_example_grad_norm


class _Linear(nn.Module):
  """logits = flatten(x) W + b."""

  num_classes: int

  @nn.compact
  def __call__(self, x, *, train=False):
    return nn.Dense(self.num_classes, name='head')(x.reshape(x.shape[0], -1))


class _MLP(nn.Module):
  """(B, 2, 16) -> Dense 8 -> BatchNorm -> ReLU = embedding (B, 8) -> head Dense C."""

  num_classes: int

  def setup(self):
    self.dense = nn.Dense(8)
    self.norm = nn.BatchNorm()
    self.head = nn.Dense(self.num_classes)

  def embed(self, x, *, train=False):
    h = self.dense(x.reshape(x.shape[0], -1))
    return nn.relu(self.norm(h, use_running_average=not train))

  def __call__(self, x, *, train=False):
    return self.head(self.embed(x, train=train))


def _numpy_softmax(z):
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


@functools.lru_cache(maxsize=None)
def _mlp(num_classes=3, n=12, seed=0):
  """A tiny MLP with non-trivial batch_stats, its variables, inputs and labels."""
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((n, 2, 16)), jnp.float32)
  y = jnp.asarray(rng.integers(0, num_classes, n))
  model = _MLP(num_classes)

  @jax.jit
  def build(x):
    variables = model.init(jax.random.key(seed), x)
    _, updates = model.apply(variables, x * 2 + 1, train=True, mutable=['batch_stats'])
    return {**variables, **updates}

  return model, build(x), x, y


def test_linear_softmax_grad_norm_matches_closed_form():
  rng = np.random.default_rng(0)
  n, c = 9, 4
  x = rng.standard_normal((n, 2, 5)).astype(np.float32)
  y = rng.integers(0, c, n)
  model = _Linear(c)
  variables = jax.jit(model.init)(jax.random.key(1), jnp.asarray(x))
  kernel = np.asarray(variables['params']['head']['kernel'], np.float64)
  bias = np.asarray(variables['params']['head']['bias'], np.float64)
  flat = x.reshape(n, -1).astype(np.float64)
  residual = _numpy_softmax(flat @ kernel + bias) - np.eye(c)[y]
  want_sq = np.sum(residual**2, axis=1) * (np.sum(flat**2, axis=1) + 1)

  def loss(params, x_i, y_i):
    logits = x_i.reshape(-1) @ params['w'] + params['b']
    return optax.softmax_cross_entropy_with_integer_labels(logits, y_i)

  raw = jax.jit(per_example_grad_norm, static_argnums=0)(loss, {'w': kernel.astype(np.float32),
                                     'b': bias.astype(np.float32)}, x, y)
  np.testing.assert_allclose(np.asarray(raw)**2, want_sq, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grand(model, variables, x, y))**2, want_sq, rtol=1e-5)


def test_grand_last_layer_matches_autodiff_over_the_head():
  model, variables, x, y = _mlp()
  params = variables['params']

  def head_loss(head, x_i, y_i):
    logits = model.apply({**variables, 'params': {**params, 'head': head}}, x_i[None])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y_i[None])[0]

  @jax.jit
  def both(variables, x, y):
    emb = model.apply(variables, x, method='embed')
    probs = jax.nn.softmax(model.apply(variables, x))
    return (grand_last_layer(emb, probs, y),
            per_example_grad_norm(head_loss, variables['params']['head'], x, y))

  got, want = both(variables, x, y)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_grand_is_per_example_and_jits_with_the_model_static():
  model, variables, x, y = _mlp()
  whole = grand(model, variables, x, y)
  order = np.random.default_rng(1).permutation(12)  # a different grouping of the same samples
  regrouped = np.concatenate([grand(model, variables, x[order[:6]], y[order[:6]]),
                              grand(model, variables, x[order[6:]], y[order[6:]])])
  np.testing.assert_allclose(regrouped, np.asarray(whole)[order], rtol=1e-5)
  jitted = jax.jit(grand, static_argnums=0)(model, variables, x, y)
  np.testing.assert_allclose(jitted, whole, rtol=1e-5)
  assert whole.shape == (12,) and np.all(np.asarray(whole) > 0)


def test_misclassified_sample_has_larger_grand():
  model = _Linear(2)
  x = jnp.asarray(np.stack([np.full((2, 4), 1.0), np.full((2, 4), 1.0)]), jnp.float32)
  params = {'head': {'kernel': jnp.stack([jnp.full(8, 1.0), jnp.full(8, -1.0)], axis=1),
                     'bias': jnp.zeros(2)}}
  variables = {'params': params}  # logits (8, -8): class 0 with p ~ 1 - 1e-7
  scores = np.asarray(grand(model, variables, x, jnp.array([0, 1])))  # correct, misclassified
  assert scores[1] > 100 * scores[0]
  np.testing.assert_allclose(scores[1], np.sqrt(2 * (8 + 1)), rtol=1e-4)  # ||p - y|| ~ sqrt(2)


def test_bad_arguments_raise_config_error():
  model, variables, x, y = _mlp()
  with pytest.raises(ConfigError):
    grand(model, variables, x, y[:3])
  with pytest.raises(ConfigError):
    grand(model, {'batch_stats': variables['batch_stats']}, x, y)
  with pytest.raises(ConfigError):
    grand_last_layer(jnp.ones((4, 3)), jnp.ones((5, 2)) / 2, jnp.zeros(4, int))
  with pytest.raises(ConfigError):
    per_example_grad_norm(lambda p: jnp.sum(p), jnp.ones(3))
