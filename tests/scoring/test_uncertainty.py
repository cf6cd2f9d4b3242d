import jax
import jax.numpy as jnp
import numpy as np

from amrjax import scoring, select


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
