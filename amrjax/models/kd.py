"""KD-CNN and KD-MobileNet: the lightweight students of ClST's signal knowledge distillation.

Hou et al. 2024 (arXiv:2312.17446) distil ClST (``clst.py``) into two small networks,
KD-CNN and KD-MobileNet, with their SKD loss. The paper's abstract and the passages of its
text we could read name the students but give no layer specification, so both are our own
compact designs in the spirit of the names; the distillation loss itself belongs to the
training code, not here.
Both read (B, 2, L) as a sequence of L two-channel (I, Q) samples, end in global average
pooling (so the parameter count does not depend on L) and have a Dropout 0.2 between the
embedding and the head (train mode only, 'dropout' rng). Convolutions feeding a BatchNorm
have no bias; BatchNorm momentum 0.9 (PyTorch's 0.1).

KD-CNN, for input (B, 2, L), defaults filters (32, 32, 64, 64), kernels (7, 5, 3, 3):

  (B, L, 2) -> Conv1D 32 k7 -> BN -> ReLU -> MaxPool 2      (B, L/2, 32)
  -> Conv1D 32 k5 -> BN -> ReLU -> MaxPool 2                (B, L/4, 32)
  -> Conv1D 64 k3 -> BN -> ReLU -> MaxPool 2                (B, L/8, 64)
  -> Conv1D 64 k3 -> BN -> ReLU -> global average pool      (B, 64)
  -> Dense 64 ReLU (embedding, (B, 64)) -> Dropout 0.2 -> Dense C

  parameters: 448 + 5,120 + 6,144 + 12,288 (kernels) + 384 (BN) + 4,160 + 65 C,
  i.e. 29,259 at C = 11 and 30,104 at C = 24. Needs L >= 8.

KD-MobileNet: MobileNetV2 (Sandler et al. 2018) inverted-residual blocks along time, with a
width multiplier ``width`` (alpha) applied to every channel count, rounded to a multiple of
8 as MobileNetV2 does; the last 1 x 1 convolution (128) is scaled only when alpha > 1.

  (B, L, 2) -> Conv1D 16a k3 -> BN -> ReLU6                              (B, L, 16a)
  -> inverted residual blocks (t expansion, c channels, n repeats, s first stride):
       (1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 48, 1, 2), (4, 64, 1, 2)
     each: [1x1 Conv t*c_in -> BN -> ReLU6 (skipped when t = 1)]
           -> depthwise Conv1D k3 stride s -> BN -> ReLU6
           -> 1x1 Conv c -> BN (linear), + input when s = 1 and c_in = c
                                                                         (B, ceil(L/16), 64a)
  -> 1x1 Conv 128 -> BN -> ReLU6 -> global average pool (embedding, (B, 128))
  -> Dropout 0.2 -> Dense C

  parameters at alpha = 1: 66,800 + 129 C, i.e. 68,219 at C = 11 and 69,896 at C = 24
  (``tests/models/test_kd.py`` computes it block by block). Needs L >= 16.

ClST (``clst.py``) has 469,966 parameters at C = 11: KD-CNN is 16x and KD-MobileNet 6.9x
smaller (alpha = 0.5: 23,731 at C = 11).

Choices (none is fixed by the source we have): all layer counts, widths and kernels above;
1-D convolutions along time (I and Q as two input channels); expansion t = 4 instead of
MobileNetV2's 6 and a last width of 128 instead of 1280 to keep the student small; global
average pooling; dropout 0.2 before the head (torchvision's MobileNetV2 classifier uses the
same). Initialisers: He-normal for the convolutions (every one is followed by BatchNorm,
so the input scale does not matter) and Glorot-uniform for the Dense layers, zero biases.
The depthwise convolutions are ``layers.DepthwiseConv1D`` (sums of shifted products, the
parameters of the grouped ``nn.Conv`` they replaced), for CPU speed: XLA's CPU backend
runs them faster than its grouped convolution (``layers``; measurements in
benchmarks/README.md, "Layer formulations on CPU").
Both train from scratch with Adam 1e-3 on unit-power inputs: in a 400-step probe (6
synthetic classes at 10 dB, 2,000 training vectors of L = 128, batch 64) KD-CNN reached
0.57-0.61 test accuracy and KD-MobileNet 0.39 (0.99 on its training vectors: without a
teacher it overfits), ClST 0.59.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from amrjax.errors import ConfigError
from amrjax.models.layers import KERAS_INIT, RELU_INIT, DepthwiseConv1D, Dropout

BATCHNORM_MOMENTUM = 0.9

MOBILENET_BLOCKS = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 48, 1, 2), (4, 64, 1, 2))
"""KD-MobileNet's inverted-residual settings (t expansion, c channels, n repeats, s stride)."""


