"""Layers shared by the model zoo.

``Dropout`` is inverted dropout whose keep decisions are 8-bit: one 32-bit random word
decides four units. Drawing the random bits dominated the 2D-CNN's training step on CPU
(its first dropout acts on a (B, 2, L + 2, 256) activation): with it, one step at L = 512,
batch 128 went from 685 ms to 510 ms on this project's 2-core CI machine. The keep
probability is the rate rounded to a multiple of 1/256 (exact for 0.5, 0.25, ...), and
kept units are scaled by the inverse of that probability, so the expectation is exact.

``Conv2D`` is ``flax.linen.Conv`` (same parameter names, shapes and initialisers) with an
optional kernel gradient written as a sum of shifted matrix products. XLA's CPU backend
computes the kernel gradient of a convolution with a single input channel (the first layer
of the 2D-CNN, which sees the raw (2, L) I/Q image) several times slower than the
matrix-product form: measured on this project's 2-core CI machine, one 2D-CNN training step
at batch 128 took 1177 ms (L = 512) and 276 ms (L = 128) with XLA's gradient and 770 ms and
199 ms with the matrix-product gradient. Both gradients agree to float32 rounding
(``tests/models/test_layers.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

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
