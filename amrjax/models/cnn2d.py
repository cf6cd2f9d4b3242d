"""2D-CNN (O'Shea, Corgan & Clancy 2016, "VT-CNN2"): the DUSE scorer and default model.

Layers as the public radioML examples notebook builds them, for input
(B, 2, L) seen as a one-channel 2 x L image:

  pad (0, 2) -> Conv 256 (1 x 3) ReLU -> Dropout 0.5
  -> pad (0, 2) -> Conv 80 (2 x 3) ReLU -> Dropout 0.5
  -> flatten (80 * (L + 4)) -> Dense 256 ReLU -> Dropout 0.5 -> Dense C

Parameters: 1,024 + 122,960 + (80 (L + 4) + 1) 256 + 257 C; at L = 128, C = 11 that is
2,830,427, the count of the Keras model. The penultimate embedding is the 256-d ReLU output
of the first dense layer (before its dropout). Layout is NHWC (channels last), so the
flatten order differs from the Keras channels-first model; the function is the same.

Kernels start from He-normal (variance 2 / fan_in), chosen by measurement. The inputs
are tiny (an RML2016 vector is divided by the sum of its |x|, so each sample is ~1/L), so with
Glorot-uniform or LeCun-normal the first Adam steps move the biases (step ~1e-3) faster
than the weights grow the activations, the dense ReLUs die and the model stays at chance.
In a 300-400 step probe (Adam 1e-3, batch 128) He-normal trained on 3 of 3 seeds on both
the RML2016.10a and the Sig2019 stand-ins (test accuracy 0.44-0.57); Glorot-uniform stayed
at chance on RML2016.10a and LeCun-normal on some Sig2019 seeds.

The head (Dense C) starts at zero, as big_vision's ViT head does: every first logit is 0 and
the first loss is log C. With a random head, the first Adam steps on the 80 (L + 4) x 256
dense layer sent the epoch-1 loss to 7-9 (gradient norm ~190) and on small, hard training
sets the dense ReLUs then died: on one DUSE-selected Sig2019 set (396 vectors, batch 32, 10
epochs) the model stayed at chance (8.5 % test accuracy with a He-normal head, 8.3 % with
Glorot-uniform) and reached 31.9 % with the zero head, same seed. Only the head starts at
zero; the layers below break the symmetry.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from amrjax.models.layers import RELU_INIT, Conv2D, Dropout


class CNN2D(nn.Module):
  """VT-CNN2. Input (B, 2, L) float32, output logits (B, num_classes)."""

  num_classes: int
  dropout_rate: float = 0.5

  def setup(self):
    # The first layer sees one input channel: its kernel gradient is faster as matmuls.
    self.conv1 = Conv2D(256, (1, 3), padding=((0, 0), (2, 2)), matmul_kernel_grad=True,
                        kernel_init=RELU_INIT)
    self.conv2 = Conv2D(80, (2, 3), padding=((0, 0), (2, 2)), kernel_init=RELU_INIT)
    self.dense = nn.Dense(256, kernel_init=RELU_INIT)
    # Zero head: the first logits are all 0 (see the module docstring).
    self.head = nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros)
    self.dropout = Dropout(self.dropout_rate)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Penultimate features, (B, 256)."""
    h = x[..., None]  # (B, 2, L, 1)
    h = self.dropout(nn.relu(self.conv1(h)), deterministic=not train)
    h = self.dropout(nn.relu(self.conv2(h)), deterministic=not train)
    h = h.reshape(h.shape[0], -1)
    return nn.relu(self.dense(h))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    h = self.dropout(self.embed(x, train=train), deterministic=not train)
    return self.head(h)
