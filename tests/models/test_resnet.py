import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import models
from amrjax.errors import ConfigError
from amrjax.models.resnet import AlphaDropout, ResNet
from tests.models.zoo_checks import count, init, shapes, training_losses


def test_alpha_dropout_keeps_mean_and_variance_of_a_standard_normal_input():
  x = jax.random.normal(jax.random.key(0), (256, 1024))
  for rate in (0.1, 0.3, 0.5):
    y = AlphaDropout(rate).apply({}, x, deterministic=False,
                                 rngs={'dropout': jax.random.key(1)})
    assert abs(float(jnp.mean(y))) < 0.01
    assert abs(float(jnp.var(y)) - 1.0) < 0.01


def test_alpha_dropout_sets_dropped_units_to_the_affine_image_of_alpha_prime():
  rate = 0.3
  x = jnp.full((64, 1000), 0.7)
  y = np.asarray(AlphaDropout(rate).apply({}, x, deterministic=False,
                                          rngs={'dropout': jax.random.key(0)}))
  alpha_p = -1.0507009873554805 * 1.6732632423543772
  a = ((1 - rate) * (1 + rate * alpha_p**2))**-0.5
  b = -a * alpha_p * rate
  kept = np.isclose(y, a * 0.7 + b, atol=1e-6)
  dropped = np.isclose(y, a * alpha_p + b, atol=1e-6)
  assert np.all(kept | dropped)
  assert abs(dropped.mean() - rate) < 0.01


def test_alpha_dropout_is_the_identity_in_eval_and_differs_by_key():
  x = jax.random.normal(jax.random.key(0), (8, 32))
  layer = AlphaDropout(0.3)
  np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
  a = layer.apply({}, x, deterministic=False, rngs={'dropout': jax.random.key(1)})
  b = layer.apply({}, x, deterministic=False, rngs={'dropout': jax.random.key(2)})
  assert not np.allclose(a, b)
  with pytest.raises(ConfigError, match='rate'):
    AlphaDropout(1.0).apply({}, x, deterministic=False, rngs={'dropout': jax.random.key(1)})


@pytest.fixture(scope='module')
def resnet():
  """One initialisation shared by the tests below (initialising is the slow part on CPU)."""
  model = ResNet(3)
  return model, init(model, 128)


@pytest.mark.parametrize('length,classes', [(128, 11), (512, 12), (1024, 24)])
def test_parameter_count_matches_the_spec(length, classes):
  stacks = (1 * 32 + 32) + 5 * (32 * 32 + 32) + 6 * 4 * (3 * 2 * 32 * 32 + 32)
  flat = 32 * 2 * (length // 64)
  expected = stacks + (flat + 1) * 128 + (128 + 1) * 128 + (128 + 1) * classes
  assert count(shapes(models.get('resnet', classes, length), length)['params']) == expected
  if (length, classes) == (128, 11):
    assert expected == 188_011


def test_six_stacks_and_the_residual_layout():
  params = shapes(ResNet(3), 128)['params']
  assert [k for k in params if k.startswith('stacks_')] == [f'stacks_{i}' for i in range(6)]
  assert params['stacks_0']['Conv2D_0']['kernel'].shape == (1, 1, 1, 32)
  assert params['stacks_5']['Conv2D_0']['kernel'].shape == (1, 1, 32, 32)
  assert params['stacks_0']['_ResidualUnit_1']['Conv2D_1']['kernel'].shape == (3, 2, 32, 32)
  assert params['dense1']['kernel'].shape == (2 * 2 * 32, 128)  # 128 / 2^6 = 2 time steps
  # A length that is not a multiple of 64 floors through the 'valid' pools (Keras default).
  assert shapes(ResNet(3), 100)['params']['dense1']['kernel'].shape == (1 * 2 * 32, 128)


def test_forward_embedding_and_alpha_dropout_only_in_training(resnet):
  model, variables = resnet
  x = jax.random.normal(jax.random.key(1), (2, 2, 128))
  logits = model.apply(variables, x, train=False)
  assert logits.shape == (2, 3) and np.isfinite(logits).all()
  emb = model.apply(variables, x, method='embed')
  assert emb.shape == (2, 128)
  assert float(jnp.min(emb)) >= -1.7581  # the second SELU's output: bounded by -scale * alpha
  head = variables['params']['head']
  np.testing.assert_allclose(logits, emb @ head['kernel'] + head['bias'], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(logits, model.apply(variables, x, train=False))
  dropped = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)})
  assert not np.allclose(logits, dropped)


def test_short_signals_are_refused():
  with pytest.raises(ConfigError, match='at least 64 samples'):
    shapes(models.get('resnet', 3, 32), 32)


def test_a_few_steps_lower_the_loss(resnet):
  losses = training_losses(*resnet, 128)
  assert losses[-1] < losses[0]