def make_divisible(value: float, divisor: int = 8) -> int:
  """MobileNet's channel rounding: nearest multiple of divisor, never below 90% of value."""
  rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
  return rounded + divisor if rounded < 0.9 * value else rounded


def _check_length(name: str, x: jax.Array, minimum: int) -> None:
  if x.shape[-1] < minimum:
    raise ConfigError(f'{name} needs signals of at least {minimum} samples, got {x.shape[-1]}')


def _conv_bn(x, features, kernel, train, *, stride=1, depthwise=False, name=None):
  """Conv1D (no bias) -> BatchNorm; ``depthwise``: one kernel per channel (features must be
  the input width), as ``layers.DepthwiseConv1D``. ``name`` names the convolution."""
  pad = kernel // 2
  if depthwise:
    conv = DepthwiseConv1D(kernel, strides=stride, padding=(pad, pad), kernel_init=RELU_INIT,
                           name=name)
  else:
    conv = nn.Conv(features, (kernel,), strides=(stride,), padding=((pad, pad),),
                   use_bias=False, kernel_init=RELU_INIT, name=name)
  x = conv(x)
  return nn.BatchNorm(use_running_average=not train, momentum=BATCHNORM_MOMENTUM)(x)


class _CNNFeatures(nn.Module):
  filters: Sequence[int]
  kernels: Sequence[int]
  hidden: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    h = jnp.swapaxes(x, 1, 2)  # (B, L, 2)
    for i, (f, k) in enumerate(zip(self.filters, self.kernels)):
      h = nn.relu(_conv_bn(h, f, k, train))
      if i < len(self.filters) - 1:
        h = nn.max_pool(h, (2,), strides=(2,))
    return nn.relu(nn.Dense(self.hidden, kernel_init=KERAS_INIT)(h.mean(axis=1)))


class KDCNN(nn.Module):
  """KD-CNN student. Input (B, 2, L) float32 with L >= 8, output logits (B, num_classes).

  Attributes:
    num_classes: C.
    filters: channels of the convolutions (a 2x max-pool follows all but the last).
    kernels: their kernel sizes.
    hidden: width of the dense embedding layer; ``embed`` returns (B, hidden).
    dropout_rate: dropout between the embedding and the head.
  """

  num_classes: int
  filters: Sequence[int] = (32, 32, 64, 64)
  kernels: Sequence[int] = (7, 5, 3, 3)
  hidden: int = 64
  dropout_rate: float = 0.2

  def setup(self):
    if len(self.filters) != len(self.kernels):
      raise ConfigError('KDCNN needs as many kernels as filters')
    self.features = _CNNFeatures(tuple(self.filters), tuple(self.kernels), self.hidden)
    self.dropout = Dropout(self.dropout_rate)
    self.head = nn.Dense(self.num_classes, kernel_init=KERAS_INIT)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features, (B, hidden)."""
    _check_length('KDCNN', x, 2**(len(self.filters) - 1))
    return self.features(x, train)

  def classify(self, features: jax.Array, *, train: bool = False) -> jax.Array:
    """Logits (B, C) from ``embed``'s features: dropout (train mode) and the head."""
    return self.head(self.dropout(features, deterministic=not train))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.classify(self.embed(x, train=train), train=train)


