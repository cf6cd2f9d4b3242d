import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax.errors import ConfigError
from amrjax.models.cldnn import CLDNN
from tests.models.zoo_checks import count as _count, init as _init, shapes as _shapes
from tests.models import zoo_checks
from tests.models.zoo_checks import training_losses


@pytest.fixture(scope='module')
def initialised():
  """One initialisation per length (the LSTM's input width follows L), shared below."""
  cache = {}

  def get(length):
    if length not in cache:
      model = CLDNN(5)
      cache[length] = model, _init(model, length)
    return cache[length]

  return get


def _expected_count(length, classes, lstm_steps):
  convs = (8 * 1 * 50 + 50) + 2 * (8 * 50 * 50 + 50)
  n = 2 * (2 * length - 12) if lstm_steps == 'filters' else 2 * 50
  lstm = 4 * 50 * (n + 50) + 4 * 50  # one bias per gate (Flax, Keras LSTM)
  return convs + lstm + (50 * 256 + 256) + (256 * classes + classes)


@pytest.mark.parametrize('lstm_steps', ['filters', 'time'])
def test_parameter_count(lstm_steps):
  for length, classes in ((128, 11), (512, 12), (1024, 24)):
    params = _shapes(CLDNN(classes, lstm_steps=lstm_steps), length)['params']
    assert _count(params) == _expected_count(length, classes, lstm_steps)
    n = 2 * (2 * length - 12) if lstm_steps == 'filters' else 100
    assert params['lstm']['cell']['ii']['kernel'].shape == (n, 50)
  if lstm_steps == 'filters':
    assert _expected_count(128, 11, 'filters') == 164_233
    # The public Keras model's CuDNNLSTM has a second bias vector: 4 x 50 more, 164,433.
    assert _expected_count(128, 11, 'filters') + 4 * 50 == 164_433


def test_lstm_sequence_layout():
  """'filters' is Keras' channels-first Reshape; 'time' steps over the concatenated time."""
  rng = np.random.default_rng(0)
  a = rng.standard_normal((2, 2, 7, 5)).astype(np.float32)  # NHWC, W = L - 3
  b = rng.standard_normal((2, 2, 3, 5)).astype(np.float32)  # W = L - 9
  keras_cf = np.concatenate([a.transpose(0, 3, 1, 2), b.transpose(0, 3, 1, 2)], axis=-1)
  got = CLDNN(3).apply({}, a, b, method=CLDNN._sequence)
  np.testing.assert_array_equal(got, keras_cf.reshape(2, 5, 2 * 10))
  got = CLDNN(3, lstm_steps='time').apply({}, a, b, method=CLDNN._sequence)
  assert got.shape == (2, 10, 10)
  np.testing.assert_array_equal(got[:, 8], b[:, :, 1, :].reshape(2, 10))  # a's 7, then b's 3


@pytest.mark.parametrize('length', [128, 1024])
def test_forward_embedding_and_dropout(length, initialised):
  model, variables = initialised(length)
  logits, emb = zoo_checks.forward_with_dropout(model, variables, length)
  assert logits.shape == (2, 5)
  assert emb.shape == (2, 256) and np.all(emb >= 0)  # the ReLU output


def test_time_steps_variant_runs():
  model = CLDNN(4, lstm_steps='time')
  x = jax.random.normal(jax.random.key(1), (2, 2, 64))
  logits = jax.jit(model.apply)(_init(model, 64), x)
  assert logits.shape == (2, 4) and np.isfinite(logits).all()


def test_a_few_steps_lower_the_loss(initialised):
  model, variables = initialised(128)
  losses = training_losses(model, variables, 128, steps=8)
  assert losses[-1] < losses[0]


def test_bad_settings_and_short_signals():
  with pytest.raises(ConfigError, match='lstm_steps'):
    _shapes(CLDNN(3, lstm_steps='channels'), 128)
  with pytest.raises(ConfigError, match='at least 10 samples'):
    _shapes(CLDNN(3), 9)
  with pytest.raises(ConfigError, match=r'expects \(B, 2, L\)'):
    CLDNN(3).init(jax.random.key(0), jnp.zeros((1, 4, 16)))
