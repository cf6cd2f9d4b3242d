import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax.errors import ConfigError
from amrjax.models.mcldnn import MCLDNN
from tests.models.zoo_checks import count as _count, init as _init, shapes as _shapes
from tests.models import zoo_checks
from tests.models.zoo_checks import training_losses


@pytest.fixture(scope='module')
def initialised():
  """One initialisation (the parameters do not depend on L), shared by the tests below."""
  model = MCLDNN(5)
  return model, _init(model, 32)


def _expected_count(classes):
  convs = (2 * 8 * 1 * 50 + 50) + 2 * (8 * 1 * 50 + 50) + (8 * 50 * 50 + 50) + (
      2 * 5 * 100 * 100 + 100)

  def lstm(n, h):
    return 4 * h * (n + h) + 4 * h  # one bias per gate (Flax, Keras LSTM)

  dense = 2 * (128 * 128 + 128)
  return convs + lstm(100, 128) + lstm(128, 128) + dense + (128 * classes + classes)


def test_parameter_count():
  for length, classes in ((128, 11), (512, 12), (1024, 24)):
    assert _count(_shapes(MCLDNN(classes), length)['params']) == _expected_count(classes)
  assert _expected_count(11) == 405_175
  # The public model's two CuDNNLSTM layers carry a second bias vector (4 x 128 each):
  # 406,199 in Keras, the count the MCLDNN paper reports.
  assert _expected_count(11) + 2 * 4 * 128 == 406_199


def test_padding_follows_keras():
  """I/Q branches are causal; 'same' puts the extra zero after, as TensorFlow does."""
  model = MCLDNN(3)
  params = jax.tree_util.tree_map_with_path(  # unit kernels, zero biases
      lambda path, s: jnp.full(s.shape, 0.0 if path[-1].key == 'bias' else 1.0),
      _shapes(model, 32)['params'])
  impulse = jnp.zeros((1, 2, 32)).at[0, 0, 10].set(1.0)  # I row, t = 10

  def branches(m, x):
    image = x[..., None]
    return m.conv_i(image[:, :1])[0, 0, :, 0], m.conv_iq(image)[0, :, :, 0]

  causal, same = model.apply({'params': params}, impulse, method=branches)
  np.testing.assert_array_equal(np.flatnonzero(causal), np.arange(10, 18))
  # kernel row 0 meets the I row at output row 0, kernel row 1 at output row 1 (pad after)
  np.testing.assert_array_equal(np.flatnonzero(same[0]), np.arange(6, 14))
  np.testing.assert_array_equal(np.flatnonzero(same[1]), [])


@pytest.mark.parametrize('length', [128, 1024])
def test_forward_embedding_and_dropout(length, initialised):
  model, variables = initialised
  logits, emb = zoo_checks.forward_with_dropout(model, variables, length)
  assert logits.shape == (2, 5)
  assert emb.shape == (2, 128) and np.isfinite(emb).all()
  assert np.all(np.asarray(emb) > -1.7581)  # a SELU output is above -scale * alpha


def test_a_few_steps_lower_the_loss(initialised):
  model, variables = initialised
  losses = training_losses(model, variables, 32, steps=8)
  assert losses[-1] < losses[0]


def test_short_signals_and_bad_shapes():
  with pytest.raises(ConfigError, match='at least 5 samples'):
    _shapes(MCLDNN(3), 4)
  with pytest.raises(ConfigError, match=r'expects \(B, 2, L\)'):
    MCLDNN(3).init(jax.random.key(0), jnp.zeros((1, 1, 16)))
