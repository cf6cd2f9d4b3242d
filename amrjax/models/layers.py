"""Layers shared by the model zoo.

Each layer here exists for CPU speed: ``Dropout`` draws a quarter of the random bits of
Flax's, and the three convolutions compute a Flax convolution's function in a form XLA's CPU
backend runs faster. The measurements behind each choice are in ``benchmarks/README.md``
("Layer formulations on CPU").

``Dropout`` is inverted dropout whose keep decisions are 8-bit: one 32-bit random word
decides four units. Drawing the random bits dominated the 2D-CNN's training step on CPU
(its first dropout acts on a (B, 2, L + 2, 256) activation). The keep probability is the
rate rounded to a multiple of 1/256 (exact for 0.5, 0.25, ...), and kept units are scaled by
the inverse of that probability, so the expectation is exact.

``Conv2D`` is ``flax.linen.Conv`` (same parameter names, shapes and initialisers) with an
optional kernel gradient written as a sum of shifted matrix products. XLA's CPU backend
computes the kernel gradient of a convolution with a single input channel (the first layer
of the 2D-CNN, which sees the raw (2, L) I/Q image) several times slower than the
matrix-product form. Both gradients agree to float32 rounding (``tests/models/test_layers.py``).

``DepthwiseConv1D`` is ``flax.linen.Conv(C, (k,), feature_group_count=C)`` (same parameter
names, shapes, initialisers, strides and padding) written as k shifted, strided slices of the
padded input, each multiplied by one kernel tap, and summed. XLA's CPU backend runs the grouped
convolution's forward and backward pass several times slower than these elementwise
products. IQFormer, ClST's convolutional projections and KD-MobileNet's inverted residuals
use it.

``GroupedConv1D`` is ``flax.linen.Conv(F, (k,), feature_group_count=G)`` (same parameters) run
as one dense convolution with a block-diagonal kernel: G times the multiply-adds, but XLA's
CPU backend runs the dense convolution faster than the grouped one at AFNet's sizes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from jax import lax

from amrjax.errors import ConfigError

_NHWC = ('NHWC', 'HWIO', 'NHWC')

KERAS_INIT = nn.initializers.glorot_uniform()
"""Keras' default kernel initialiser, used by the models first published in Keras."""

RELU_INIT = nn.initializers.he_normal()
"""He-normal (variance 2 / fan_in): keeps ReLU activations at unit scale layer to layer."""


