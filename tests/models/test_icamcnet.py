import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import models
from amrjax.models.icamcnet import GaussianNoise, ICAMCNet
from tests.models.zoo_checks import count, init, shapes, training_losses


@pytest.fixture(scope='module')
def icamcnet():
  """One initialisation shared by the tests below (initialising is the slow part on CPU)."""
  model = ICAMCNet(3)
  return model, init(model, 128)


@pytest.mark.parametrize('length,classes', [(128, 11), (512, 12), (1024, 24)])
def test_parameter_count_matches_the_keras_model(length, classes):
  convs = (8 * 64 + 64) + (4 * 64 * 64 + 64) + (8 * 64 * 128 + 128) + (8 * 128 * 128 + 128)
  expected = convs + (128 * length // 2 + 1) * 128 + (128 + 1) * classes
  assert count(shapes(models.get('ic-amcnet', classes, length), length)['params']) == expected
  if (length, classes) == (128, 11):
    assert expected == 1_264_011  # what the same layers count in Keras


def test_kernels_and_the_pool_that_merges_i_and_q():
  model = ICAMCNet(5)
  params = shapes(model, 128)['params']
  assert params['conv1']['kernel'].shape == (1, 8, 1, 64)
  assert params['conv2']['kernel'].shape == (1, 4, 64, 64)
  assert params['conv3']['kernel'].shape == (1, 8, 64, 128)
  assert params['conv4']['kernel'].shape == (1, 8, 128, 128)
  # The 2 x 2 pool leaves one row of L / 2 positions.
  assert params['dense']['kernel'].shape == (1 * 64 * 128, 128)
  # An odd length keeps its last sample ('same' pool): ceil(129 / 2) = 65 positions.
  assert shapes(model, 129)['params']['dense']['kernel'].shape == (65 * 128, 128)


def test_same_padding_follows_the_tensorflow_convention(icamcnet):
  # A width-8 kernel pads 3 before and 4 after, so output t reads inputs t - 3 .. t + 4 and a
  # unit impulse at tap 3 copies the input; the (4, 3) split would shift it by one sample.
  model, variables = icamcnet
  params = dict(variables['params'])
  params['conv1'] = {'kernel': jnp.zeros((1, 8, 1, 64)).at[0, 3, 0, :].set(1.0),
                     'bias': jnp.zeros(64)}
  x = jnp.zeros((2, 2, 128, 1)).at[0, 1, 5, 0].set(1.0)  # Q at t = 5
  out = model.apply({'params': params}, x, method=lambda m, h: m.conv1(h))
  assert out.shape == (2, 2, 128, 64)
  assert float(out[0, 1, 5, 0]) == 1.0 and float(jnp.sum(out[..., 0])) == 1.0


def test_gaussian_noise_has_the_given_spread_and_only_in_training():
  x = jnp.zeros((200, 500))
  layer = GaussianNoise(1.0)
  y = layer.apply({}, x, deterministic=False, rngs={'dropout': jax.random.key(0)})
  assert abs(float(jnp.mean(y))) < 0.01 and abs(float(jnp.std(y)) - 1.0) < 0.01
  y2 = GaussianNoise(0.5).apply({}, x, deterministic=False,
                                rngs={'dropout': jax.random.key(0)})
  assert abs(float(jnp.std(y2)) - 0.5) < 0.005
  np.testing.assert_array_equal(layer.apply({}, x + 3.0, deterministic=True), x + 3.0)


def test_forward_embedding_and_train_mode_randomness(icamcnet):
  model, variables = icamcnet
  x = jax.random.normal(jax.random.key(1), (2, 2, 128))
  logits = model.apply(variables, x)
  assert logits.shape == (2, 3) and np.isfinite(logits).all()
  emb = model.apply(variables, x, method='embed')
  assert emb.shape == (2, 128) and float(jnp.min(emb)) >= 0.0  # ReLU features
  head = variables['params']['head']
  np.testing.assert_allclose(logits, emb @ head['kernel'] + head['bias'], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(logits, model.apply(variables, x, train=False))
  noisy = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)})
  assert not np.allclose(logits, noisy)


def test_a_few_steps_lower_the_loss(icamcnet):
  losses = training_losses(*icamcnet, 128)
  assert losses[-1] < losses[0]
