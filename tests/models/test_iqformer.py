import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import models
from amrjax.errors import ConfigError
from amrjax.models.iqformer import (AdditiveAttention, IQFormer, blackman_window, for_length,
                                    stft)
from tests.models import zoo_checks

# Everything runs jitted (one compile per shape).


def _normal(*shape, seed=1):
  # NumPy, not jax.random: an eager jax.random.normal compiles a program for every shape.
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


# fit's state at test_batchnorm_eval.py's settings (6 classes, L = 128): the initialisation
# and the train steps below are the programs fit compiles there (the compilation cache).
@pytest.fixture(scope='module')
def iqformer6():
  model = models.get('iqformer', 6, 128)
  return model, zoo_checks.fit_state(model, 128)


_CACHE = {}


def _forward(model):
  """Jitted eval-mode (logits, embed, head(embed), sown attention token weights)."""
  if model not in _CACHE:
    def forward(v, x):
      logits, state = model.apply(v, x, train=False, mutable=['intermediates'])
      return (logits, model.apply(v, x, method='embed'),
              model.apply(v, x, method=lambda m, x: m.head(m.embed(x))),
              state['intermediates'])
    _CACHE[model] = jax.jit(forward)
  return _CACHE[model]


def test_parameter_count_matches_the_hand_count():
  d, units = 64, 32

  def lstm(n_in):  # Flax's OptimizedLSTMCell: one bias per gate
    return 4 * units * (n_in + units) + 4 * units

  def conv_encoder(hidden):  # depthwise k3 (no bias), BatchNorm, two 1x1 layers, scale
    return 3 * d + 2 * d + (d * hidden + hidden) + (hidden * d + d) + d

  attention = 4 * (d * d + d) + d  # query, key, proj, out, w_g
  fcn = 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d)
  encoder = conv_encoder(d) + attention + fcn

  def expected(depths, classes):
    stems = 2 * 2 + 2 * 1  # input BatchNorms: I/Q (2 channels) and STFT (1 channel)
    stems += 5 * 8 + 2 * 8  # I/Q stem: kernel 5, 2 groups, 8 filters, no bias; BatchNorm
    stems += 32 * 8 + 2 * 8  # STFT stem: 32 bins -> 8, no bias; BatchNorm
    fusion = 16 * 32 + 2 * 32 + (32 * 32 + 32)
    bilstm = 2 * lstm(32) + 2 * lstm(64)
    blocks = sum((n - 1) * conv_encoder(4 * d) + encoder for n in depths)
    return stems + fusion + bilstm + blocks + 2 * d + (d * classes + classes)

  # 4 + 2 + 56 + 272 + 1,632 + 41,472 + (4 x 33,472 + 3 x 58,624) + 128 + 715 = 354,041.
  # The authors' PyTorch module adds 496 biases before BatchNorms (8 + 8 + 32 + 7 x 64) and
  # 512 second LSTM biases (4 x 4 x 32): 355,049.
  assert expected((2, 3, 2), 11) == 354_041
  assert expected((3, 3, 3), 24) == 421_830
  for length, classes, depths in ((128, 11, (2, 3, 2)), (1024, 24, (3, 3, 3))):
    shapes = zoo_checks.shapes(models.get('iqformer', classes, length), length)
    assert zoo_checks.count(shapes['params']) == expected(depths, classes)


