"""AlexNet (Krizhevsky, Sutskever & Hinton 2012) adapted to I/Q signals.

No public AMR code was found; the DUSE paper cites the ImageNet paper for
its "AlexNet" and gives no adaptation. This module keeps AlexNet's topology, five
convolutions and three fully connected layers with its kernel sizes, strides, ReLUs, local
response normalisation, overlapping max pools and dropout, and makes these choices:

* Kernels and pools act along time only. The (2, L) input is read as a length-L signal
  with two channels, I and Q, the way an image's colours are channels: the first kernel
  spans I and Q (it is a (2 x 11) kernel on the 2 x L image) and every later kernel and
  pool is one-dimensional along time.
* Layer sizes, AlexNet's with widths halved and the dense layers cut from 4096 to 512 so
  the model stays under a few million parameters:

    Conv 48, k 11, stride 4, ReLU -> LRN -> MaxPool 3, stride 2
    -> Conv 128, k 5, ReLU -> LRN -> MaxPool 3, stride 2
    -> Conv 192, k 3, ReLU -> Conv 192, k 3, ReLU -> Conv 128, k 3, ReLU -> MaxPool 3, stride 2
    -> flatten (128 * ceil(L / 32)) -> Dropout 0.5 -> Dense 512 ReLU
    -> Dropout 0.5 -> Dense 512 ReLU -> Dense C

* 'same' padding for convolutions and pools (TensorFlow convention), so every length works:
  the stride-4 convolution and the three pools divide the length by 4, 2, 2, 2, rounding up,
  and P = ceil(L / 32) positions reach the flatten (4 at L = 128, 16 at L = 512, 32 at
  L = 1024). AlexNet's pools are unpadded.
* LRN as in the paper (Sec. 3.3): b = a / (k + alpha sum a^2)^beta over n = 5 neighbouring
  channels, k = 2, alpha = 1e-4, beta = 0.75 (alpha multiplies the plain sum; PyTorch's
  ``LocalResponseNorm`` divides it by n).
* Dropout 0.5 before each of the two hidden dense layers, as torchvision's AlexNet places it.
* He-normal kernels (see ``cnn2d``: ReLU models without normalisation layers stay at chance
  on the tiny RadioML-scaled inputs with Glorot or LeCun initialisation) and zero biases,
  not the paper's constant 1 in some layers.

Parameters: 290,512 in the convolutions, (128 P + 1) 512 + 262,656 in the hidden dense
layers and 513 C in the head: 821,467 at L = 128, C = 11 and
2,663,144 at L = 1024, C = 24. The penultimate embedding is the second 512-d ReLU output.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from amrjax.models.layers import RELU_INIT, Dropout

KERNELS = (11, 5, 3, 3, 3)
STRIDES = (4, 1, 1, 1, 1)


def local_response_norm(x: jax.Array, *, size: int = 5, k: float = 2.0, alpha: float = 1e-4,
                        beta: float = 0.75) -> jax.Array:
  """Krizhevsky's LRN across the last (channel) axis.

  b_c = a_c / (k + alpha * sum_{c' = c - size // 2}^{c + size // 2} a_{c'}^2)^beta, with the
  sum clipped to the existing channels.
  """
  sq = jnp.square(x)
  half = size // 2
  padded = jnp.pad(sq, [(0, 0)] * (x.ndim - 1) + [(half, size - 1 - half)])
  channels = x.shape[-1]
  window = sum(padded[..., i:i + channels] for i in range(size))
  return x / jnp.power(k + alpha * window, beta)


def _pool(h: jax.Array) -> jax.Array:
  """AlexNet's overlapping max pool (window 3, stride 2) along time, 'same' padding."""
  return nn.max_pool(h, (3,), strides=(2,), padding='SAME')


class AlexNet(nn.Module):
  """AlexNet for I/Q. Input (B, 2, L) float32, output logits (B, num_classes).

  Attributes:
    num_classes: C.
    widths: channels of the five convolutions (AlexNet's 96, 256, 384, 384, 256 halved).
    dense_units: width of the two hidden dense layers (AlexNet's 4096 cut to 512).
    dropout_rate: dropout before each hidden dense layer (0.5).
  """

  num_classes: int
  widths: tuple[int, int, int, int, int] = (48, 128, 192, 192, 128)
  dense_units: int = 512
  dropout_rate: float = 0.5

  def setup(self):
    self.convs = [nn.Conv(width, (kernel,), strides=(stride,), padding='SAME',
                          kernel_init=RELU_INIT)
                  for width, kernel, stride in zip(self.widths, KERNELS, STRIDES)]
    self.dense1 = nn.Dense(self.dense_units, kernel_init=RELU_INIT)
    self.dense2 = nn.Dense(self.dense_units, kernel_init=RELU_INIT)
    self.head = nn.Dense(self.num_classes, kernel_init=RELU_INIT)
    self.dropout = Dropout(self.dropout_rate)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features, (B, dense_units)."""
    conv1, conv2, conv3, conv4, conv5 = self.convs
    h = jnp.swapaxes(x, 1, 2)  # (B, L, 2): time x (I, Q)
    h = _pool(local_response_norm(nn.relu(conv1(h))))
    h = _pool(local_response_norm(nn.relu(conv2(h))))
    h = nn.relu(conv3(h))
    h = nn.relu(conv4(h))
    h = _pool(nn.relu(conv5(h)))
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(self.dense1(self.dropout(h, deterministic=not train)))
    return nn.relu(self.dense2(self.dropout(h, deterministic=not train)))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.embed(x, train=train))
