import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from amrjax.errors import ConfigError
from amrjax.models.recurrent import GRU2, LSTM2, amplitude_phase
from tests.models.zoo_checks import count as _count, init as _init, shapes as _shapes

H = 128


# Closed-form counts of the Flax cells (module docstring of amrjax.models.recurrent).
def _flax_gru(n, h):
  return 3 * h * (n + h) + 4 * h  # biases: ir, iz, in, hn


def _flax_lstm(n, h):
  return 4 * h * (n + h) + 4 * h  # biases: hi, hf, hg, ho


# Keras' counts, for comparison with the published models.
def _keras_gru_reset_after(n, h):  # TF2 default GRU and CuDNNGRU: input and recurrent biases
  return 3 * h * (n + h) + 6 * h


def _keras_cudnn_lstm(n, h):  # CuDNNLSTM; Keras' plain LSTM has _flax_lstm's count
  return 4 * h * (n + h) + 8 * h


@pytest.fixture(scope='module')
def initialised():
  """One initialisation per model (their parameters do not depend on L), shared below."""
  cache = {}

  def get(model_cls):
    if model_cls not in cache:
      model = model_cls(5)
      cache[model_cls] = model, _init(model, 12)
    return cache[model_cls]

  return get


def _sigmoid(v):
  return 1.0 / (1.0 + np.exp(-v))


@pytest.mark.parametrize('classes', [11, 24])
def test_gru2_parameter_count(classes):
  expected = _flax_gru(2, H) + _flax_gru(H, H) + (H + 1) * classes
  for length in (128, 1024):  # a recurrent layer's count does not depend on L
    assert _count(_shapes(GRU2(classes), length)['params']) == expected
  if classes == 11:
    assert expected == 150_667
    # Keras adds a recurrent bias to the reset and update gates (2 H more per layer, the same
    # functions): 151,179 for the public GRU2 at C = 11.
    keras = _keras_gru_reset_after(2, H) + _keras_gru_reset_after(H, H) + (H + 1) * classes
    assert keras == expected + 2 * 2 * H == 151_179


@pytest.mark.parametrize('classes', [11, 24])
def test_lstm2_parameter_count(classes):
  expected = _flax_lstm(2, H) + _flax_lstm(H, H) + (H + 1) * classes
  for length in (128, 1024):
    assert _count(_shapes(LSTM2(classes), length)['params']) == expected
  if classes == 11:
    assert expected == 200_075  # Keras' LSTM has the same count
    # The public LSTM2's CuDNNLSTM has a second bias vector per layer: 201,099 at C = 11.
    keras = _keras_cudnn_lstm(2, H) + _keras_cudnn_lstm(H, H) + (H + 1) * classes
    assert keras == expected + 2 * 4 * H == 201_099


def _numpy_gru(p, seq):
  """Keras' reset_after GRU equations over (B, L, n), with Flax's parameter names."""
  h = np.zeros((seq.shape[0], p['hn']['kernel'].shape[0]), np.float64)
  outs = []
  for t in range(seq.shape[1]):
    x = seq[:, t]
    r = _sigmoid(x @ p['ir']['kernel'] + p['ir']['bias'] + h @ p['hr']['kernel'])
    z = _sigmoid(x @ p['iz']['kernel'] + p['iz']['bias'] + h @ p['hz']['kernel'])
    n = np.tanh(x @ p['in']['kernel'] + p['in']['bias'] +
                r * (h @ p['hn']['kernel'] + p['hn']['bias']))
    h = (1 - z) * n + z * h
    outs.append(h)
  return np.stack(outs, axis=1)


def _numpy_lstm(p, seq):
  h = np.zeros((seq.shape[0], p['hi']['kernel'].shape[0]), np.float64)
  c = np.zeros_like(h)
  outs = []
  for t in range(seq.shape[1]):
    x = seq[:, t]
    gate = {k: x @ p['i' + k]['kernel'] + h @ p['h' + k]['kernel'] + p['h' + k]['bias']
            for k in 'ifgo'}
    c = _sigmoid(gate['f']) * c + _sigmoid(gate['i']) * np.tanh(gate['g'])
    h = _sigmoid(gate['o']) * np.tanh(c)
    outs.append(h)
  return np.stack(outs, axis=1)


