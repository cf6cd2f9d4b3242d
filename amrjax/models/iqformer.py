"""IQFormer (Shao, Li, Hong, Qi & Sun, "IQFormer: A Novel Transformer-Based Model With
Multi-Modality Fusion for Automatic Modulation Recognition", IEEE Trans. Cognitive Commun.
Netw. 11(3), 2025, first online 2024).

Built from the authors' PyTorch code (github.com/WestdoorSad/IQFormer: ``model/IQFormer.py``,
the configurations in ``main.py`` and the STFT in ``dataset/dataset.py``), read for facts;
the paper's text was not available to us. Two modalities, the raw I/Q sequence and a
short-time Fourier transform (STFT) of the I channel, are embedded by small convolutional
stems, fused by 1 x 1 convolutions, run through a two-layer bidirectional LSTM and then
through three stages of convolutional encoders, each stage ending in an encoder with efficient
additive attention (SwiftFormer's linear-cost attention). All widths are 64 and the sequence
length stays L throughout (the stages' widths are equal, so the authors' downsampling layer
between stages is never built).

Layers for input (B, 2, L), channels last, defaults (dim d = 64, depths (2, 3, 2)):

  I/Q branch:  (B, L, 2) -> BatchNorm -> Conv1D 8, kernel 5, same, 2 groups (4 filters each on
               I and on Q), no bias -> BatchNorm                               -> (B, L, 8)
  STFT branch: STFT of I (Blackman window 31, hop 1, FFT 128, zero boundary padding of 15,
               ``stft``) -> real part of the 32 lowest one-sided bins (B, L, 32) ->
               BatchNorm over all of it (one channel) -> Dense 32 -> 8 over the frequency
               axis (the authors' (32 x 1) Conv2D), no bias -> BatchNorm -> ReLU -> (B, L, 8)
  fusion:      concat (B, L, 16) -> Dense 32, no bias -> BatchNorm -> GELU -> Dense 32
               -> Dropout                                                      -> (B, L, 32)
  BiLSTM:      2 layers of 32 units per direction, outputs concatenated, Dropout between
               the layers                                                      -> (B, L, 64)
  stages:      depths (2, 3, 2) blocks of width 64; in each stage every block but the last is
               a ConvEncoder, the last an IQFormerEncoder:
    ConvEncoder(h):  x + s * Dense d(GELU(Dense h(BatchNorm(DepthwiseConv k3(x))))), h = 4 d,
                     s a per-channel scale starting at 1
    IQFormerEncoder: x = ConvEncoder(h = d)(x)            (the authors' local representation)
                     x = x + DropPath(Attention(x))
                     x = x + DropPath(FCN(x)),  FCN = BatchNorm -> Dense 4 d -> GELU ->
                         Dropout -> Dense d -> Dropout
    Attention (efficient additive, one head, token width d), on x (B, N, d):
      q = l2normalise(Dense d(x)), k = l2normalise(Dense d(x))     (over the width)
      a = l2normalise_over_tokens(q w_g / sqrt(d))                (B, N); w_g (d,) learned
      g = sum_n a_n q_n                                           (B, d), a global query
      out = Dense d(Dense d(g * k) + q)
  BatchNorm -> mean over the L steps -> embedding (B, 64) -> Dense C

Depths follow the authors' two configurations, chosen by the registry from L: (2, 3, 2)
without DropPath for L <= 128 (their RML2016.10a/b setting) and (3, 3, 3) with a DropPath
rate rising linearly to 0.2 over the blocks for longer inputs (their HisarMod2019.1 setting,
L = 1024); dropout 0.2 in both. Parameters do not depend on L otherwise. With d = 64:

  input BatchNorms 4 + 2; I/Q stem 40 + 16; STFT stem 256 + 16;
  fusion 512 + 64 + 1,056; BiLSTM 2 (4 * 32 * (32 + 32) + 128) + 2 (4 * 32 * (64 + 32) + 128)
  = 41,472; ConvEncoder 192 + 128 + 16,640 + 16,448 + 64 = 33,472;
  IQFormerEncoder 8,704 (local) + 16,704 (attention) + 33,216 (FCN) = 58,624;
  final BatchNorm 128; head 65 C

which is 354,041 at depths (2, 3, 2), C = 11 and 421,830 at (3, 3, 3), C = 24
(``tests/models/test_iqformer.py`` checks the arithmetic). The authors' PyTorch module holds
1,008 more at C = 11 (355,049, our count of their code): a bias on each of the 10 layers that
feed a BatchNorm (496) and PyTorch's second LSTM bias vector (512). We found no count
published by the authors.

Choices the code leaves open, and where we differ from it:
- STFT: computed inside the model (the authors compute it per sample in their data loader
  with ``scipy.signal.stft(I, 1.0, 'blackman', 31, 30, 128)``, keep the first 32 of its 65
  bins, and hand the complex result to ``torch.Tensor``), so every zoo model takes the same
  (B, 2, L) input and input gradients (DeepFool) pass through it. It is a fixed, exact
  strided convolution with the windowed DFT rows, not ``jnp.fft`` (cheap, jit-able,
  differentiable, and counted by ``amrjax.models.flops``); it equals scipy's output, including its
  1 / sum(window) scaling and zero boundary padding (test against ``np.fft`` and scipy).
  Only the I channel is transformed, as in the authors' code.
- Real part: ``torch.Tensor`` of a complex array keeps its real part (casting discards the
  imaginary part), which is what the authors' model then sees; we use the real part by default
  and offer the magnitude (``stft_feature='magnitude'``, the usual spectrogram) as an option.
  We inferred this from the code without running it (no PyTorch here).
- No bias on a layer that feeds a BatchNorm (the authors have one on the two stems, the first
  fusion convolution and every depthwise convolution): the bias is cancelled by the batch
  mean, and on RML2016-scaled inputs Adam moves it faster than the running mean follows
  (see ``cnn1d`` and ``tests/models/test_batchnorm_eval.py``).
- One bias vector per LSTM gate (Flax's cell); PyTorch has two, which only add.
- Initialisers as the authors' except before a BatchNorm: truncated normal (std 0.02) for the
  1 x 1 convolutions (here Dense) that feed no BatchNorm, PyTorch's default
  uniform(+-1 / sqrt(fan_in)) for the attention's linear layers and the head,
  uniform(+-1 / sqrt(32)) for the LSTM kernels (PyTorch's LSTM default), a standard normal
  w_g, ones for the per-channel scales; biases start at zero (PyTorch draws the linear and
  LSTM biases uniformly). The layers that feed a BatchNorm (the two stems, the first fusion
  layer, the depthwise convolutions) start LeCun-normal (variance 1 / fan_in) instead of the
  authors' std 0.02 (PyTorch's default for the STFT stem): the BatchNorm divides their
  scale out (up to its epsilon), but at std 0.02 Adam's steps of ~lr are a large fraction of
  each weight, so the running statistics trail the weights, and the depthwise outputs'
  variance (down to 1e-7) falls below BatchNorm's epsilon. In the zoo's check
  (``test_batchnorm_eval.py``: 60 constant-rate Adam steps on RML2016-scaled vectors) the
  worst running mean ended 0.54 and 0.72 standard deviations from the population mean in two
  runs with std 0.02 (the check allows 0.5) and 0.35 with LeCun-normal; test accuracy 0.51
  and 0.59.
- GELU is the exact (erf) form, PyTorch's default. BatchNorm momentum 0.9 (PyTorch's 0.1),
  epsilon 1e-5 as in PyTorch. The authors' IQFormerEncoder layer scales are off
  (``use_layer_scale=False`` in both configurations); the ConvEncoder and local-representation
  scales are always on in their code and are kept.
- DropPath (stochastic depth) drops the attention and FCN branches of a whole sample, as
  timm's does, and draws from the 'dropout' rng; dropout is ``layers.Dropout``.
- No positional encoding: the code has none (the LSTM and convolutions carry order).
- No minimum length: the STFT pads its boundary, so any L >= 1 runs.
- The depthwise convolutions are sums of shifted products (``layers.DepthwiseConv1D``, the
  same function and parameters as a grouped ``nn.Conv``), for CPU speed (measurements in
  benchmarks/README.md, "Layer formulations on CPU"). The rest of a training step's cost is
  the arithmetic: ~92 MFLOPs per sample forward, all 128 steps kept through seven blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from amrjax.errors import ConfigError
from amrjax.models.layers import DepthwiseConv1D, Dropout

BATCHNORM_MOMENTUM = 0.9
TRUNC_INIT = nn.initializers.truncated_normal(0.02)
"""timm's ``trunc_normal_(std=0.02)``, the authors' initialiser for every Conv1d."""
BN_FED_INIT = nn.initializers.lecun_normal()
"""Kernels of the layers whose output feeds a BatchNorm (module docstring: not the authors')."""
TORCH_INIT = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')
"""PyTorch's default Linear/Conv kernel initialiser: uniform(+-1 / sqrt(fan_in))."""

STFT_FEATURES = ('real', 'magnitude')
DEPTHS_SHORT = (2, 3, 2)
DEPTHS_LONG = (3, 3, 3)


def _torch_lstm_init(units: int):
  """PyTorch's LSTM default for every kernel: uniform(+-1 / sqrt(units))."""
  bound = 1.0 / np.sqrt(units)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def blackman_window(length: int) -> np.ndarray:
  """The periodic Blackman window scipy's ``get_window('blackman', length)`` returns."""
  return np.blackman(length + 1)[:length]


def stft_kernel(window_length: int = 31, nfft: int = 128, bins: int = 32) -> np.ndarray:
  """(window_length, 2 * bins) float64: the windowed DFT rows of the first ``bins`` bins,
  real parts (cos) then imaginary parts (-sin), divided by the window's sum (scipy's
  'spectrum' scaling)."""
  if not 0 < bins <= nfft // 2 + 1 or nfft < window_length:
    raise ConfigError(f'STFT: {bins} bins of a {nfft}-point FFT of {window_length}-sample '
                      'segments is not a valid setting')
  window = blackman_window(window_length)
  angle = 2 * np.pi * np.outer(np.arange(window_length), np.arange(bins)) / nfft
  kernel = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1) * window[:, None]
  return kernel / window.sum()


