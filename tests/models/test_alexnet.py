import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import models
from amrjax.models.alexnet import AlexNet, local_response_norm
from tests.models.zoo_checks import count, init, shapes, training_losses


@pytest.fixture(scope='module')
def alexnet():
  """One initialisation shared by the tests below (initialising is the slow part on CPU)."""
  model = AlexNet(3)
  return model, init(model, 128)


def _expected_count(length, classes):
  convs = ((11 * 2 * 48 + 48) + (5 * 48 * 128 + 128) + (3 * 128 * 192 + 192) +
           (3 * 192 * 192 + 192) + (3 * 192 * 128 + 128))
  positions = length // 32
  return convs + (128 * positions + 1) * 512 + (512 + 1) * 512 + (512 + 1) * classes


@pytest.mark.parametrize('length,classes', [(128, 11), (512, 12), (1024, 24)])
def test_parameter_count_stays_a_few_million(length, classes):
  n = count(shapes(models.get('alexnet', classes, length), length)['params'])
  assert n == _expected_count(length, classes)
  assert n < 3_000_000
  if (length, classes) == (128, 11):
    assert n == 821_467


def test_five_convolutions_along_time_and_three_dense_layers():
  params = shapes(AlexNet(5), 128)['params']
  kernels = [params[f'convs_{i}']['kernel'].shape for i in range(5)]
  assert kernels == [(11, 2, 48), (5, 48, 128), (3, 128, 192), (3, 192, 192), (3, 192, 128)]
  # 128 -> 32 (stride 4) -> 16 -> 8 -> 4 (three pools): ceil(128 / 32) positions x 128.
  assert params['dense1']['kernel'].shape == (4 * 128, 512)
  assert params['dense2']['kernel'].shape == (512, 512)
  assert params['head']['kernel'].shape == (512, 5)
  # 'same' padding: any length works, with ceil(L / 32) positions.
  assert shapes(AlexNet(5), 100)['params']['dense1']['kernel'].shape == (4 * 128, 512)
  assert shapes(AlexNet(5), 8)['params']['dense1']['kernel'].shape == (1 * 128, 512)


def test_local_response_norm_matches_a_numpy_reference():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((3, 7, 9)).astype(np.float32) * 20
  size, k, alpha, beta = 5, 2.0, 1e-4, 0.75
  expected = np.empty_like(x)
  for c in range(9):
    lo, hi = max(0, c - size // 2), min(9, c + size // 2 + 1)
    expected[..., c] = x[..., c] / (k + alpha * np.sum(x[..., lo:hi]**2, -1))**beta
  got = jax.jit(local_response_norm)(jnp.asarray(x))
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_forward_embedding_and_dropout(alexnet):
  model, variables = alexnet
  x = jax.random.normal(jax.random.key(1), (2, 2, 128))
  logits = model.apply(variables, x)
  assert logits.shape == (2, 3) and np.isfinite(logits).all()
  emb = model.apply(variables, x, method='embed')
  assert emb.shape == (2, 512) and float(jnp.min(emb)) >= 0.0
  head = variables['params']['head']
  np.testing.assert_allclose(logits, emb @ head['kernel'] + head['bias'], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(logits, model.apply(variables, x, train=False))
  dropped = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)})
  assert not np.allclose(logits, dropped)


def test_a_few_steps_lower_the_loss(alexnet):
  losses = training_losses(*alexnet, 128)
  assert losses[-1] < losses[0]