def test_forward_shapes_embedding_and_deterministic_eval(iqformer6):
  model, variables = iqformer6[0], iqformer6[1].variables
  x = _normal(3, 2, 128)
  logits, emb, head_of_embed, inter = _forward(model)(variables, x)
  assert logits.shape == (3, 6) and np.isfinite(logits).all()
  assert emb.shape == (3, 64)
  np.testing.assert_allclose(head_of_embed, logits, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(logits, _forward(model)(variables, x)[0])
  # One additive attention per stage; its token weights have unit L2 norm over the tokens.
  for block in ('blocks_1', 'blocks_4', 'blocks_6'):
    (weights,) = inter[block]['attention']['token_weights']
    assert weights.shape == (3, 128)
    np.testing.assert_allclose(jnp.linalg.norm(weights, axis=1), 1.0, rtol=1e-5)


def test_rml2018_length_runs_the_long_configuration():
  model = models.get('iqformer', 24, 1024)
  assert model.depths == (3, 3, 3) and model.drop_path_rate == 0.2
  assert for_length(11, 128).depths == (2, 3, 2) and for_length(11, 128).drop_path_rate == 0
  # Shapes only (jax.eval_shape compiles nothing): the 128-sample model's tests run the code.
  variables = zoo_checks.shapes(model, 1024)
  logits, emb, _, _ = jax.eval_shape(_forward(model), variables,
                                     jax.ShapeDtypeStruct((2, 2, 1024), jnp.float32))
  assert logits.shape == (2, 24) and emb.shape == (2, 64)
  # DropPath rises linearly over the 9 blocks; only the encoders (blocks 2, 5, 8) use it.
  blocks = model.bind(variables).blocks
  rates = [b.drop_path_rate for b in blocks if hasattr(b, 'drop_path_rate')]
  np.testing.assert_allclose(rates, [0.2 * 2 / 8, 0.2 * 5 / 8, 0.2])


def _stft_reference(signal, window_length=31, nfft=128, bins=32):
  """np.fft of each zero-padded, Blackman-windowed, hop-1 segment: (L, bins) complex."""
  window = np.blackman(window_length + 1)[:window_length]  # periodic, as scipy's
  padded = np.pad(signal, window_length // 2)
  frames = np.stack([padded[t:t + window_length] for t in range(len(signal))])
  return np.fft.rfft(frames * window, n=nfft, axis=-1)[:, :bins] / window.sum()


def test_stft_matches_a_numpy_fft_reference():
  signal = np.random.default_rng(3).standard_normal((2, 40))
  ours = jax.jit(stft)(jnp.asarray(signal, jnp.float32))
  assert ours.shape == (2, 40, 32) and ours.dtype == jnp.complex64
  for b in range(2):
    ref = _stft_reference(signal[b])
    np.testing.assert_allclose(np.asarray(ours[b]), ref, atol=1e-5)
    np.testing.assert_allclose(jax.jit(lambda s: stft(s, part='real'))(signal)[b], ref.real,
                               atol=1e-5)
    np.testing.assert_allclose(jax.jit(lambda s: stft(s, part='magnitude'))(signal)[b],
                               np.abs(ref), atol=1e-5)


def test_stft_matches_the_authors_scipy_call():
  signal = pytest.importorskip('scipy.signal')
  x = np.random.default_rng(4).standard_normal((1, 128))
  _, _, z = signal.stft(x[0], 1.0, 'blackman', 31, 30, 128)  # dataset/dataset.py
  np.testing.assert_allclose(np.asarray(jax.jit(stft)(x)[0]).T, z[:32], atol=1e-5)
  np.testing.assert_allclose(blackman_window(31), signal.get_window('blackman', 31))
  # hop 4: scipy pads the end to fill the last hop
  _, _, z4 = signal.stft(x[0, :50], 1.0, 'blackman', 31, 27, 128)
  ours4 = jax.jit(lambda s: stft(s, hop=4))(x[:, :50])[0]
  np.testing.assert_allclose(np.asarray(ours4).T, z4[:32], atol=1e-5)


def test_the_model_feeds_the_real_part_of_the_stft_of_i(iqformer6):
  model, variables = iqformer6[0], iqformer6[1].variables
  x = _normal(2, 2, 128, seed=5)
  spec = jax.jit(lambda v, x: model.apply(v, x, method='spectrum'))(variables, x)
  for b in range(2):
    np.testing.assert_allclose(spec[b], _stft_reference(np.asarray(x[b, 0])).real, atol=1e-5)


def test_additive_attention_is_permutation_equivariant():
  # A global query summed over the tokens, then token-wise maps: no order, no quadratic map.
  x = _normal(2, 9, 8, seed=0)
  module = AdditiveAttention()
  variables = jax.jit(module.init)(jax.random.key(1), x)
  apply = jax.jit(module.apply)
  perm = np.random.default_rng(0).permutation(9)
  np.testing.assert_allclose(apply(variables, x[:, perm]), apply(variables, x)[:, perm],
                             rtol=1e-5, atol=1e-6)


def test_train_mode_differs_and_gradients_are_finite(iqformer6):
  model, state = iqformer6
  before, after = zoo_checks.train_step_against_eval(model, state)
  assert len(before) == 2 * (6 + 7 + 3)  # model-level, one per block, the encoders' FCN norms
  assert all(not np.allclose(u, w) for u, w in zip(before, jax.tree.leaves(after.batch_stats)))
  # Adam moves a parameter only where its gradient is non-zero, and by a finite amount only
  # where the gradient is finite: every leaf moved (every parameter is used) and finitely.
  for old_leaf, new_leaf in zip(jax.tree.leaves(state.params), jax.tree.leaves(after.params)):
    assert np.isfinite(new_leaf).all() and not np.array_equal(old_leaf, new_leaf)


def test_a_few_steps_lower_the_loss(iqformer6):
  model, state = iqformer6
  losses = zoo_checks.training_losses(model, state.variables, 128, steps=8,
                                      rows=zoo_checks.BATCH)
  assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_bad_settings_raise():
  x = jnp.zeros((2, 2, 64))
  with pytest.raises(ConfigError, match='stft_feature'):
    jax.eval_shape(IQFormer(3, stft_feature='phase').init, jax.random.key(0), x)
  with pytest.raises(ConfigError, match='multiple of 8'):
    jax.eval_shape(IQFormer(3, dim=60).init, jax.random.key(0), x)
  with pytest.raises(ConfigError, match=r'\(B, 2, L\)'):
    jax.eval_shape(IQFormer(3).init, jax.random.key(0), jnp.zeros((2, 3, 64)))
  with pytest.raises(ConfigError, match='bins'):
    stft(jnp.zeros((1, 64)), bins=80)