def stft(signal: jax.Array, *, window_length: int = 31, hop: int = 1, nfft: int = 128,
         bins: int = 32, part: str = 'complex') -> jax.Array:
  """STFT of real signals as ``scipy.signal.stft(s, 1.0, 'blackman', window_length,
  window_length - hop, nfft)[2][:bins]`` computes it, channels last.

  Args:
    signal: (B, L) real.
    window_length, hop, nfft: segment length, step between segments, FFT size.
    bins: the lowest one-sided frequency bins kept (bin k is k / nfft cycles per sample).
    part: 'complex' (complex64), 'real', 'imag' or 'magnitude' (float).

  Returns:
    (B, T, bins), T = (L + 2 (window_length // 2) + e - window_length) // hop + 1 frames,
    where the signal is zero-padded by window_length // 2 at both ends and by e zeros more at
    the end to fill the last hop (scipy's ``boundary='zeros', padded=True``); T = L at hop 1
    with an odd window. Frame t covers padded samples t * hop ... t * hop + window_length - 1,
    and phases are measured from the frame's first sample, as in scipy.
  """
  if signal.ndim != 2:
    raise ConfigError(f'stft expects (B, L) signals, got shape {signal.shape}')
  kernel = stft_kernel(window_length, nfft, bins)
  if part == 'real':
    kernel = kernel[:, :bins]
  elif part == 'imag':
    kernel = kernel[:, bins:]
  elif part not in ('complex', 'magnitude'):
    raise ConfigError("stft part must be 'complex', 'real', 'imag' or 'magnitude', "
                      f'got {part!r}')
  pad = window_length // 2
  extra = (-(signal.shape[1] + 2 * pad - window_length)) % hop
  x = jnp.pad(signal, ((0, 0), (pad, pad + extra)))[..., None]  # (B, L', 1)
  out = lax.conv_general_dilated(x, jnp.asarray(kernel[:, None, :], signal.dtype), (hop,),
                                 'VALID', dimension_numbers=('NWC', 'WIO', 'NWC'))
  if part in ('real', 'imag'):
    return out
  re, im = out[..., :bins], out[..., bins:]
  if part == 'complex':
    return lax.complex(re, im)
  power = re * re + im * im
  nonzero = power > 0  # a finite (zero) gradient where the spectrum is exactly zero
  return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, power, 1.0)), 0.0)


