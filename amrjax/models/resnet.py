"""ResNet (O'Shea, Roy & Clancy 2018, "Over-the-air deep learning based radio signal
classification", the residual network of its Fig. 5 / Table II).

Input (B, 2, L) seen as an L x 2 one-channel image (height = time, width = I/Q), as the
public AMR model zoos build it:

  6 x residual stack:
      Conv 32 (1 x 1) linear
      2 x residual unit: Conv 32 (3 x 2) ReLU -> Conv 32 (3 x 2) linear -> add input -> ReLU
      MaxPool (2 x 1), stride (2 x 1)
  -> flatten (32 * 2 * floor(L / 64)) -> Dense 128 SELU -> AlphaDropout 0.3
  -> Dense 128 SELU -> AlphaDropout 0.3 -> Dense C

Convolutions use 'same' padding in the Keras/TensorFlow convention (for the even width-2
kernel the extra zero column goes after Q); pools are 'valid' (Keras' default), so the six
pools need L >= 64 and a length that is not a multiple of 64 loses its last L mod 64 samples.
Parameters: 153,568 in the stacks, (64 floor(L / 64) + 1) 128 + 16,512 in the two SELU
layers and 129 C in the head; 188,011 at L = 128, C = 11 and 304,376 at L = 1024, C = 24.
The penultimate embedding is the second 128-d SELU output, before its AlphaDropout.

Initialisers (a choice; the paper does not give them): He-normal for the convolutions, whose
outputs feed ReLUs or ReLU-terminated sums (see ``cnn2d`` for why a fan-in-scaled He init is
needed on the tiny RadioML inputs), and LeCun-normal for the dense layers, the initialiser
SELU's self-normalising fixed point assumes (Klambauer et al. 2017).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from amrjax.errors import ConfigError
from amrjax.models.layers import RELU_INIT, Conv2D

NUM_STACKS = 6
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SELU_INIT = nn.initializers.lecun_normal()
# 'same' padding of a (3, 2) kernel in the TensorFlow convention: (1, 1) in time, (0, 1) in I/Q.
_SAME_3X2 = ((1, 1), (0, 1))


class AlphaDropout(nn.Module):
  """Dropout that keeps SELU activations at zero mean and unit variance (Klambauer 2017).

  A dropped unit is set to SELU's negative saturation value alpha' = -scale * alpha
  (about -1.758) instead of 0, and the result is mapped by the affine ``a x + b`` with

    a = ((1 - rate) (1 + rate alpha'^2))^(-1/2),   b = -a alpha' rate,

  so an input with zero mean and unit variance keeps them (Klambauer et al. 2017, Sec. 3,
  "Alpha-dropout", with q = 1 - rate). Identity when ``deterministic``. Draws from the
  ``'dropout'`` rng.

  Attributes:
    rate: probability of dropping a unit, in [0, 1).
  """

  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
    if not 0.0 <= self.rate < 1.0:
      raise ConfigError(f'AlphaDropout rate must be in [0, 1), got {self.rate}')
    if deterministic or self.rate == 0.0:
      return x
    alpha_p = -SELU_SCALE * SELU_ALPHA
    a = ((1.0 - self.rate) * (1.0 + self.rate * alpha_p**2))**-0.5
    b = -a * alpha_p * self.rate
    keep = jax.random.bernoulli(self.make_rng('dropout'), 1.0 - self.rate, x.shape)
    return a * jnp.where(keep, x, jnp.asarray(alpha_p, x.dtype)) + b


class _ResidualUnit(nn.Module):
  filters: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = nn.relu(Conv2D(self.filters, (3, 2), padding=_SAME_3X2, kernel_init=RELU_INIT)(x))
    h = Conv2D(self.filters, (3, 2), padding=_SAME_3X2, kernel_init=RELU_INIT)(h)
    return nn.relu(x + h)


class _ResidualStack(nn.Module):
  filters: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = Conv2D(self.filters, (1, 1), kernel_init=RELU_INIT)(x)
    h = _ResidualUnit(self.filters)(h)
    h = _ResidualUnit(self.filters)(h)
    return nn.max_pool(h, (2, 1), strides=(2, 1))


class ResNet(nn.Module):
  """O'Shea 2018 ResNet. Input (B, 2, L) float32 with L >= 64, output logits (B, C).

  Attributes:
    num_classes: C.
    filters: channels of every convolution (32 in the paper).
    dense_units: width of the two SELU layers (128).
    dropout_rate: AlphaDropout rate after each SELU layer (0.3).
  """

  num_classes: int
  filters: int = 32
  dense_units: int = 128
  dropout_rate: float = 0.3

  def setup(self):
    self.stacks = [_ResidualStack(self.filters) for _ in range(NUM_STACKS)]
    self.dense1 = nn.Dense(self.dense_units, kernel_init=SELU_INIT)
    self.dense2 = nn.Dense(self.dense_units, kernel_init=SELU_INIT)
    self.head = nn.Dense(self.num_classes, kernel_init=SELU_INIT)
    self.dropout = AlphaDropout(self.dropout_rate)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features, (B, dense_units): the second SELU layer's output."""
    if x.shape[-1] < 2**NUM_STACKS:
      raise ConfigError(f'ResNet needs signals of at least {2**NUM_STACKS} samples, '
                        f'got {x.shape[-1]}')
    h = jnp.swapaxes(x, 1, 2)[..., None]  # (B, L, 2, 1)
    for stack in self.stacks:
      h = stack(h)
    h = h.reshape(h.shape[0], -1)
    h = self.dropout(nn.selu(self.dense1(h)), deterministic=not train)
    return nn.selu(self.dense2(h))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    h = self.dropout(self.embed(x, train=train), deterministic=not train)
    return self.head(h)
