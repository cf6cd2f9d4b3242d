"""MCLDNN (Xu et al. 2020, "A spatiotemporal multi-channel learning framework for automatic
modulation recognition", IEEE Wireless Communications Letters).

Layers as the public Keras MCLDNN builds them, all convolutions ReLU, for
input (B, 2, L):

  IQ branch: (2, L, 1) image -> Conv2D 50 (2 x 8) same                 -> (2, L, 50)
  I branch:  (L, 1) -> Conv1D 50, kernel 8, causal                    -> (1, L, 50)
  Q branch:  (L, 1) -> Conv1D 50, kernel 8, causal                    -> (1, L, 50)
  concat I, Q along the height -> Conv2D 50 (1 x 8) same              -> (2, L, 50)
  concat with the IQ branch along channels -> Conv2D 100 (2 x 5) valid -> (1, L - 4, 100)
  -> LSTM 128 (all states) -> LSTM 128 (last state)
  -> Dense 128 SELU -> Dropout 0.5 -> Dense 128 SELU -> Dropout 0.5 -> Dense C

"same" pads as TensorFlow does for an even kernel: (k - 1) // 2 before and the rest after
(rows (0, 1) and columns (3, 4) for 2 x 8); "causal" pads 7 zeros before. The I and Q
convolutions run on (1, L, 1) images with (1 x 8) kernels, the same function and parameter
count as Keras' Conv1D. The public model takes three inputs (IQ, I, Q); here the branches are
cut from the one (B, 2, L) input the whole zoo shares.

Parameters (one LSTM bias vector per gate, the Flax and Keras ``LSTM`` convention): convs
850 + 450 + 450 + 20,050 + 100,100 = 121,900; LSTMs 117,248 + 131,584; dense 2 x 16,512;
head 129 C; 403,756 + 129 C in all, independent of L (405,175 at C = 11). The public model's
``CuDNNLSTM`` layers carry a second bias vector each: 406,199 at C = 11 in Keras, the count
the paper reports. The penultimate embedding is the second 128-d SELU output, before its
dropout.

Initialisers: He-normal for the convolutions (the Keras code uses Glorot-uniform, Keras'
default); Glorot-uniform for the dense layers and the LSTMs' input maps, orthogonal recurrent
kernels, zero biases (the Keras forget-gate bias of 1 is not reproduced; see ``recurrent``).
The convolutions use He-normal for the reason ``cnn2d`` and ``cldnn`` give: on RML2016-scaled
inputs (samples ~1/L) Glorot-uniform ReLUs die early. Measured on the synthetic RML2016.10a
stand-in (SNR >= 10 dB, 2,310 training vectors, 8 epochs of Adam 1e-3 at batch 64, about 290
steps; chance 0.09): Glorot-uniform stayed at chance (test accuracy 0.081), He-normal
reached 0.363; Glorot-uniform on the same vectors scaled to unit power reached 0.378.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from amrjax.errors import ConfigError
from amrjax.models.layers import KERAS_INIT, RELU_INIT, Conv2D, Dropout
from amrjax.models.recurrent import last_lstm_state, lstm_layer

MIN_LENGTH = 5  # the (2 x 5) valid convolution leaves L - 4 steps
CONV_INIT = RELU_INIT  # He-normal, chosen by measurement (module docstring)


class MCLDNN(nn.Module):
  """Multi-channel CLDNN. Input (B, 2, L) float32 with L >= 5, output logits (B, C).

  Attributes:
    num_classes: C.
    lstm_units: units of both LSTM layers (128).
    dense_units: width of both SELU layers (128).
    dropout_rate: dropout after each SELU layer (0.5).
  """

  num_classes: int
  lstm_units: int = 128
  dense_units: int = 128
  dropout_rate: float = 0.5

  def setup(self):
    same_1x8 = ((0, 0), (3, 4))
    causal = ((0, 0), (7, 0))
    # The three first-layer convolutions see one input channel: matmul kernel gradients.
    self.conv_iq = Conv2D(50, (2, 8), padding=((0, 1), (3, 4)), matmul_kernel_grad=True,
                          kernel_init=CONV_INIT)
    self.conv_i = Conv2D(50, (1, 8), padding=causal, matmul_kernel_grad=True,
                         kernel_init=CONV_INIT)
    self.conv_q = Conv2D(50, (1, 8), padding=causal, matmul_kernel_grad=True,
                         kernel_init=CONV_INIT)
    self.conv_merge_iq = Conv2D(50, (1, 8), padding=same_1x8, kernel_init=CONV_INIT)
    self.conv_fuse = Conv2D(100, (2, 5), kernel_init=CONV_INIT)
    self.lstm1 = lstm_layer(self.lstm_units)
    self.lstm2 = lstm_layer(self.lstm_units)
    self.fc1 = nn.Dense(self.dense_units, kernel_init=KERAS_INIT)
    self.fc2 = nn.Dense(self.dense_units, kernel_init=KERAS_INIT)
    self.head = nn.Dense(self.num_classes, kernel_init=KERAS_INIT)
    self.dropout = Dropout(self.dropout_rate)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features, (B, dense_units)."""
    if x.ndim != 3 or x.shape[1] != 2:
      raise ConfigError(f'MCLDNN expects (B, 2, L) I/Q input, got shape {x.shape}')
    if x.shape[-1] < MIN_LENGTH:
      raise ConfigError(f'MCLDNN needs signals of at least {MIN_LENGTH} samples, '
                        f'got {x.shape[-1]}')
    image = x[..., None]  # (B, 2, L, 1)
    iq = nn.relu(self.conv_iq(image))  # (B, 2, L, 50)
    i = nn.relu(self.conv_i(image[:, :1]))  # (B, 1, L, 50)
    q = nn.relu(self.conv_q(image[:, 1:]))
    h = nn.relu(self.conv_merge_iq(jnp.concatenate([i, q], axis=1)))  # (B, 2, L, 50)
    h = nn.relu(self.conv_fuse(jnp.concatenate([iq, h], axis=-1)))  # (B, 1, L - 4, 100)
    h = self.lstm1(h[:, 0])
    h = last_lstm_state(self.lstm2, h)
    h = self.dropout(nn.selu(self.fc1(h)), deterministic=not train)
    return nn.selu(self.fc2(h))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    h = self.dropout(self.embed(x, train=train), deterministic=not train)
    return self.head(h)
