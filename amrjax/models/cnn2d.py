"""2D-CNN (O'Shea, Corgan & Clancy 2016, "VT-CNN2"): the DUSE scorer and default model.

Layers as the public radioML examples notebook builds them (REFERENCE.md), for input
(B, 2, L) seen as a one-channel 2 x L image:

  pad (0, 2) -> Conv 256 (1 x 3) ReLU -> Dropout 0.5
  -> pad (0, 2) -> Conv 80 (2 x 3) ReLU -> Dropout 0.5
  -> flatten (80 * (L + 4)) -> Dense 256 ReLU -> Dropout 0.5 -> Dense C

Parameters: 1,024 + 122,960 + (80 (L + 4) + 1) 256 + 257 C; at L = 128, C = 11 that is
2,830,427, the count of the Keras model. The penultimate embedding is the 256-d ReLU output
of the first dense layer (before its dropout). Layout is NHWC (channels last), so the
flatten order differs from the Keras channels-first model; the function is the same.

Kernels start from Glorot-uniform, the Keras default the original model was trained with.
It matters: on the Sig2019 stand-in (8,040 training vectors, Adam 1e-3, batch 128) the
model reached 53 % test accuracy after 2 epochs and 66 % after 8 with Glorot-uniform,
and stayed at chance (8 %) for 8 epochs with Flax's default LeCun-normal, whose first-layer
scale (fan-in 3) is eleven times larger.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from amrjax.models.layers import KERAS_INIT, Conv2D, Dropout


class CNN2D(nn.Module):
  """VT-CNN2. Input (B, 2, L) float32, output logits (B, num_classes)."""

  num_classes: int
  dropout_rate: float = 0.5

  def setup(self):
    # The first layer sees one input channel: its kernel gradient is faster as matmuls.
    self.conv1 = Conv2D(256, (1, 3), padding=((0, 0), (2, 2)), matmul_kernel_grad=True,
                        kernel_init=KERAS_INIT)
    self.conv2 = Conv2D(80, (2, 3), padding=((0, 0), (2, 2)), kernel_init=KERAS_INIT)
    self.dense = nn.Dense(256, kernel_init=KERAS_INIT)
    self.head = nn.Dense(self.num_classes, kernel_init=KERAS_INIT)
    self.dropout = Dropout(self.dropout_rate)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features, (B, 256)."""
    h = x[..., None]  # (B, 2, L, 1)
    h = self.dropout(nn.relu(self.conv1(h)), deterministic=not train)
    h = self.dropout(nn.relu(self.conv2(h)), deterministic=not train)
    h = h.reshape(h.shape[0], -1)
    return nn.relu(self.dense(h))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    h = self.dropout(self.embed(x, train=train), deterministic=not train)
    return self.head(h)