def l2_normalize(x: jax.Array, axis: int, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||_2, eps) along ``axis`` (``torch.nn.functional.normalize``)."""
  norm = jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True))
  return x / jnp.maximum(norm, eps)


def _gelu(x: jax.Array) -> jax.Array:
  return nn.gelu(x, approximate=False)


def _batchnorm(train: bool, name: str | None = None) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=BATCHNORM_MOMENTUM, name=name)


class DropPath(nn.Module):
  """Stochastic depth: zeroes a whole sample's branch with probability ``rate`` in train
  mode and scales the kept ones by 1 / (1 - rate). (B, ...) -> (B, ...)."""

  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
    if deterministic or self.rate <= 0.0:
      return x
    keep = jax.random.bernoulli(self.make_rng('dropout'), 1.0 - self.rate,
                                (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


class ConvEncoder(nn.Module):
  """x + s * Dense(GELU(Dense(BatchNorm(depthwise conv(x))))). (B, N, d) -> (B, N, d).

  With ``hidden = d`` this is the authors' local representation.

  Attributes:
    hidden: width of the inner 1 x 1 layer.
    kernel_size: depthwise kernel.
  """

  hidden: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    dim = x.shape[-1]
    h = DepthwiseConv1D(self.kernel_size, kernel_init=BN_FED_INIT, name='depthwise')(x)
    h = _batchnorm(train, 'norm')(h)
    h = _gelu(nn.Dense(self.hidden, kernel_init=TRUNC_INIT, name='pointwise_in')(h))
    h = nn.Dense(dim, kernel_init=TRUNC_INIT, name='pointwise_out')(h)
    return x + self.param('layer_scale', nn.initializers.ones, (dim,)) * h


class AdditiveAttention(nn.Module):
  """Efficient additive attention, one head with token width d. (B, N, d) -> (B, N, d).

  The per-token weights a (B, N), unit L2 norm over the tokens, are sown into
  'intermediates' as ``token_weights``.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    dim = x.shape[-1]
    q = l2_normalize(nn.Dense(dim, kernel_init=TORCH_INIT, name='query')(x), axis=-1)
    k = l2_normalize(nn.Dense(dim, kernel_init=TORCH_INIT, name='key')(x), axis=-1)
    w_g = self.param('w_g', nn.initializers.normal(1.0), (dim,))
    a = l2_normalize(q @ w_g.astype(q.dtype) * dim**-0.5, axis=1)  # (B, N)
    self.sow('intermediates', 'token_weights', a)
    g = jnp.einsum('bn,bnd->bd', a, q)  # the global query
    out = nn.Dense(dim, kernel_init=TORCH_INIT, name='proj')(g[:, None, :] * k) + q
    return nn.Dense(dim, kernel_init=TORCH_INIT, name='out')(out)


