import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import scoring
from amrjax.errors import ConfigError
from amrjax.selection import select


def _numpy_margin(probs):
  ordered = np.sort(probs, axis=-1)[..., ::-1]
  return ordered[..., 0] - ordered[..., 1]


def test_margin_matches_numpy_on_random_softmax():
  rng = np.random.default_rng(0)
  for shape in ((7, 2), (64, 11), (5, 3, 24)):
    probs = np.asarray(jax.nn.softmax(rng.standard_normal(shape) * 3, axis=-1))
    got = jax.jit(scoring.margin)(jnp.asarray(probs))
    np.testing.assert_allclose(got, _numpy_margin(probs), rtol=1e-6, atol=1e-7)


def test_margin_closed_form_cases():
  probs = jnp.array([[0.45, 0.40, 0.15], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
  np.testing.assert_allclose(scoring.margin(probs), [0.05, 1.0, 0.0], atol=1e-7)


def test_margin_vmaps_per_example():
  probs = jax.nn.softmax(jax.random.normal(jax.random.key(0), (9, 5)))
  np.testing.assert_allclose(jax.vmap(scoring.margin)(probs), scoring.margin(probs),
                             rtol=1e-6)


def test_duse_direction_picks_the_uncertain_sample():
  probs = jnp.array([[0.9, 0.05, 0.05],  # confident
                     [0.4, 0.35, 0.25]])  # uncertain: small margin
  u = np.asarray(scoring.margin(probs))
  assert u[1] < u[0]
  assert select.top_k(u, 1, largest=False).tolist() == [1]  # DUSE Eq. 10: smallest u


def _random_probs(shape, seed=0):
  rng = np.random.default_rng(seed)
  return np.asarray(jax.nn.softmax(rng.standard_normal(shape) * 3, axis=-1), np.float64)


def test_least_confidence_entropy_el2n_match_numpy():
  probs = _random_probs((64, 11))
  labels = np.random.default_rng(1).integers(0, 11, 64)
  p = jnp.asarray(probs, jnp.float32)
  np.testing.assert_allclose(jax.jit(scoring.least_confidence)(p), 1 - probs.max(-1),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(jax.jit(scoring.entropy)(p), -(probs * np.log(probs)).sum(-1),
                             rtol=1e-4, atol=1e-6)
  onehot = np.eye(11)[labels]
  np.testing.assert_allclose(jax.jit(scoring.el2n)(p, jnp.asarray(labels)),
                             np.linalg.norm(probs - onehot, axis=-1), rtol=1e-5, atol=1e-6)


def test_entropy_of_one_hot_and_uniform():
  probs = jnp.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
  np.testing.assert_allclose(scoring.entropy(probs), [0.0, np.log(4)], atol=1e-6)
  assert np.isfinite(np.asarray(scoring.entropy(probs))).all()


def _numpy_topk_weight(probs, k):
  top = np.sort(probs, axis=-1)[..., ::-1][..., :k]
  q = top / top.sum(-1, keepdims=True)
  return 1 - (-(q * np.log(q)).sum(-1)) / np.log(k)


def test_topk_entropy_weight_matches_numpy_and_bounds():
  probs = _random_probs((50, 11), seed=2)
  for k in (2, 3, 5):
    got = jax.jit(scoring.topk_entropy_weight, static_argnums=1)(
        jnp.asarray(probs, jnp.float32), k)
    np.testing.assert_allclose(got, _numpy_topk_weight(probs, k), rtol=1e-4, atol=1e-5)
  edge = jnp.array([[1.0, 0.0, 0.0, 0.0], [0.3, 0.3, 0.3, 0.1]])
  np.testing.assert_allclose(scoring.topk_entropy_weight(edge, 3), [1.0, 0.0], atol=1e-6)
  with pytest.raises(ConfigError, match='k >= 2'):
    scoring.topk_entropy_weight(edge, 1)


def test_uncertainty_directions_on_two_samples():
  probs = jnp.array([[0.9, 0.05, 0.05],  # confident and right (label 0)
                     [0.4, 0.35, 0.25]])  # uncertain
  labels = jnp.array([0, 0])
  # Least confidence, entropy, EL2N: larger = more uncertain / harder; the top-1 is sample 1.
  for score in (scoring.least_confidence(probs), scoring.entropy(probs),
                scoring.el2n(probs, labels)):
    assert select.top_k(np.asarray(score), 1, largest=True).tolist() == [1]
  # AFNet's weight is larger for the confident sample.
  w = np.asarray(scoring.topk_entropy_weight(probs, 3))
  assert w[0] > w[1]
