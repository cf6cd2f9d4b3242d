"""IC-AMCNet (Hermawan et al. 2020, "CNN-based automatic modulation classification for beyond
5G communications", IEEE Communications Letters).

Input (B, 2, L) seen as a 2 x L one-channel image:

  Conv 64 (1 x 8) ReLU -> MaxPool 2 x 2 -> Conv 64 (1 x 4) ReLU -> Conv 128 (1 x 8) ReLU
  -> Dropout 0.4 -> Conv 128 (1 x 8) ReLU -> Dropout 0.4
  -> flatten (128 * ceil(L / 2)) -> Dense 128 ReLU -> Dropout 0.4
  -> GaussianNoise (stddev 1, training only) -> Dense C

Activations and padding follow the public Keras port
(Richardzhangxx/AMR-Benchmark, ``IC-AMCNet/rmlmodels/ICAMC.py``): ReLU after every
convolution and after the 128-unit dense layer, and 'same' padding for every convolution
(TensorFlow convention: a width-8 kernel pads 3 before and 4 after, width 4 pads 1 and 2).

The 2 x 2 pool: the image is only two rows high, so the pool's 2-row window covers I and Q
together and leaves one row; it is the only place I and Q meet before the dense layer. We
pool with 'same' padding (a partial window at the end is pooled over the samples it has):
on the height-2 image that gives height 1 exactly as 'valid' does, and along time it gives
ceil(L / 2), which equals Keras' 'valid' floor(L / 2) for every even L and keeps the last
sample for an odd L instead of dropping it.

Parameters: 576 + 16,448 + 65,664 + 131,200 in the convolutions, 128 * 128 ceil(L / 2) + 128
in the dense layer and 129 C in the head; 1,264,011 at L = 128, C = 11 (the same layers
count that in Keras). The penultimate embedding is the 128-d ReLU output of the dense layer,
before its dropout and the noise.

Kernels start from He-normal (see ``cnn2d``: the Keras default Glorot-uniform leaves ReLU
models without normalisation at chance on the tiny RadioML-scaled inputs).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from amrjax.models.layers import RELU_INIT, Conv2D, Dropout


def _same(width: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """TensorFlow 'same' padding of a stride-1 (1, width) kernel."""
  return ((0, 0), ((width - 1) // 2, width // 2))


class GaussianNoise(nn.Module):
  """Adds N(0, stddev^2) noise while training, identity otherwise (Keras GaussianNoise).

  Draws from the ``'dropout'`` rng, the one the training loop provides.

  Attributes:
    stddev: standard deviation of the noise.
  """

  stddev: float

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
    if deterministic or self.stddev == 0.0:
      return x
    noise = jax.random.normal(self.make_rng('dropout'), x.shape, x.dtype)
    return x + self.stddev * noise


class ICAMCNet(nn.Module):
  """IC-AMCNet. Input (B, 2, L) float32, output logits (B, num_classes).

  Attributes:
    num_classes: C.
    dropout_rate: rate of the three dropouts (0.4).
    noise_stddev: standard deviation of the training-time Gaussian noise before the head (1).
  """

  num_classes: int
  dropout_rate: float = 0.4
  noise_stddev: float = 1.0

  def setup(self):
    # The first layer sees one input channel: its kernel gradient is faster as matmuls.
    self.conv1 = Conv2D(64, (1, 8), padding=_same(8), matmul_kernel_grad=True,
                        kernel_init=RELU_INIT)
    self.conv2 = Conv2D(64, (1, 4), padding=_same(4), kernel_init=RELU_INIT)
    self.conv3 = Conv2D(128, (1, 8), padding=_same(8), kernel_init=RELU_INIT)
    self.conv4 = Conv2D(128, (1, 8), padding=_same(8), kernel_init=RELU_INIT)
    self.dense = nn.Dense(128, kernel_init=RELU_INIT)
    self.head = nn.Dense(self.num_classes, kernel_init=RELU_INIT)
    self.dropout = Dropout(self.dropout_rate)
    self.noise = GaussianNoise(self.noise_stddev)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features, (B, 128)."""
    h = x[..., None]  # (B, 2, L, 1)
    h = nn.relu(self.conv1(h))
    h = nn.max_pool(h, (2, 2), strides=(2, 2), padding='SAME')  # (B, 1, ceil(L / 2), 64)
    h = nn.relu(self.conv2(h))
    h = self.dropout(nn.relu(self.conv3(h)), deterministic=not train)
    h = self.dropout(nn.relu(self.conv4(h)), deterministic=not train)
    h = h.reshape(h.shape[0], -1)
    return nn.relu(self.dense(h))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    h = self.dropout(self.embed(x, train=train), deterministic=not train)
    return self.head(self.noise(h, deterministic=not train))