class IQFormerEncoder(nn.Module):
  """Local representation, then additive attention and an FCN, each residual.
  (B, N, d) -> (B, N, d).

  Attributes:
    mlp_ratio: FCN hidden width over d.
    dropout_rate: dropout inside the FCN.
    drop_path_rate: DropPath on the attention and FCN branches.
  """

  mlp_ratio: int = 4
  dropout_rate: float = 0.2
  drop_path_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    dim = x.shape[-1]
    drop_path = DropPath(self.drop_path_rate)
    drop = Dropout(self.dropout_rate)
    x = ConvEncoder(dim, name='local')(x, train=train)
    x = x + drop_path(AdditiveAttention(name='attention')(x), deterministic=not train)
    h = _batchnorm(train, 'fcn_norm')(x)
    h = _gelu(nn.Dense(self.mlp_ratio * dim, kernel_init=TRUNC_INIT, name='fcn_in')(h))
    h = drop(h, deterministic=not train)
    h = drop(nn.Dense(dim, kernel_init=TRUNC_INIT, name='fcn_out')(h), deterministic=not train)
    return x + drop_path(h, deterministic=not train)


class IQFormer(nn.Module):
  """IQFormer. Input (B, 2, L) float32, output logits (B, num_classes).

  Attributes:
    num_classes: C.
    dim: width of the stages and of the BiLSTM output (64); the stems have dim / 8
      channels each, the fusion dim / 2, the LSTM dim / 2 units per direction.
    depths: blocks per stage; the last block of each stage is an IQFormerEncoder.
    mlp_ratio: hidden width over dim in the ConvEncoders and FCNs.
    dropout_rate: dropout after the fusion, between the LSTM layers and in the FCNs.
    drop_path_rate: the last block's DropPath rate; block i of n (counted over all stages)
      gets rate * i / (n - 1), as in the authors' code (only IQFormerEncoders use it).
    stft_feature: 'real' (the authors' code, as we read it) or 'magnitude'.
    stft_window, stft_nfft, stft_bins: STFT segment length (hop 1), FFT size and the number
      of lowest bins kept (31, 128, 32).
  """

  num_classes: int
  dim: int = 64
  depths: Sequence[int] = DEPTHS_SHORT
  mlp_ratio: int = 4
  dropout_rate: float = 0.2
  drop_path_rate: float = 0.0
  stft_feature: str = 'real'
  stft_window: int = 31
  stft_nfft: int = 128
  stft_bins: int = 32

  def setup(self):
    if self.dim % 8:
      raise ConfigError(f'IQFormer: dim must be a multiple of 8, got {self.dim}')
    if self.stft_feature not in STFT_FEATURES:
      raise ConfigError(f'IQFormer: stft_feature must be one of {STFT_FEATURES}, '
                        f'got {self.stft_feature!r}')
    stem = self.dim // 8
    self.iq_stem = nn.Conv(stem, (5,), padding=((2, 2),), feature_group_count=2,
                           use_bias=False, kernel_init=BN_FED_INIT)
    self.stft_stem = nn.Dense(stem, use_bias=False, kernel_init=BN_FED_INIT)
    self.fusion_in = nn.Dense(self.dim // 2, use_bias=False, kernel_init=BN_FED_INIT)
    self.fusion_out = nn.Dense(self.dim // 2, kernel_init=TRUNC_INIT)
    units = self.dim // 2
    cell = lambda: nn.OptimizedLSTMCell(units, kernel_init=_torch_lstm_init(units),
                                        recurrent_kernel_init=_torch_lstm_init(units))
    self.lstms = [nn.Bidirectional(nn.RNN(cell()), nn.RNN(cell())) for _ in range(2)]
    self.dropout = Dropout(self.dropout_rate)
    total = sum(self.depths)
    blocks, index = [], 0
    for depth in self.depths:
      for b in range(depth):
        if b == depth - 1:
          rate = self.drop_path_rate * index / max(total - 1, 1)
          blocks.append(IQFormerEncoder(self.mlp_ratio, self.dropout_rate, rate))
        else:
          blocks.append(ConvEncoder(self.mlp_ratio * self.dim))
        index += 1
    self.blocks = blocks
    norm = lambda: nn.BatchNorm(momentum=BATCHNORM_MOMENTUM)
    self.input_norm, self.iq_stem_norm, self.stft_norm, self.stft_stem_norm = (
        norm(), norm(), norm(), norm())
    self.fusion_norm, self.norm = norm(), norm()
    self.head = nn.Dense(self.num_classes, kernel_init=TORCH_INIT)

  def spectrum(self, x: jax.Array) -> jax.Array:
    """The STFT input of the model: (B, 2, L) -> (B, T, stft_bins), T = L (hop 1)."""
    return stft(x[:, 0, :], window_length=self.stft_window, nfft=self.stft_nfft,
                bins=self.stft_bins, part=self.stft_feature)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features: the BatchNorm-ed last-stage tokens averaged over time, (B, dim)."""
    if x.ndim != 3 or x.shape[1] != 2 or x.shape[2] < 1:
      raise ConfigError(f'IQFormer expects (B, 2, L) I/Q input, got shape {x.shape}')
    eval_mode = not train
    iq = self.input_norm(jnp.swapaxes(x, 1, 2), use_running_average=eval_mode)  # (B, L, 2)
    iq = self.iq_stem_norm(self.iq_stem(iq), use_running_average=eval_mode)
    spec = self.stft_norm(self.spectrum(x)[..., None],  # one channel, as BatchNorm2d(1)
                          use_running_average=eval_mode)[..., 0]
    spec = nn.relu(self.stft_stem_norm(self.stft_stem(spec), use_running_average=eval_mode))
    h = self.fusion_in(jnp.concatenate([iq, spec], axis=-1))
    h = self.fusion_norm(h, use_running_average=eval_mode)
    h = self.dropout(self.fusion_out(_gelu(h)), deterministic=not train)
    h = self.lstms[0](h)
    h = self.lstms[1](self.dropout(h, deterministic=not train))
    for block in self.blocks:
      h = block(h, train=train)
    return self.norm(h, use_running_average=eval_mode).mean(axis=1)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.head(self.embed(x, train=train))


def for_length(num_classes: int, length: int) -> IQFormer:
  """The authors' configuration for length-L input: depths (2, 3, 2) without DropPath for
  L <= 128 (RML2016), (3, 3, 3) with DropPath 0.2 beyond (HisarMod2019.1, L = 1024)."""
  if length <= 128:
    return IQFormer(num_classes, depths=DEPTHS_SHORT, drop_path_rate=0.0)
  return IQFormer(num_classes, depths=DEPTHS_LONG, drop_path_rate=0.2)
