"""1D-CNN (O'Shea, Roy & Clancy 2018, the "VGG10" of "Over-the-air deep learning ...").

Input (B, 2, L) read as a sequence of L two-channel samples:

  7 x [Conv1D 64, kernel 3, same padding -> BatchNorm -> ReLU -> MaxPool 2]
  -> flatten (64 * L / 128) -> Dense 128 SELU -> Dense 128 SELU -> Dense C

as the public AMR model zoos build it (SELU in the dense layers as in the paper). The seven
pools need L >= 128; the flatten size follows L (64 at L = 128, 512 at L = 1024). Penultimate
embedding: the second 128-d SELU layer. Kernels start from Glorot-uniform, the Keras
default of the original model (see ``cnn2d`` for why the initialiser matters).

The convolutions have no bias: BatchNorm subtracts the batch mean right after them, so a
bias there only shifts what the running mean must track. On RML2016-scaled inputs (each
vector divided by the sum of |x|; first-layer activations of standard deviation ~1e-3) Adam
moved that gradient-free bias by ~lr = 1e-3 a step, a standard deviation per step, which the
running mean (momentum 0.9) trailed: trained 300 constant-rate steps on the RML2016.10a
stand-in, the model scored 27 % in eval mode and 70 % with re-estimated population
statistics; without the biases the two agree (``benchmarks/batchnorm_eval_gap.py``,
``tests/models/test_batchnorm_eval.py``).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from amrjax.errors import ConfigError
from amrjax.models.layers import KERAS_INIT

NUM_BLOCKS = 7


class _VGGFeatures(nn.Module):
  filters: int
  batchnorm_momentum: float

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if x.shape[-1] < 2**NUM_BLOCKS:
      raise ConfigError(f'CNN1D needs signals of at least {2**NUM_BLOCKS} samples, '
                        f'got {x.shape[-1]}')
    h = jnp.swapaxes(x, 1, 2)  # (B, L, 2)
    for _ in range(NUM_BLOCKS):
      h = nn.Conv(self.filters, (3,), padding='SAME', use_bias=False,
                  kernel_init=KERAS_INIT)(h)
      h = nn.BatchNorm(use_running_average=not train, momentum=self.batchnorm_momentum)(h)
      h = nn.max_pool(nn.relu(h), (2,), strides=(2,))
    h = h.reshape(h.shape[0], -1)
    h = nn.selu(nn.Dense(128, kernel_init=KERAS_INIT)(h))
    return nn.selu(nn.Dense(128, kernel_init=KERAS_INIT)(h))


class CNN1D(nn.Module):
  """VGG10-style 1D-CNN. Input (B, 2, L) float32 with L >= 128, output logits (B, C)."""

  num_classes: int
  filters: int = 64
  batchnorm_momentum: float = 0.9

  def setup(self):
    self.features = _VGGFeatures(self.filters, self.batchnorm_momentum)
    self.head = nn.Dense(self.num_classes, kernel_init=KERAS_INIT)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features, (B, 128)."""
    return self.features(x, train)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.embed(x, train=train))