def _conv(x, kernel, padding):
  return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d_matmul_kernel_grad(x: jax.Array, kernel: jax.Array,
                              padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """Stride-1 NHWC convolution whose kernel gradient is a sum of shifted matmuls.

  Args:
    x: (B, H, W, C_in).
    kernel: (kh, kw, C_in, C_out).
    padding: ((top, bottom), (left, right)) zero padding.

  Returns:
    (B, H', W', C_out), identical to ``lax.conv_general_dilated``.
  """
  return _conv(x, kernel, padding)


def _fwd(x, kernel, padding):
  return _conv(x, kernel, padding), (x, kernel)


def _bwd(padding, residuals, g):
  x, kernel = residuals
  kh, kw = kernel.shape[:2]
  _, input_vjp = jax.vjp(lambda x_: _conv(x_, kernel, padding), x)
  (dx,) = input_vjp(g)
  xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  ho, wo = g.shape[1], g.shape[2]
  dk = jnp.stack([
      jnp.stack([
          jnp.einsum('bhwc,bhwf->cf', xp[:, i:i + ho, j:j + wo, :], g) for j in range(kw)
      ]) for i in range(kh)
  ])
  return dx, dk


conv2d_matmul_kernel_grad.defvjp(_fwd, _bwd)


class Dropout(nn.Module):
  """Inverted dropout with 8-bit keep decisions (see the module docstring).

  Attributes:
    rate: probability of dropping a unit; quantised to a multiple of 1/256.
  """

  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
    threshold = int(round(256 * (1.0 - self.rate)))
    if deterministic or threshold >= 256:
      return x
    if threshold <= 0:
      return jnp.zeros_like(x)
    words = jax.random.bits(self.make_rng('dropout'), (-(-x.size // 4),), jnp.uint32)
    draws = lax.bitcast_convert_type(words, jnp.uint8).reshape(-1)[:x.size].reshape(x.shape)
    keep = draws < jnp.uint8(threshold)
    return jnp.where(keep, x * (256.0 / threshold), jnp.zeros_like(x))


class Conv2D(nn.Module):
  """Stride-1 2-D convolution over NHWC inputs, parameter-compatible with ``nn.Conv``.

  Attributes:
    features: output channels.
    kernel_size: (kh, kw).
    padding: ((top, bottom), (left, right)); zero padding is done inside the convolution
      window, which XLA's CPU backend runs several times faster than a separate pad.
    matmul_kernel_grad: compute the kernel gradient as shifted matmuls (see module doc);
      worth it when the input has one or two channels.
  """

  features: int
  kernel_size: Sequence[int]
  padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
  matmul_kernel_grad: bool = False
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = self.kernel_size
    kernel = self.param('kernel', self.kernel_init, (kh, kw, x.shape[-1], self.features))
    padding = tuple(tuple(p) for p in self.padding)
    if self.matmul_kernel_grad:
      y = conv2d_matmul_kernel_grad(x, kernel, padding)
    else:
      y = _conv(x, kernel, padding)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,))
    return y


def _depthwise_pads(padding, length: int, kernel_size: int, stride: int) -> tuple[int, int]:
  """(low, high) zero padding of the time axis, as ``nn.Conv`` reads ``padding``."""
  if isinstance(padding, str):
    if padding.upper() not in ('SAME', 'VALID'):
      raise ConfigError(f"DepthwiseConv1D padding must be 'SAME', 'VALID', an int or a "
                        f'(low, high) pair, got {padding!r}')
    ((low, high),) = lax.padtype_to_pads((length,), (kernel_size,), (stride,), padding.upper())
    return int(low), int(high)
  if isinstance(padding, int):
    return padding, padding
  pads = tuple(padding)
  if len(pads) == 1 and not isinstance(pads[0], int):  # nn.Conv's ((low, high),)
    pads = tuple(pads[0])
  if len(pads) == 1:
    return int(pads[0]), int(pads[0])
  if len(pads) != 2:
    raise ConfigError(f'DepthwiseConv1D padding must be one (low, high) pair, got {padding!r}')
  return int(pads[0]), int(pads[1])


class DepthwiseConv1D(nn.Module):
  """Depthwise 1-D convolution over channels-last sequences, as a sum of shifted products.

  (..., N, C) -> (..., N', C), every leading axis a batch axis: output channel c is input
  channel c convolved with its own length-k kernel (cross-correlation, as ``lax``),

    y[..., t, c] = sum_j x_pad[..., t * stride + j, c] * kernel[j, 0, c] (+ bias[c]),

  where x_pad is x with ``low`` zeros before and ``high`` after along N, and
  N' = (N + low + high - k) // stride + 1 (ceil(N / stride) for 'SAME').

  The same function and parameters as ``nn.Conv(C, (k,), strides=(stride,),
  padding=padding, feature_group_count=C, use_bias=use_bias)``: 'kernel' (k, 1, C) and, only
  with ``use_bias``, 'bias' (C,), created in that order from the same initialisers, so a
  module given the name the ``nn.Conv`` had gets the same initial values from the same seed.
  See the module docstring for why (CPU speed); ``tests/models/test_layers.py`` checks the
  equivalence.

  Attributes:
    kernel_size: k (any k >= 1; 'SAME' pads as ``lax`` does, (k - 1) // 2 before when even).
    strides: the stride along N.
    padding: 'SAME', 'VALID', an int p (p both sides), (low, high) or ((low, high),).
    use_bias: add a per-channel bias (default False: the usual depthwise convolution feeds a
      BatchNorm, which cancels it).
    kernel_init, bias_init: ``nn.Conv``'s defaults (LeCun-normal, fan-in k; zeros).
  """

  kernel_size: int = 3
  strides: int = 1
  padding: str | int | Sequence = 'SAME'
  use_bias: bool = False
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, stride = self.kernel_size, self.strides
    if k < 1 or stride < 1:
      raise ConfigError(f'DepthwiseConv1D needs kernel_size and strides >= 1, got {k}, {stride}')
    if x.ndim < 2:
      raise ConfigError(f'DepthwiseConv1D expects (..., N, C) input, got shape {x.shape}')
    channels, length = x.shape[-1], x.shape[-2]
    kernel = self.param('kernel', self.kernel_init, (k, 1, channels))
    bias = self.param('bias', self.bias_init, (channels,)) if self.use_bias else None
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=None)
    low, high = _depthwise_pads(self.padding, length, k, stride)
    axis = x.ndim - 2
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (low, high, 0)
    padded = lax.pad(x, jnp.zeros((), x.dtype), config)
    out = (length + low + high - k) // stride + 1
    if out < 1:
      raise ConfigError(f'DepthwiseConv1D: a length-{length} input padded by ({low}, {high}) '
                        f'is shorter than the kernel ({k})')
    span = (out - 1) * stride + 1
    taps = [lax.slice_in_dim(padded, j, j + span, stride, axis) * kernel[j, 0]
            for j in range(k)]
    y = functools.reduce(jnp.add, taps)
    return y + bias if self.use_bias else y


class GroupedConv1D(nn.Module):
  """Grouped 1-D convolution over (B, N, C) inputs, as a dense block-diagonal convolution.

  Output channel o of group g = o // (F / G) sees only input channels g C/G .. (g + 1) C/G - 1:

    y[b, t, o] = sum_j sum_i x_pad[b, t + j d, g C/G + i] * kernel[j, i, o],

  the function and the parameter ('kernel' (k, C / G, F), no bias) of ``nn.Conv(F, (k,),
  padding=padding, kernel_dilation=(d,), feature_group_count=G, use_bias=False)``, so a
  module given the name the ``nn.Conv`` had gets the same initial values from the same seed.
  The kernel is expanded to a (k, C, F) block-diagonal one and run as a dense convolution,
  which XLA's CPU backend runs faster (module docstring); ``tests/models/test_layers.py``
  checks the equivalence.

  Attributes:
    features: F, divisible by ``groups``.
    kernel_size: k.
    dilation: d, the kernel dilation.
    groups: G; the input channels C must be divisible by it.
    padding: 'SAME', 'VALID' or ((low, high),), as ``nn.Conv`` reads it.
    kernel_init: ``nn.Conv``'s default (LeCun-normal, fan-in k C / G).
  """

  features: int
  kernel_size: int = 3
  dilation: int = 1
  groups: int = 1
  padding: str | Sequence = 'SAME'
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels, groups, k = x.shape[-1], self.groups, self.kernel_size
    if x.ndim != 3:
      raise ConfigError(f'GroupedConv1D expects (B, N, C) input, got shape {x.shape}')
    if groups < 1 or channels % groups or self.features % groups:
      raise ConfigError(f'GroupedConv1D: input channels ({channels}) and features '
                        f'({self.features}) must both be divisible by groups ({groups})')
    kernel = self.param('kernel', self.kernel_init, (k, channels // groups, self.features))
    x, kernel = promote_dtype(x, kernel, dtype=None)
    blocks = kernel.reshape(k, channels // groups, groups, self.features // groups)
    dense = jnp.einsum('kigo,gh->kgiho', blocks, jnp.eye(groups, dtype=kernel.dtype))
    padding = self.padding if isinstance(self.padding, str) else tuple(
        tuple(p) for p in self.padding)
    return lax.conv_general_dilated(x, dense.reshape(k, channels, self.features), (1,),
                                    padding, rhs_dilation=(self.dilation,),
                                    dimension_numbers=('NWC', 'WIO', 'NWC'))
