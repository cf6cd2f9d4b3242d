"""Recurrent AMR models: GRU2, and LSTM2 of Rajendran et al. (2018).

Both read the (B, 2, L) I/Q input as a length-L sequence and run each recurrent layer as one
``lax.scan`` (``flax.linen.RNN``), as the public AMR model zoos build them:

  GRU2:  (L, 2) I/Q -> GRU 128 (all states) -> GRU 128 (last state) -> Dense C
  LSTM2: (L, 2) = (amplitude / its L2 norm over the L samples, atan2(Q, I) / pi)
         -> LSTM 128 (all states) -> LSTM 128 (last state) -> Dense C

The penultimate embedding is the last hidden state of the second layer, (B, 128).

Parameter conventions. The cells are ``flax.linen.GRUCell`` and
``flax.linen.OptimizedLSTMCell``; with input width n and H units a layer holds

  GRU:  3 H (n + H) + 4 H   (biases on the three input maps and on the candidate's recurrent
                             map: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)))
  LSTM: 4 H (n + H) + 4 H   (one bias per gate)

Flax's GRU is the "reset after" GRU of Keras (``reset_after=True``, the TF2 default and the
cuDNN form), whose layer holds 3 H (n + H) + 6 H: Keras also gives the reset and update gates
a recurrent bias, which only adds to their input bias, so the two compute the same family of
functions and Keras has 2 H redundant parameters per layer more. Keras' LSTM has our count;
``CuDNNLSTM`` (used by the public LSTM2) has two bias vectors, 4 H more per layer. At C = 11:
GRU2 has 150,667 parameters here and 151,179 in Keras (``CuDNNGRU`` / reset_after=True); LSTM2
has 200,075 here and in Keras' ``LSTM``, 201,099 with ``CuDNNLSTM``.

Initialisers follow Keras: Glorot-uniform input kernels, orthogonal recurrent kernels (one
orthogonal H x H matrix per gate here, one H x kH matrix in Keras), zero biases. Keras also
starts the LSTM forget-gate bias at 1 (``unit_forget_bias``); Flax's cells take one bias
initialiser for all gates, so here it starts at 0 like every other bias.

Input scale. GRU2 sees the raw I/Q values, so on RML2016-scaled inputs (each vector divided
by the sum of its |x|, samples ~1/L) its input maps start with almost no signal. Measured on
the synthetic RML2016.10a stand-in (SNR >= 10 dB, 2,310 training vectors, 8 epochs of Adam
1e-3 at batch 64, about 290 steps; chance 0.09): GRU2 stayed at chance (test accuracy 0.081)
and reached 0.422 on the same vectors scaled to unit power; LSTM2, whose amplitude/phase
input does not depend on the scale, reached 0.155. No initialiser fixes this (there is no
ReLU to keep alive); feed unit-power vectors or train longer.

The amplitude/phase transform of LSTM2 is done inside the model (the public code does it in
its data loader) so that every model of the zoo takes the same (B, 2, L) I/Q input and
input gradients (DeepFool) go through it. Its gradient is kept finite at I = Q = 0.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from amrjax.errors import ConfigError
from amrjax.models.layers import KERAS_INIT


def amplitude_phase(x: jax.Array, *, eps: float = 1e-12) -> jax.Array:
  """Rajendran et al.'s LSTM input: (B, 2, L) I/Q -> (B, L, 2) (amplitude, phase).

  Channel 0 is |I + jQ| divided by its L2 norm over the L samples of each vector; channel 1
  is atan2(Q, I) / pi in [-1, 1]. An all-zero vector maps to zeros (the norm is floored at
  ``eps``), and the gradient at a zero sample is zero instead of NaN.
  """
  i, q = x[:, 0, :], x[:, 1, :]
  r2 = i * i + q * q
  nonzero = r2 > 0
  amplitude = jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, r2, 1.0)), 0.0)
  norm = jnp.sqrt(jnp.maximum(jnp.sum(r2, axis=-1, keepdims=True), eps * eps))
  phase = jnp.arctan2(jnp.where(nonzero, q, 0.0), jnp.where(nonzero, i, 1.0)) / jnp.pi
  return jnp.stack([amplitude / norm, phase], axis=-1)


def _iq_sequence(x: jax.Array) -> jax.Array:
  """(B, 2, L) -> (B, L, 2): one (I, Q) pair per time step."""
  return jnp.swapaxes(x, 1, 2)


def _check_input(x: jax.Array, name: str) -> None:
  if x.ndim != 3 or x.shape[1] != 2 or x.shape[2] < 1:
    raise ConfigError(f'{name} expects (B, 2, L) I/Q input, got shape {x.shape}')


def gru_layer(units: int) -> nn.RNN:
  """A GRU layer over (B, L, n) sequences, run as one scan, with Keras' initialisers."""
  return nn.RNN(nn.GRUCell(units, kernel_init=KERAS_INIT))


def lstm_layer(units: int) -> nn.RNN:
  """An LSTM layer over (B, L, n) sequences, run as one scan, with Keras' initialisers."""
  return nn.RNN(nn.OptimizedLSTMCell(units, kernel_init=KERAS_INIT))


def last_lstm_state(layer: nn.RNN, h: jax.Array) -> jax.Array:
  """Runs ``layer`` (an LSTM) over (B, L, n) and returns its last hidden state (B, H)."""
  (_, last), _ = layer(h, return_carry=True)
  return last


class GRU2(nn.Module):
  """Two-layer GRU. Input (B, 2, L) float32, output logits (B, num_classes).

  Attributes:
    num_classes: C.
    units: hidden units of both GRU layers (128 in the public model).
  """

  num_classes: int
  units: int = 128

  def setup(self):
    self.gru1 = gru_layer(self.units)
    self.gru2 = gru_layer(self.units)
    self.head = nn.Dense(self.num_classes, kernel_init=KERAS_INIT)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Last hidden state of the second GRU, (B, units)."""
    del train  # no dropout
    _check_input(x, 'GRU2')
    h = self.gru1(_iq_sequence(x))
    last, _ = self.gru2(h, return_carry=True)
    return last

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.embed(x, train=train))


class LSTM2(nn.Module):
  """Two-layer LSTM on amplitude/phase (Rajendran et al. 2018).

  Input (B, 2, L) float32 I/Q (converted by :func:`amplitude_phase`), output logits
  (B, num_classes).

  Attributes:
    num_classes: C.
    units: hidden units of both LSTM layers (128 in the paper).
  """

  num_classes: int
  units: int = 128

  def setup(self):
    self.lstm1 = lstm_layer(self.units)
    self.lstm2 = lstm_layer(self.units)
    self.head = nn.Dense(self.num_classes, kernel_init=KERAS_INIT)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Last hidden state of the second LSTM, (B, units)."""
    del train  # no dropout
    _check_input(x, 'LSTM2')
    h = self.lstm1(amplitude_phase(x))
    return last_lstm_state(self.lstm2, h)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.embed(x, train=train))
