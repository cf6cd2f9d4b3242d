"""CLDNN (West & O'Shea 2017, "Deep architectures for modulation recognition").

Layers as the public Keras CLDNN builds them (the AMR-Benchmark and
"Deep-Architectures-for-Modulation-Recognition" code agree), for input (B, 2, L) seen as a
one-channel 2 x L image:

  pad (0, 2) -> Conv 50 (1 x 8) ReLU -> Dropout 0.5      -> a  (2, L - 3, 50)
  -> pad (0, 2) -> Conv 50 (1 x 8) ReLU -> Dropout 0.5
  -> pad (0, 2) -> Conv 50 (1 x 8) ReLU -> Dropout 0.5   -> b  (2, L - 9, 50)
  -> concat (a, b) along time                            -> (2, 2L - 12, 50)
  -> LSTM 50 (last state) -> Dense 256 ReLU -> Dropout 0.5 -> Dense C

What the LSTM steps over is a choice (``lstm_steps``):

- ``'filters'`` (default): what the public Keras model does. Its channels-first
  ``Reshape((50, 2 (2L - 12)))`` makes the 50 filter maps the 50 time steps, each step the
  flattened (I row, Q row) of one filter over the whole concatenated time axis; the
  bypass (a next to b) thus sits inside every step's features.
- ``'time'``: an LSTM over time, as in the speech CLDNN of Sainath et al. that West &
  O'Shea adapt: 2L - 12 steps (a's L - 3 steps followed by b's L - 9), each step the
  2 x 50 features of one sample position.

Parameters (one LSTM bias vector per gate, the Flax and Keras ``LSTM`` convention):
convs 450 + 20,050 + 20,050; LSTM 4 * 50 (n + 50) + 200 with n = 2 (2L - 12) for
``'filters'`` and n = 100 for ``'time'``; Dense 13,056; head 257 C. At L = 128, C = 11
(``'filters'``) that is 164,233; the public model's ``CuDNNLSTM`` has a second bias vector,
giving 164,433 in Keras. The penultimate embedding is the 256-d ReLU output, before its
dropout.

Initialisers: He-normal for the convolutions (the Keras code uses Glorot-uniform) and, as in
the Keras code, for the two dense layers; Glorot-uniform input map and orthogonal recurrent
kernel for the LSTM, whose forget-gate bias starts at 0 (Keras: 1; see ``recurrent``). The
convolutions use He-normal for the reason ``cnn2d`` gives: on RML2016-scaled inputs (each
vector divided by the sum of its |x|, so samples are ~1/L) Glorot-uniform ReLUs die early.
Measured on the synthetic RML2016.10a stand-in (SNR >= 10 dB, 2,310 training vectors,
8 epochs of Adam 1e-3 at batch 64, about 290 steps; chance 0.09): Glorot-uniform stayed at
chance on 2 of 2 seeds (test accuracy 0.077, 0.081), He-normal learned on 3 of 3
(0.386, 0.278, 0.300).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from amrjax.errors import ConfigError
from amrjax.models.layers import RELU_INIT, Conv2D, Dropout
from amrjax.models.recurrent import last_lstm_state, lstm_layer

LSTM_STEPS = ('filters', 'time')
CONV_INIT = RELU_INIT  # He-normal, chosen by measurement (module docstring)
MIN_LENGTH = 10  # the third convolution leaves L - 9 samples


class CLDNN(nn.Module):
  """West & O'Shea's CLDNN. Input (B, 2, L) float32 with L >= 10, output logits (B, C).

  Attributes:
    num_classes: C.
    lstm_steps: ``'filters'`` (the public Keras model) or ``'time'``; see the module doc.
    filters: channels of each convolution (50).
    lstm_units: LSTM units (50).
    dense_units: width of the dense layer (256).
    dropout_rate: dropout after every convolution and after the dense layer (0.5).
  """

  num_classes: int
  lstm_steps: str = 'filters'
  filters: int = 50
  lstm_units: int = 50
  dense_units: int = 256
  dropout_rate: float = 0.5

  def setup(self):
    if self.lstm_steps not in LSTM_STEPS:
      raise ConfigError(f'CLDNN lstm_steps must be one of {LSTM_STEPS}, got '
                        f'{self.lstm_steps!r}')
    pad = ((0, 0), (2, 2))
    # The first layer sees one input channel: its kernel gradient is faster as matmuls.
    self.conv1 = Conv2D(self.filters, (1, 8), padding=pad, matmul_kernel_grad=True,
                        kernel_init=CONV_INIT)
    self.conv2 = Conv2D(self.filters, (1, 8), padding=pad, kernel_init=CONV_INIT)
    self.conv3 = Conv2D(self.filters, (1, 8), padding=pad, kernel_init=CONV_INIT)
    self.lstm = lstm_layer(self.lstm_units)
    self.dense = nn.Dense(self.dense_units, kernel_init=RELU_INIT)
    self.head = nn.Dense(self.num_classes, kernel_init=RELU_INIT)
    self.dropout = Dropout(self.dropout_rate)

  def _sequence(self, a: jax.Array, b: jax.Array) -> jax.Array:
    """(B, 2, W_a, F), (B, 2, W_b, F) -> the LSTM's (B, steps, n) input."""
    h = jnp.concatenate([a, b], axis=2)  # (B, 2, W, F), W = 2L - 12
    batch, _, width, filters = h.shape
    if self.lstm_steps == 'filters':
      # Keras' channels-first (B, F, 2, W) reshaped to (B, F, 2 W).
      return jnp.transpose(h, (0, 3, 1, 2)).reshape(batch, filters, 2 * width)
    return jnp.transpose(h, (0, 2, 1, 3)).reshape(batch, width, 2 * filters)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features, (B, dense_units)."""
    if x.ndim != 3 or x.shape[1] != 2:
      raise ConfigError(f'CLDNN expects (B, 2, L) I/Q input, got shape {x.shape}')
    if x.shape[-1] < MIN_LENGTH:
      raise ConfigError(f'CLDNN needs signals of at least {MIN_LENGTH} samples, '
                        f'got {x.shape[-1]}')
    drop = lambda h: self.dropout(h, deterministic=not train)  # noqa: E731
    a = drop(nn.relu(self.conv1(x[..., None])))  # (B, 2, L - 3, F)
    h = drop(nn.relu(self.conv2(a)))
    b = drop(nn.relu(self.conv3(h)))  # (B, 2, L - 9, F)
    h = last_lstm_state(self.lstm, self._sequence(a, b))
    return nn.relu(self.dense(h))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    h = self.dropout(self.embed(x, train=train), deterministic=not train)
    return self.head(h)
