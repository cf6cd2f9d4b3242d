"""ClST: convolution-linked signal transformer (Hou, Li, Lin, Liang & Han 2024).

"ClST: A Convolutional Transformer Framework for Automatic Modulation Recognition by
Knowledge Distillation", IEEE Trans. Wireless Commun. 23(7), arXiv:2312.17446. No public code
exists; this is built from the paper's abstract and the passages of its text we could read,
whose wording follows CvT (Wu et al. 2021): a hierarchy of convolutional token embeddings,
transformer blocks whose Q/K/V come from a depthwise-separable convolutional projection (the
paper's convolution-transformer projection, CTP; stride 2 for K and V), and the paper's
parallel spatial-channel attention (PSCA). M = 4 stages as in the paper.

Layers for input (B, 2, L), channels last, with the defaults (dims d = (32, 64, 96, 128),
heads (1, 2, 3, 4), one block per stage, MLP ratio 4, PSCA reduction r = 4):

  (B, 2, L) -> transpose -> (B, L, 2)
  signal embedding: 3 x [Conv1D 32 (kernels 7, 5, 3), same -> BatchNorm -> ReLU] -> PSCA
    -> (B, L, 32)
  stage i = 1..4 (tokens T_i = ceil(L / 2^i)):
    convolutional token embedding: Conv1D d_i, kernel 3, stride 2, pad 1 -> LayerNorm
      -> (B, T_i, d_i)
    convolutional transformer block (pre-norm):
      x += Dropout(Out(MHA(CTP(LN(x)))));  x += Dropout(MLP(LN(x)))
      CTP: PSCA, then for each of Q, K, V a depthwise Conv1D (kernel 3; stride 1 for Q,
        2 for K and V) -> BatchNorm -> pointwise Dense d_i; Q (B, T_i, d_i),
        K, V (B, ceil(T_i / 2), d_i)
      MHA: softmax(Q K^T / sqrt(d_i / h_i)) V per head; Out: Dense d_i
      MLP: Dense 4 d_i -> GELU -> Dense d_i
  LayerNorm -> mean over the T_4 tokens -> embedding (B, 128) -> Dense C

PSCA on a (B, T, C) map, as we read the paper's description (it "performs three parallel
pooling operations ... to squeeze global spatial information into a channel descriptor",
then a convolutional reduction/expansion and a merge into a spatial-channel attention map):
a channel branch and a spatial branch in parallel. Channel branch: three parallel poolings
over time (mean, max and standard deviation) squeeze the map into three (B, C) channel
descriptors; a shared 1 x 1 convolution pair (C -> C / r, ReLU, C / r -> C) maps each, and
the three are summed.
Spatial branch: mean and max pooling across channels give a (B, T, 2) map; a Conv1D
(2 -> 1, kernel 7, same) maps it to (B, T, 1). The two are merged by broadcast addition and
a sigmoid into a (B, T, C) attention map that multiplies the input.

Parameters do not depend on L (mean pooling). With PSCA(C) = C^2/2 + 5C/4 + 15 (r = 4) and
block(C) = 4C (two LayerNorms) + PSCA(C) + 3 (5C + C^2 + C) (Q, K, V projections: depthwise
kernel 3C, BatchNorm 2C, pointwise C^2 + C) + C^2 + C (output) + 8C^2 + 5C (MLP):

  signal embedding 448 + 5,120 + 3,072 + 3 * 64 (BatchNorm) + PSCA(32)
  + sum_i [3 d_{i-1} d_i + d_i + 2 d_i (token embedding) + block(d_i)]   (d_0 = 32)
  + 256 (final LayerNorm) + 129 C

which is 469,966 at C = 11 and 471,643 at C = 24 (``tests/models/test_clst.py`` checks this
formula). The paper does not state ClST's parameter count in the text we have; this default
is sized to train on a CPU and is 7x (KD-MobileNet) to 16x (KD-CNN) the students of
``kd.py``.

Choices the paper leaves open (as far as the passages we could read tell):
- the three PSCA poolings (mean, max, std over time), the spatial branch (CBAM-style
  channel mean/max and a kernel-7 convolution), r = 4, merging by sum + sigmoid, and
  applying the map multiplicatively;
- PSCA sits at the end of the signal embedding and once inside each CTP (shared by Q, K
  and V), not as a separate layer after each stage;
- widths (32, 64, 96, 128), heads (1, 2, 3, 4) (head size 32), one block per stage,
  MLP ratio 4, GELU, the embedding kernels (7, 5, 3), token-embedding kernel 3 / stride 2
  at every stage (CvT uses 7 / 4 in its first stage), CTP kernel 3 with BatchNorm
  (momentum 0.9, PyTorch's 0.1) as in CvT;
- classification from a LayerNorm of the last-stage tokens, mean-pooled (as Swin does; no
  class token, no LayerNorm after pooling);
- dropout 0.1 on the attention output and the MLP output (taking the 'dropout' rng),
  none on the attention weights by default, no DropPath, no dropout before the head;
- initialisers: He-normal for the ReLU convolutions of the signal embedding, Glorot-uniform
  for every Dense and the token-embedding convolutions, LeCun-normal (Flax's default) for
  the depthwise convolutions, zero biases; no bias on a convolution that feeds a BatchNorm
  (see ``cnn1d``: on RML2016-scaled inputs Adam moves such a bias faster than the running
  mean follows). Every convolutional stack is followed by
  BatchNorm or LayerNorm, so the scale of the input (unit power or the tiny per-sample
  normalisation of RML2016) does not reach the attention logits. In a 400-step probe (Adam
  1e-3, batch 64, 6 synthetic classes at 10 dB, 2,000 unit-power training vectors of
  L = 128) ClST reached 0.59 test accuracy (KD-CNN 0.57-0.61).
- the depthwise convolutions are ``layers.DepthwiseConv1D``, sums of shifted products with
  the parameters of the grouped ``nn.Conv`` they replaced, for CPU speed: XLA's CPU backend
  runs them faster than its grouped convolution (``layers``; measurements in
  benchmarks/README.md, "Layer formulations on CPU").
- L must be at least 2^4 = 16: one input sample per last-stage token (the strided layers
  pad, so shorter inputs would run on padding).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from amrjax.errors import ConfigError
from amrjax.models.layers import KERAS_INIT, RELU_INIT, DepthwiseConv1D, Dropout

NUM_STAGES = 4
MIN_LENGTH = 2**NUM_STAGES
BATCHNORM_MOMENTUM = 0.9


class PSCA(nn.Module):
  """Parallel spatial-channel attention. (B, T, C) -> (B, T, C), C divisible by reduction.

  Attributes:
    reduction: channel reduction ratio r of the channel branch.
    spatial_kernel: kernel of the spatial branch's convolution.
  """

  reduction: int = 4
  spatial_kernel: int = 7

  @nn.compact
  def attention_map(self, x: jax.Array) -> jax.Array:
    """The (B, T, C) attention map in (0, 1)."""
    channels = x.shape[-1]
    reduce = nn.Dense(max(channels // self.reduction, 1), kernel_init=KERAS_INIT,
                      name='channel_reduce')
    expand = nn.Dense(channels, kernel_init=KERAS_INIT, name='channel_expand')
    mean = x.mean(axis=1)
    std = jnp.sqrt(jnp.square(x - mean[:, None, :]).mean(axis=1) + 1e-6)
    descriptors = jnp.stack([mean, x.max(axis=1), std], axis=1)  # three poolings, (B, 3, C)
    channel = expand(nn.relu(reduce(descriptors))).sum(axis=1)  # shared 1x1 pair, (B, C)
    pooled = jnp.stack([x.mean(axis=-1), x.max(axis=-1)], axis=-1)  # (B, T, 2)
    spatial = nn.Conv(1, (self.spatial_kernel,), padding='SAME', kernel_init=KERAS_INIT,
                      name='spatial_conv')(pooled)  # (B, T, 1)
    return nn.sigmoid(channel[:, None, :] + spatial)

  def __call__(self, x: jax.Array) -> jax.Array:
    return x * self.attention_map(x)


class ConvProjection(nn.Module):
  """Convolution-transformer projection (CTP): PSCA, then depthwise-separable Q, K, V.

  Input (B, T, C); returns q (B, T, features) and k, v (B, ceil(T / kv_stride), features).

  Attributes:
    features: width of Q, K and V.
    kv_stride: stride of the depthwise convolutions of K and V (Q has stride 1).
    kernel_size: kernel of the depthwise convolutions.
    reduction: PSCA reduction ratio.
  """

  features: int
  kv_stride: int = 2
  kernel_size: int = 3
  reduction: int = 4

  def _project(self, x, stride, train, name):
    pad = self.kernel_size // 2
    h = DepthwiseConv1D(self.kernel_size, strides=stride, padding=(pad, pad),
                        name=f'{name}_depthwise')(x)
    h = nn.BatchNorm(use_running_average=not train, momentum=BATCHNORM_MOMENTUM,
                     name=f'{name}_bn')(h)
    return nn.Dense(self.features, kernel_init=KERAS_INIT, name=f'{name}_pointwise')(h)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
    x = PSCA(self.reduction, name='psca')(x)
    return (self._project(x, 1, train, 'q'), self._project(x, self.kv_stride, train, 'k'),
            self._project(x, self.kv_stride, train, 'v'))


class ConvAttention(nn.Module):
  """Multi-head self-attention on CTP projections. (B, T, C) -> (B, T, C).

  The softmax weights (B, heads, T, ceil(T / kv_stride)) are sown into the
  'intermediates' collection as ``attention_weights``.

  Attributes:
    num_heads: heads; must divide C.
    kv_stride: K/V token stride of the projection.
    reduction: PSCA reduction ratio.
    attention_dropout: dropout on the attention weights (train mode, 'dropout' rng).
  """

  num_heads: int
  kv_stride: int = 2
  reduction: int = 4
  attention_dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    batch, tokens, channels = x.shape
    if channels % self.num_heads:
      raise ConfigError(f'ConvAttention: {self.num_heads} heads do not divide width {channels}')
    q, k, v = ConvProjection(channels, self.kv_stride, reduction=self.reduction,
                             name='projection')(x, train=train)
    head_dim = channels // self.num_heads
    split = lambda t: t.reshape(t.shape[0], t.shape[1], self.num_heads, head_dim)
    q, k, v = split(q), split(k), split(v)
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k) / jnp.sqrt(jnp.float32(head_dim))
    weights = jax.nn.softmax(logits, axis=-1)
    self.sow('intermediates', 'attention_weights', weights)
    weights = Dropout(self.attention_dropout)(weights, deterministic=not train)
    out = jnp.einsum('bhqk,bkhd->bqhd', weights, v).reshape(batch, tokens, channels)
    return nn.Dense(channels, kernel_init=KERAS_INIT, name='out')(out)


class ConvTransformerBlock(nn.Module):
  """Pre-norm transformer block with convolutional attention. (B, T, C) -> (B, T, C)."""

  num_heads: int
  mlp_ratio: int = 4
  reduction: int = 4
  dropout_rate: float = 0.1
  attention_dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    channels = x.shape[-1]
    drop = Dropout(self.dropout_rate)
    h = ConvAttention(self.num_heads, reduction=self.reduction,
                      attention_dropout=self.attention_dropout,
                      name='attention')(nn.LayerNorm(name='norm1')(x), train=train)
    x = x + drop(h, deterministic=not train)
    h = nn.Dense(self.mlp_ratio * channels, kernel_init=KERAS_INIT,
                 name='mlp_in')(nn.LayerNorm(name='norm2')(x))
    h = nn.Dense(channels, kernel_init=KERAS_INIT, name='mlp_out')(nn.gelu(h))
    return x + drop(h, deterministic=not train)


class ConvTokenEmbedding(nn.Module):
  """Overlapping strided Conv1D + LayerNorm. (B, T, C) -> (B, ceil(T / stride), features)."""

  features: int
  kernel_size: int = 3
  stride: int = 2

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    pad = self.kernel_size // 2
    h = nn.Conv(self.features, (self.kernel_size,), strides=(self.stride,),
                padding=((pad, pad),), kernel_init=KERAS_INIT)(x)
    return nn.LayerNorm()(h)


class SignalEmbedding(nn.Module):
  """Three Conv1D-BatchNorm-ReLU layers and PSCA. (B, L, 2) -> (B, L, features)."""

  features: int
  kernel_sizes: Sequence[int] = (7, 5, 3)
  reduction: int = 4

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    for k in self.kernel_sizes:
      x = nn.Conv(self.features, (k,), padding='SAME', use_bias=False,
                  kernel_init=RELU_INIT)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=BATCHNORM_MOMENTUM)(x)
      x = nn.relu(x)
    return PSCA(self.reduction)(x)


class ClST(nn.Module):
  """ClST. Input (B, 2, L) float32 with L >= 16, output logits (B, num_classes).

  Attributes:
    num_classes: C.
    embed_dim: width of the signal embedding.
    dims: token width of each of the four stages; ``embed`` returns (B, dims[-1]).
    heads: attention heads per stage.
    depths: transformer blocks per stage.
    mlp_ratio: MLP hidden width over token width.
    reduction: PSCA reduction ratio r.
    dropout_rate: dropout on the attention and MLP outputs.
    attention_dropout: dropout on the attention weights.
  """

  num_classes: int
  embed_dim: int = 32
  dims: Sequence[int] = (32, 64, 96, 128)
  heads: Sequence[int] = (1, 2, 3, 4)
  depths: Sequence[int] = (1, 1, 1, 1)
  mlp_ratio: int = 4
  reduction: int = 4
  dropout_rate: float = 0.1
  attention_dropout: float = 0.0

  def setup(self):
    if not len(self.dims) == len(self.heads) == len(self.depths) == NUM_STAGES:
      raise ConfigError(f'ClST needs {NUM_STAGES} entries in dims, heads and depths')
    self.signal_embedding = SignalEmbedding(self.embed_dim, reduction=self.reduction)
    self.token_embeddings = [ConvTokenEmbedding(d) for d in self.dims]
    self.stages = [[ConvTransformerBlock(h, self.mlp_ratio, self.reduction, self.dropout_rate,
                                         self.attention_dropout) for _ in range(n)]
                   for h, n in zip(self.heads, self.depths)]
    self.norm = nn.LayerNorm()
    self.head = nn.Dense(self.num_classes, kernel_init=KERAS_INIT)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features: mean of the LayerNorm-ed last-stage tokens, (B, dims[-1])."""
    if x.shape[-1] < MIN_LENGTH:
      raise ConfigError(f'ClST needs signals of at least {MIN_LENGTH} samples, '
                        f'got {x.shape[-1]}')
    h = self.signal_embedding(jnp.swapaxes(x, 1, 2), train=train)
    for token_embedding, blocks in zip(self.token_embeddings, self.stages):
      h = token_embedding(h)
      for block in blocks:
        h = block(h, train=train)
    return self.norm(h).mean(axis=1)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.embed(x, train=train))
