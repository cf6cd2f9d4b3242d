"""SigNet (Chen et al. 2021, "SigNet: A novel deep learning framework for radio signal
classification", IEEE TCCN 8(2)): a signal-to-matrix (S2M) operator turns the 1-D I/Q signal
into a square matrix, and an image CNN classifies the matrix.

No public code was found, and the paper's body (its definition of S2M and
its CNN) was not in the sources we could search; only its abstract was: "a signal-to-matrix
(S2M) operator is adopted to convert the original signal into a square matrix first and is
co-trained with a follow-up CNN architecture". Everything below is therefore our design
around that sentence, each part a stated choice.

S2M (``s2m``), parameter-free: the 2L values of the signal are read in time order with I
and Q interleaved (I_0, Q_0, I_1, Q_1, ...) and written row by row into an n x n matrix,
n the smallest even integer with n^2 >= 2L, zero-padded at the end. n is even so that every
row holds n / 2 whole complex samples: even columns are I, odd columns Q, on every row, and
the sample below sample t is t + n / 2. A 3 x 3 window thus sees I and Q of 1.5
consecutive samples on 3 rows n / 2 samples apart: short-time and longer-lag structure at
once, which is what the rearrangement buys over a 2 x L strip. Sizes: L = 128 (RML2016) and
L = 512 (Sig2019) fill 16 x 16 and 32 x 32 exactly; L = 1024 (RML2018) needs 46 x 46 with 68
padded zeros (2L = 2048 is not a square); any L works. "Co-trained" is honoured by
gradients flowing through the rearrangement into the CNN; the abstract's wording may mean
the original S2M has weights of its own, which ours does not.

CNN (``SigNet``), a small ResNet (He et al. 2016) for the one-channel n x n matrix: ResNet-18's
basic block (3 x 3 conv, BatchNorm, ReLU, 3 x 3 conv, BatchNorm, add, ReLU; a 1 x 1 conv +
BatchNorm shortcut where the shape changes) with three stages of two blocks instead of four,
widths 32 / 64 / 128 instead of 64 ... 512, and a 3 x 3 stride-1 stem without max pool,
since the matrix is only 16 x 16 at L = 128:

  S2M -> Conv 32 (3 x 3) -> BN -> ReLU
  -> 2 blocks of 32 -> 2 blocks of 64 (first stride 2) -> 2 blocks of 128 (first stride 2)
  -> global average pool (the 128-d embedding) -> Dense C

'same' padding throughout, He-normal kernels, convolutions before BatchNorm without bias,
BatchNorm momentum 0.9 as in ``cnn1d``. Parameters: 694,752 in the body and 129 C in the head
for every L (696,171 at C = 11), plus 2,240 BatchNorm running statistics. The penultimate
embedding is the global-average-pooled 128-d feature.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from amrjax.errors import ConfigError
from amrjax.models.layers import RELU_INIT


def s2m_side(length: int) -> int:
  """n, the smallest even integer with n^2 >= 2 * length."""
  if length < 1:
    raise ConfigError(f'S2M needs a signal of at least 1 sample, got {length}')
  n = math.isqrt(2 * length - 1) + 1  # ceil(sqrt(2 L))
  return n + n % 2


def s2m(x: jax.Array) -> jax.Array:
  """The S2M operator: (B, 2, L) I/Q -> (B, n, n) square matrices, n = ``s2m_side(L)``.

  Row-major fill of I_0, Q_0, I_1, Q_1, ..., I_{L-1}, Q_{L-1}, then zeros: entry (r, c) is
  x[:, c % 2, r * n / 2 + c // 2] while that sample exists.
  """
  if x.ndim != 3 or x.shape[1] != 2:
    raise ConfigError(f'S2M expects (B, 2, L) I/Q, got shape {x.shape}')
  batch, _, length = x.shape
  n = s2m_side(length)
  flat = jnp.swapaxes(x, 1, 2).reshape(batch, 2 * length)
  flat = jnp.pad(flat, ((0, 0), (0, n * n - 2 * length)))
  return flat.reshape(batch, n, n)


class _BasicBlock(nn.Module):
  features: int
  stride: int
  momentum: float

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=self.momentum)
    strides = (self.stride, self.stride)
    h = nn.Conv(self.features, (3, 3), strides=strides, padding='SAME', use_bias=False,
                kernel_init=RELU_INIT)(x)
    h = nn.relu(norm()(h))
    h = nn.Conv(self.features, (3, 3), padding='SAME', use_bias=False,
                kernel_init=RELU_INIT)(h)
    h = norm()(h)
    if self.stride != 1 or x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1, 1), strides=strides, use_bias=False,
                  kernel_init=RELU_INIT)(x)
      x = norm()(x)
    return nn.relu(x + h)


class _Body(nn.Module):
  widths: tuple[int, ...]
  blocks_per_stage: int
  momentum: float

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    h = s2m(x)[..., None]  # (B, n, n, 1)
    h = nn.Conv(self.widths[0], (3, 3), padding='SAME', use_bias=False,
                kernel_init=RELU_INIT)(h)
    h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=self.momentum)(h))
    for stage, width in enumerate(self.widths):
      for block in range(self.blocks_per_stage):
        stride = 2 if stage > 0 and block == 0 else 1
        h = _BasicBlock(width, stride, self.momentum)(h, train)
    return jnp.mean(h, axis=(1, 2))


class SigNet(nn.Module):
  """S2M + small ResNet. Input (B, 2, L) float32, output logits (B, num_classes).

  Attributes:
    num_classes: C.
    widths: channels of the three stages (32, 64, 128); the embedding has ``widths[-1]``.
    blocks_per_stage: basic blocks per stage (2).
    batchnorm_momentum: running-statistics momentum (0.9).
  """

  num_classes: int
  widths: tuple[int, ...] = (32, 64, 128)
  blocks_per_stage: int = 2
  batchnorm_momentum: float = 0.9

  def setup(self):
    self.body = _Body(tuple(self.widths), self.blocks_per_stage, self.batchnorm_momentum)
    self.head = nn.Dense(self.num_classes, kernel_init=RELU_INIT)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features, (B, widths[-1]): the global-average-pooled last stage."""
    return self.body(x, train)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.embed(x, train=train))