class InvertedResidual(nn.Module):
  """MobileNetV2 block along time. (B, T, C_in) -> (B, ceil(T / stride), features).

  Attributes:
    features: output channels.
    expansion: hidden width over C_in (t); no expansion convolution when 1.
    stride: stride of the depthwise convolution.
    kernel_size: kernel of the depthwise convolution.
  """

  features: int
  expansion: int
  stride: int = 1
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    channels = x.shape[-1]
    hidden = channels * self.expansion
    # The convolutions keep the names Flax gave them when all three were nn.Conv (Conv_0,
    # Conv_1, Conv_2; Conv_0, Conv_1 without expansion), so parameter trees and the initial
    # values drawn from a seed are unchanged.
    names = (f'Conv_{i}' for i in range(3))
    h = x
    if self.expansion != 1:
      h = nn.relu6(_conv_bn(h, hidden, 1, train, name=next(names)))
    h = nn.relu6(_conv_bn(h, hidden, self.kernel_size, train, stride=self.stride,
                          depthwise=True, name=next(names)))
    h = _conv_bn(h, self.features, 1, train, name=next(names))
    if self.stride == 1 and channels == self.features:
      h = h + x
    return h


class _MobileNetFeatures(nn.Module):
  width: float
  blocks: Sequence[tuple[int, int, int, int]]
  stem: int
  last: int
  kernel_size: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    h = jnp.swapaxes(x, 1, 2)  # (B, L, 2)
    h = nn.relu6(_conv_bn(h, make_divisible(self.stem * self.width), 3, train))
    for t, c, n, s in self.blocks:
      for i in range(n):
        h = InvertedResidual(make_divisible(c * self.width), t, s if i == 0 else 1,
                             self.kernel_size)(h, train=train)
    last = make_divisible(self.last * self.width) if self.width > 1.0 else self.last
    h = nn.relu6(_conv_bn(h, last, 1, train))
    return h.mean(axis=1)


class KDMobileNet(nn.Module):
  """KD-MobileNet student. Input (B, 2, L) float32 with L >= 16, output logits (B, C).

  Attributes:
    num_classes: C.
    width: MobileNet width multiplier alpha.
    blocks: inverted-residual settings (t, c, n, s).
    stem: channels of the first convolution (before alpha).
    last: channels of the last 1 x 1 convolution; ``embed`` returns (B, last) (scaled by
      alpha when alpha > 1).
    kernel_size: depthwise kernel.
    dropout_rate: dropout between the embedding and the head.
  """

  num_classes: int
  width: float = 1.0
  blocks: Sequence[tuple[int, int, int, int]] = MOBILENET_BLOCKS
  stem: int = 16
  last: int = 128
  kernel_size: int = 3
  dropout_rate: float = 0.2

  def setup(self):
    if self.width <= 0:
      raise ConfigError(f'KDMobileNet width multiplier must be positive, got {self.width}')
    self.features = _MobileNetFeatures(self.width, tuple(tuple(b) for b in self.blocks),
                                       self.stem, self.last, self.kernel_size)
    self.dropout = Dropout(self.dropout_rate)
    self.head = nn.Dense(self.num_classes, kernel_init=KERAS_INIT)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features, (B, last)."""
    strides = 1
    for _, _, _, s in self.blocks:
      strides *= s
    _check_length('KDMobileNet', x, max(strides, 1))
    return self.features(x, train)

  def classify(self, features: jax.Array, *, train: bool = False) -> jax.Array:
    """Logits (B, C) from ``embed``'s features: dropout (train mode) and the head."""
    return self.head(self.dropout(features, deterministic=not train))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.classify(self.embed(x, train=train), train=train)
