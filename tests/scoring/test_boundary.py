import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax.errors import ConfigError
from amrjax.scoring.boundary import deepfool, deepfool_attack, deepfool_model, deepfool_scorer

_STATIC = ('logits_fn', 'max_iter', 'num_candidates')
_attack = jax.jit(deepfool_attack, static_argnames=_STATIC)


class _MLP(nn.Module):
  """(B, 2, 16) -> Dense 16 tanh -> Dense C."""

  num_classes: int

  @nn.compact
  def __call__(self, x, *, train=False):
    h = jnp.tanh(nn.Dense(16)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes)(h)


def _linear(seed, num_classes, shape=(2, 4)):
  rng = np.random.default_rng(seed)
  w = rng.standard_normal((num_classes, int(np.prod(shape)))).astype(np.float32)
  b = rng.standard_normal(num_classes).astype(np.float32)
  x = rng.standard_normal((16,) + shape).astype(np.float32)
  return w, b, x


def _numpy_linear_distance(w, b, x, overshoot, candidates=None):
  """(1 + overshoot)(|f_l'| + 1e-4) / ||w_l'|| for the nearest boundary l, per row, float64."""
  w, b = w.astype(np.float64), b.astype(np.float64)
  flat = x.reshape(len(x), -1).astype(np.float64)
  out = []
  for f in flat @ w.T + b:
    order = np.argsort(-f)[:candidates]
    k0, others = order[0], order[1:]
    gap = np.abs(f[others] - f[k0])
    norm = np.linalg.norm(w[others] - w[k0], axis=1)
    l = np.argmin(gap / norm)
    out.append((1 + overshoot) * (gap[l] + 1e-4) / norm[l])
  return np.array(out)


@pytest.mark.parametrize('num_classes, candidates', [(2, None), (5, None), (5, 2)])
def test_linear_classifier_one_step_exact_distance(num_classes, candidates):
  w, b, x = _linear(num_classes, num_classes)
  logits_fn = _LinearFn(w, b)
  result = _attack(logits_fn, x, overshoot=0.02, num_candidates=candidates)
  want = _numpy_linear_distance(w, b, x, 0.02, candidates)
  np.testing.assert_allclose(result.score, want, rtol=2e-4)
  assert result.flipped.all() and (np.asarray(result.iterations) == 1).all()
  k0 = np.argmax(x.reshape(len(x), -1) @ w.T + b, axis=1)
  moved = np.asarray(x + result.perturbation).reshape(len(x), -1)
  assert (np.argmax(moved @ w.T + b, axis=1) != k0).all()  # the perturbation flips the label


class _LinearFn:
  """Hashable single-example logits W flatten(x) + b (a static jit argument)."""

  def __init__(self, w, b):
    self.w, self.b = jnp.asarray(w), jnp.asarray(b)

  def __call__(self, x_i):
    return self.w @ x_i.reshape(-1) + self.b


def test_sample_nearer_the_boundary_scores_smaller():
  w = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32)  # boundary x_0 = 0
  logits_fn = _LinearFn(w, np.zeros(2, np.float32))
  x = np.array([[0.1, 3.0], [1.0, -2.0]], np.float32)  # distances 0.1 and 1.0
  scores = np.asarray(deepfool(logits_fn, x, overshoot=0.0))
  assert scores[0] < scores[1]
  np.testing.assert_allclose(scores, [0.1, 1.0], rtol=1e-3)


def test_nonlinear_model_jit_vmap_finite_and_per_example():
  model = _MLP(4)
  x = jax.random.normal(jax.random.key(0), (8, 2, 16))
  variables = jax.jit(model.init)(jax.random.key(1), x)
  scorer = deepfool_scorer(model, max_iter=50)
  scores = np.asarray(scorer(variables, x))
  assert scores.shape == (8,) and scores.dtype == np.float32
  assert np.isfinite(scores).all() and (scores > 0).all()
  other = jax.random.normal(jax.random.key(2), (4, 2, 16)) * 3  # slower to flip
  mixed = scorer(variables, jnp.concatenate([other, x[:4]]))
  np.testing.assert_allclose(mixed[4:], scores[:4], rtol=1e-5)  # per example

  @jax.jit
  def attacks(variables, x):
    logits_fn = deepfool_model(model, variables)
    full = deepfool_attack(logits_fn, x, max_iter=50)
    short = deepfool_attack(logits_fn, x, max_iter=1)
    before = jnp.argmax(model.apply(variables, x), -1)
    after = jnp.argmax(model.apply(variables, x + full.perturbation), -1)
    return full, short, before, after

  full, short, before, after = attacks(variables, x)
  np.testing.assert_allclose(full.score, scores, rtol=1e-5)
  assert full.flipped.all() and (np.asarray(after) != np.asarray(before)).all()
  assert (np.asarray(full.iterations) <= 50).all() and np.asarray(full.iterations).max() > 1
  np.testing.assert_array_equal(short.iterations, np.ones(8))


def test_flat_logits_never_flip_and_stop_at_max_iter():
  result = deepfool_attack(lambda x_i: jnp.array([1.0, 0.0]) + 0 * jnp.sum(x_i),
                           jnp.ones((3, 2, 4)), max_iter=3)
  assert not np.asarray(result.flipped).any()
  np.testing.assert_array_equal(result.iterations, [3, 3, 3])
  np.testing.assert_array_equal(result.score, [0, 0, 0])


def test_bad_arguments_raise_config_error():
  fn = _LinearFn(np.eye(3, 8, dtype=np.float32), np.zeros(3, np.float32))
  x = jnp.ones((2, 2, 4))
  with pytest.raises(ConfigError):
    deepfool(fn, x, num_candidates=4)
  with pytest.raises(ConfigError):
    deepfool(fn, x, max_iter=0)
  with pytest.raises(ConfigError):
    deepfool(lambda x_i: x_i, x)  # not (C,) logits