def _as_numpy(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _numpy_amplitude_phase(x):
  """The public LSTM2 loader: |I + jQ| / its L2 norm, atan2(Q, I) / pi; (B, L, 2)."""
  amp = np.abs(x[:, 0] + 1j * x[:, 1])
  amp = amp / np.linalg.norm(amp, 2, axis=1, keepdims=True)
  return np.stack([amp, np.arctan2(x[:, 1], x[:, 0]) / np.pi], axis=-1)


def _assert_embedding_and_logits(model, params, x, last_state):
  variables = {'params': jax.tree.map(jnp.float32, params)}
  logits, emb = jax.jit(lambda v, x: model.apply(v, x, method=lambda m, x: (m(x), m.embed(x))))(
      variables, x)
  np.testing.assert_allclose(emb, last_state, atol=2e-5)
  np.testing.assert_allclose(
      logits, last_state @ params['head']['kernel'] + params['head']['bias'], atol=2e-5)


def test_gru2_matches_a_numpy_gru(initialised):
  model, variables = initialised(GRU2)
  x = np.random.default_rng(0).standard_normal((2, 2, 12)).astype(np.float32)
  params = _as_numpy(variables['params'])
  seq = np.swapaxes(x.astype(np.float64), 1, 2)  # (B, L, 2): time along the signal
  last = _numpy_gru(params['gru2']['cell'], _numpy_gru(params['gru1']['cell'], seq))[:, -1]
  _assert_embedding_and_logits(model, params, x, last)


def test_lstm2_matches_a_numpy_lstm_on_amplitude_and_phase(initialised):
  model, variables = initialised(LSTM2)
  x = np.random.default_rng(1).standard_normal((2, 2, 12)).astype(np.float32)
  params = _as_numpy(variables['params'])
  seq = _numpy_amplitude_phase(x.astype(np.float64))
  last = _numpy_lstm(params['lstm2']['cell'], _numpy_lstm(params['lstm1']['cell'], seq))[:, -1]
  _assert_embedding_and_logits(model, params, x, last)


def test_amplitude_phase_matches_the_public_loader_and_is_safe_at_zero():
  x = np.random.default_rng(2).standard_normal((3, 2, 64)).astype(np.float32)
  got = np.asarray(jax.jit(amplitude_phase)(x))
  assert got.shape == (3, 64, 2)
  np.testing.assert_allclose(got, _numpy_amplitude_phase(x.astype(np.float64)), atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(got[..., 0], axis=1), 1.0, rtol=1e-5)
  assert np.all(np.abs(got[..., 1]) <= 1.0)

  x[0, :, 5] = 0.0  # one silent sample
  x[1] = 0.0  # one silent vector
  out = amplitude_phase(jnp.asarray(x))
  assert np.isfinite(out).all()
  np.testing.assert_array_equal(out[1], 0.0)
  np.testing.assert_array_equal(out[0, 5], 0.0)
  grad = jax.grad(lambda v: jnp.sum(amplitude_phase(v) * jnp.arange(1.0, 3.0)))(jnp.asarray(x))
  assert np.isfinite(grad).all()


@pytest.mark.parametrize('model_cls', [GRU2, LSTM2])
def test_forward_at_length_1024(model_cls, initialised):
  model, variables = initialised(model_cls)
  x = jax.random.normal(jax.random.key(1), (2, 2, 1024))
  logits, emb = jax.jit(lambda v, x: model.apply(v, x, method=lambda m, x: (m(x), m.embed(x))))(
      variables, x)
  assert logits.shape == (2, 5) and np.isfinite(logits).all()
  assert emb.shape == (2, H) and np.isfinite(emb).all()
  assert np.all(np.abs(emb) <= 1.0)  # a GRU/LSTM hidden state lies in [-1, 1]


@pytest.mark.parametrize('model_cls', [GRU2, LSTM2])
def test_training_lowers_the_loss_and_input_gradients_are_finite(model_cls, initialised):
  model, variables = initialised(model_cls)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((12, 2, 32)), jnp.float32).at[0, :, 3].set(0.0)
  y = jnp.asarray(np.arange(12) % 5)
  params = variables['params']
  tx = optax.adam(1e-2)
  opt = tx.init(params)

  def loss_fn(params, x):
    logits = model.apply({'params': params}, x, train=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  @jax.jit
  def step(params, opt):
    # The input gradient too: DeepFool differentiates the logits by the input.
    loss, (g, input_grad) = jax.value_and_grad(loss_fn, argnums=(0, 1))(params, x)
    updates, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, updates), opt, loss, input_grad

  losses = []
  for _ in range(6):
    params, opt, loss, input_grad = step(params, opt)
    assert np.isfinite(input_grad).all()
    losses.append(float(loss))
  assert losses[-1] < losses[0]


@pytest.mark.parametrize('model_cls', [GRU2, LSTM2])
def test_bad_input_shape(model_cls):
  with pytest.raises(ConfigError, match=r'expects \(B, 2, L\)'):
    model_cls(3).init(jax.random.key(0), jnp.zeros((1, 3, 16)))
