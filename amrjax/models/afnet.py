"""AFNet, the adaptive fusion network of Shi, Peng & Zhuang (2022), arXiv:2203.03140.

"An Improved Automatic Modulation Classification Scheme Based on Adaptive Fusion Network",
Sec. III-A, Figs. 1-2, Eqs. (4)-(6). No public code was found; the extracted paper text lost
the kernel sizes, Eq. (4) and Eq. (6), so those are reconstructed below and marked as choices.

Layers for input (B, 2, L) (C = ``filters`` = 48, the paper's stem width):

  (B, 2, L, 1) -> stem: Conv 48 (2 x 3), valid in height, same in time, no bias -> BatchNorm
    -> ReLU -> (B, 1, L, 48) = (B, L, 48)
  -> AF units 1-3 -> MaxPool 2 -> (B, L/2, 48)
  -> AF units 4-6 -> MaxPool 2 -> (B, L/4, 48)
  -> AF units 7-9 -> global average pooling -> (B, 48)   [the embedding]
  -> Dense C (``head``)

An AF unit keeps its input shape (B, T, C) (Fig. 2; "the number of filters is consistent with
the channels of the input"):

  small = ReLU(BN(GroupConv C, kernel 3, groups G)(x))                 small-scale branch
  large = ReLU(BN(GroupConv C, kernel 3, dilation 2, groups G)(x))     large-scale branch (span 5)
  y = Fusion_{lambda=1}(small, large)      the branch fusion module
  out = Fusion_{lambda=2}(x, y)            the second fusion module: the "modified skip connection"

A fusion module (Fig. 2 right, Eqs. 4-5) over feature maps U_1, U_2 of shape (B, T, C):

  s = GAP_T(U_1 + U_2)                     (B, C)
  h = ReLU(W_1 s),  W_1: C -> C / r        (B, C / r), r = 16
  z = W_2 h,        W_2: C / r -> 2 C      (B, 2, C): the two C-dim vectors of the paper
  w = lambda_softmax(z, lambda)            per channel c, over the branch axis (Eq. 4)
  out = w_1 * U_1 + w_2 * U_2              (Eq. 5)

Parameters (no conv or FC biases; BatchNorm has a scale and a bias per channel; k = 3):

  stem 2 k C + 2 C;  per AF unit 2 (k (C / G) C + 2 C) + 2 (3 C^2 / r);  head (C + 1) C_out.

With C = 48, G = 4, r = 16: 384 + 9 x 4,512 + 49 C_out, independent of L: 41,531 at
(L = 128, C_out = 11) and 42,168 at (L = 1024, C_out = 24). The paper states no total count.

Eq. (6), the paper's count for one fusion module, is lost in extraction; reconstructed as
N = C (C / r) + (C / r) 2 C = 3 C^2 / r (432 at C = 48): one C -> C/r FC and the FC(s) giving
the two C-dim vectors, without biases, which makes "only the FC layers involve trainable
parameters ... only related to the number of channels" exact. ``fusion_parameter_count``.

The lambda-softmax (Eq. 4, lost in extraction). The text says lambda = 1 makes it "the vanilla
Softmax", and that lambda = 2 in the second module "can be regarded as an optimized skip
connection in ResNet" whose purpose is "to prevent vanishing gradient problems" (citing He et
al., "Identity mappings in deep residual networks"). Two readings fit the first sentence:

  'scale' (default):  w_{m,c} = lambda exp(z_{m,c}) / sum_j exp(z_{j,c}), summing to lambda;
  'temperature':      w_{m,c} = exp(lambda z_{m,c}) / sum_j exp(lambda z_{j,c}), summing to 1.

We default to 'scale' because only it explains the other two sentences: with lambda = 2 and
equal logits the second module is exactly ResNet's x + F(x), and the identity path keeps a
gain of ~1 through the nine units, whereas a convex combination halves it in every unit at
initialisation (gain 2^-9 over the stack), which is the vanishing-signal case He et al.
analyse. The temperature form only sharpens a softmax whose logits the FC could scale itself.
Both forms are offered (``lambda_form``) and tested. Both train from scratch: in a 400-step
probe (Adam 1e-3, batch 64, one seed) on the RML2016.10a stand-in at SNR >= 6 dB (4,928
training vectors of mean power 7e-5) test accuracy reached 0.67 ('scale') and 0.69
('temperature'); the probe does not separate them.

Every choice the paper leaves open (all fields of :class:`AFNet`):
- Kernel sizes: stem (2 x 3), collapsing I and Q ("the correlation between I and Q") to a
  one-row map, so the AF units are 1-D over time; small-scale branch kernel 3; large-scale
  branch kernel 3 with dilation 2 (span 5), the SKNet way of using dilation to cut the
  parameters of a 5-tap kernel. "Same" padding in time everywhere.
- Group convolution with G = 4 groups (12 channels a group) in both branches, run as
  ``layers.GroupedConv1D`` (a block-diagonal dense convolution with ``nn.Conv``'s parameters,
  which XLA's CPU backend runs faster than the grouped one; measurements in
  benchmarks/README.md, "Layer formulations on CPU").
- Each branch and the stem are conv -> BatchNorm -> ReLU, without conv bias (the SKNet
  convention; the paper names no normalisation). BatchNorm momentum 0.9 as in ``cnn1d``.
- Fusion FCs without bias and without BatchNorm (the paper: only the FCs have trainable
  parameters); ReLU after the first FC; hidden width max(1, C // r) = 3.
- The second fusion module fuses the unit's input with the branch fusion's output (our
  reading of "modified skip connections"); no activation after it.
- The two max pools (window 2, stride 2) sit after units 3 and 6; L must be >= 4.
- No dropout (the paper mentions none).
- Initialisers: He-normal for the convolutions (they feed ReLUs, see ``cnn2d``; the BatchNorm
  after the stem also rescales RML2016's ~1/L-scale inputs, so the cnn2d dead-ReLU trap does
  not arise); Glorot-uniform (Keras' default) for the first fusion FC and the head; zeros
  for the second fusion FC, so every fusion starts from equal logits: the branch fusion
  averages its branches and the skip fusion starts as ResNet's x + F(x) (as their mean in
  the temperature form). With Glorot-uniform there the logits start large and the 'scale'
  skip fusion can double the stream in each unit at random (up to 2^9 over the stack).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from amrjax.errors import ConfigError
from amrjax.models.layers import KERAS_INIT, RELU_INIT, Conv2D, GroupedConv1D

LAMBDA_FORMS = ('scale', 'temperature')


def lambda_softmax(z: jax.Array, lam: float, *, axis: int = -2,
                   form: str = 'scale') -> jax.Array:
  """Channel-wise lambda-softmax over the branch axis (Eq. 4, as reconstructed).

  Args:
    z: logits, e.g. (B, M, C) for M branches and C channels.
    lam: the factor lambda; 1 gives the vanilla softmax in both forms.
    axis: the branch axis the weights are normalised over.
    form: 'scale' gives lam * softmax(z) (weights sum to lam over the branches);
      'temperature' gives softmax(lam * z) (weights sum to 1; lam -> 0 gives equal weights,
      lam -> inf a hard max). See the module docstring for why 'scale' is the default.

  Returns:
    Weights with the shape of ``z``.
  """
  if form == 'scale':
    return lam * jax.nn.softmax(z, axis=axis)
  if form == 'temperature':
    return jax.nn.softmax(lam * z, axis=axis)
  raise ConfigError(f'unknown lambda_form {form!r}; expected one of {LAMBDA_FORMS}')


def fusion_parameter_count(channels: int, reduction: int = 16) -> int:
  """Trainable parameters of one two-map fusion module: 3 C^2 / r when r divides C (Eq. 6)."""
  hidden = max(1, channels // reduction)
  return channels * hidden + hidden * 2 * channels


class FusionModule(nn.Module):
  """Attention fusion of feature maps (Fig. 2 right, Eqs. 4-5).

  Input: a sequence of M feature maps, each (B, T, C). Output: (B, T, C), their channel-wise
  weighted sum with weights from ``lambda_softmax``.

  Attributes:
    lam: the lambda of the lambda-softmax.
    reduction: compression factor r of the first FC.
    lambda_form: 'scale' or 'temperature' (see ``lambda_softmax``).
  """

  lam: float = 1.0
  reduction: int = 16
  lambda_form: str = 'scale'

  @nn.compact
  def __call__(self, maps: Sequence[jax.Array]) -> jax.Array:
    batch, channels = maps[0].shape[0], maps[0].shape[-1]
    s = jnp.mean(sum(maps), axis=1)  # (B, C)
    h = nn.relu(nn.Dense(max(1, channels // self.reduction), use_bias=False,
                         kernel_init=KERAS_INIT, name='squeeze')(s))
    # Zero-initialised, so every module starts from equal logits (see the module docstring).
    z = nn.Dense(len(maps) * channels, use_bias=False, kernel_init=nn.initializers.zeros,
                 name='excite')(h).reshape(batch, len(maps), channels)
    w = lambda_softmax(z, self.lam, axis=1, form=self.lambda_form)  # (B, M, C)
    return sum(u * w[:, None, m] for m, u in enumerate(maps))


class AFUnit(nn.Module):
  """One AF unit (Fig. 2): dual-branch grouped convolution, branch fusion, skip fusion.

  Input and output (B, T, C) with C divisible by ``groups``.

  Attributes:
    kernel_size: taps of both branch kernels.
    dilation: dilation of the large-scale branch (span (kernel_size - 1) dilation + 1).
    groups: feature groups of both branch convolutions.
    reduction: compression factor r of the fusion FCs.
    lambdas: lambda of the branch fusion and of the skip fusion.
    lambda_form: 'scale' or 'temperature'.
    batchnorm_momentum: momentum of the branch BatchNorms.
  """

  kernel_size: int = 3
  dilation: int = 2
  groups: int = 4
  reduction: int = 16
  lambdas: tuple[float, float] = (1.0, 2.0)
  lambda_form: str = 'scale'
  batchnorm_momentum: float = 0.9

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    channels = x.shape[-1]
    if channels % self.groups:
      raise ConfigError(f'AF unit channels ({channels}) must be divisible by groups '
                        f'({self.groups})')

    def branch(dilation, name):
      h = GroupedConv1D(channels, self.kernel_size, dilation, self.groups,
                        kernel_init=RELU_INIT, name=f'{name}_conv')(x)
      h = nn.BatchNorm(use_running_average=not train, momentum=self.batchnorm_momentum,
                       name=f'{name}_bn')(h)
      return nn.relu(h)

    small, large = branch(1, 'small'), branch(self.dilation, 'large')
    fused = FusionModule(self.lambdas[0], self.reduction, self.lambda_form,
                         name='branch_fusion')([small, large])
    return FusionModule(self.lambdas[1], self.reduction, self.lambda_form,
                        name='skip_fusion')([x, fused])


class AFNet(nn.Module):
  """AFNet. Input (B, 2, L) float32 with L >= 2^len(pool_after), output logits (B, C).

  ``embed`` gives the (B, filters) global-average-pooled features.
  """

  num_classes: int
  filters: int = 48
  stem_kernel: int = 3
  num_units: int = 9
  pool_after: tuple[int, ...] = (3, 6)
  kernel_size: int = 3
  dilation: int = 2
  groups: int = 4
  reduction: int = 16
  lambdas: tuple[float, float] = (1.0, 2.0)
  lambda_form: str = 'scale'
  batchnorm_momentum: float = 0.9

  def setup(self):
    if self.lambda_form not in LAMBDA_FORMS:
      raise ConfigError(f'unknown lambda_form {self.lambda_form!r}; '
                        f'expected one of {LAMBDA_FORMS}')
    k = self.stem_kernel
    # One input channel: the shifted-matmul kernel gradient is faster on CPU (layers.py).
    self.stem_conv = Conv2D(self.filters, (2, k), padding=((0, 0), ((k - 1) // 2, k // 2)),
                            matmul_kernel_grad=True, use_bias=False, kernel_init=RELU_INIT)
    self.stem_bn = nn.BatchNorm(momentum=self.batchnorm_momentum)
    self.units = [
        AFUnit(self.kernel_size, self.dilation, self.groups, self.reduction,
               tuple(self.lambdas), self.lambda_form, self.batchnorm_momentum)
        for _ in range(self.num_units)
    ]
    self.head = nn.Dense(self.num_classes, kernel_init=KERAS_INIT)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features: the global average pool of the last AF unit, (B, filters)."""
    min_length = 2**len(self.pool_after)
    if x.ndim != 3 or x.shape[1] != 2:
      raise ConfigError(f'AFNet expects I/Q input of shape (B, 2, L), got {x.shape}')
    if x.shape[-1] < min_length:
      raise ConfigError(f'AFNet needs signals of at least {min_length} samples, '
                        f'got {x.shape[-1]}')
    h = self.stem_conv(x[..., None])[:, 0]  # (B, L, F)
    h = nn.relu(self.stem_bn(h, use_running_average=not train))
    for i, unit in enumerate(self.units):
      h = unit(h, train=train)
      if i + 1 in self.pool_after:  # pool_after counts units: 3 = after the third
        h = nn.max_pool(h, (2,), strides=(2,))
    return jnp.mean(h, axis=1)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.embed(x, train=train))
