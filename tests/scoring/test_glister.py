import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax.errors import ConfigError
from amrjax.scoring.glister import glister


def _problem(seed=0, n=40, d=5, c=3, v=15):
  rng = np.random.default_rng(seed)
  return dict(train_embeddings=rng.standard_normal((n, d)).astype(np.float32),
              train_labels=rng.integers(0, c, n),
              val_embeddings=rng.standard_normal((v, d)).astype(np.float32),
              val_labels=rng.integers(0, c, v),
              head_kernel=(rng.standard_normal((d, c)) * 0.5).astype(np.float32),
              head_bias=(rng.standard_normal(c) * 0.1).astype(np.float32))


def _numpy_gradients(h, y, kernel, bias):
  """Explicit per-sample last-layer CE gradients [g_b (C), g_W (D * C)], float64."""
  z = h @ kernel + bias
  p = np.exp(z - z.max(axis=1, keepdims=True))
  r = p / p.sum(axis=1, keepdims=True) - np.eye(kernel.shape[1])[y]
  return np.concatenate([r, (h[:, :, None] * r[:, None, :]).reshape(len(h), -1)], axis=1)


def _numpy_glister(p, budget, eta, initial_mask=None):
  """The greedy of amrjax.scoring.glister written out with full gradient vectors."""
  h, y = p['train_embeddings'].astype(np.float64), p['train_labels']
  hv, yv = p['val_embeddings'].astype(np.float64), p['val_labels']
  kernel0, bias0 = p['head_kernel'].astype(np.float64), p['head_bias'].astype(np.float64)
  d, c = kernel0.shape
  train = _numpy_gradients(h, y, kernel0, bias0)  # at the initial head
  selected = np.zeros(len(h), bool) if initial_mask is None else initial_mask.copy()
  picks = []
  for _ in range(budget):
    kernel, bias = kernel0, bias0
    if selected.any():
      step = eta * train[selected].mean(axis=0)
      kernel, bias = kernel0 - step[c:].reshape(d, c), bias0 - step[:c]
    gain = train @ _numpy_gradients(hv, yv, kernel, bias).mean(axis=0)
    gain[selected] = -np.inf
    picks.append(int(np.argmax(gain)))
    selected[picks[-1]] = True
  return picks


@pytest.mark.parametrize('seed, eta', [(0, 0.5), (1, 0.1), (2, 0.0)])
def test_matches_naive_numpy_greedy(seed, eta):
  p = _problem(seed)
  got = glister(**p, budget=8, eta=eta)
  assert got.dtype == jnp.int32
  assert np.asarray(got).tolist() == _numpy_glister(p, 8, eta)


def test_matches_naive_numpy_greedy_with_initial_mask():
  p = _problem(3)
  mask = np.zeros(40, bool)
  mask[[1, 7, 28]] = True  # 28 is the first pick without a mask
  got = np.asarray(glister(**p, budget=8, eta=0.5, initial_mask=mask)).tolist()
  assert got == _numpy_glister(p, 8, 0.5, mask)
  assert not set(got) & {1, 7, 28}


def test_head_update_changes_the_picks():
  p = _problem(0)
  frozen = np.asarray(glister(**p, budget=8, eta=0.0))
  moving = np.asarray(glister(**p, budget=8, eta=0.5))
  gain = _numpy_gradients(p['train_embeddings'], p['train_labels'], p['head_kernel'],
                          p['head_bias']) @ _numpy_gradients(
                              p['val_embeddings'], p['val_labels'], p['head_kernel'],
                              p['head_bias']).mean(axis=0)
  np.testing.assert_array_equal(frozen, np.argsort(-gain)[:8])  # eta = 0: static top-budget
  assert moving.tolist() == [38, 8, 15, 25, 9, 12, 34, 23]
  assert moving.tolist() != frozen.tolist()


def test_aligned_gradient_is_picked_before_an_opposing_one():
  h = np.array([[1.0, 2.0]], np.float32)
  args = dict(val_embeddings=h, val_labels=np.array([0]), head_kernel=np.zeros((2, 2)),
              head_bias=np.zeros(2))
  # Same embedding: label 0 has the validation gradient, label 1 exactly its negative.
  train = np.concatenate([h, h])
  picks = glister(train, np.array([1, 0]), budget=2, eta=0.1, **args)
  assert np.asarray(picks).tolist() == [1, 0]


def test_no_repeats_budget_met_and_jits():
  p = _problem(4, n=24)
  whole = np.asarray(glister(**p, budget=24, eta=0.3))
  assert sorted(whole.tolist()) == list(range(24))
  mask = jnp.arange(24) % 3 == 0
  jitted = jax.jit(glister, static_argnames='budget')
  picks = np.asarray(jitted(**p, budget=16, eta=0.3, initial_mask=mask))
  assert len(set(picks.tolist())) == 16 and not (picks % 3 == 0).any()
  assert glister(**p, budget=0).shape == (0,)


def test_bad_arguments_raise_config_error():
  p = _problem(5, n=10)
  with pytest.raises(ConfigError):
    glister(**p, budget=11)
  with pytest.raises(ConfigError):
    glister(**p, budget=8, initial_mask=np.arange(10) < 3)  # only 7 left
  with pytest.raises(ConfigError):
    glister(**{**p, 'head_bias': np.zeros(4)}, budget=2)
  with pytest.raises(ConfigError):
    glister(**{**p, 'val_labels': p['val_labels'][:3]}, budget=2)
