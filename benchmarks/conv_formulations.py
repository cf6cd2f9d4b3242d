"""Formulations of the 2D-CNN's main convolution, and the forward rate against batch size.

The 2D-CNN spends 84 % of its forward FLOPs at L = 1024 in its second convolution: a 2 x 3
kernel from 256 to 80 channels over the (B, 2, L + 2, 256) output of the first layer. This
times that convolution written four ways, all giving the same output:

- XLA's convolution, channels last (NHWC, what ``amrjax.models.layers.Conv2D`` uses);
- XLA's convolution, channels first (NCHW);
- six shifted matrix products, one per kernel tap, summed;
- the windows unfolded into a (B (L + 4), 1536) matrix and one matrix product;

then the whole eval-mode forward pass at several batch sizes, each as FLOP/s against the
measured float32 matrix-multiply rate.

  python -m benchmarks.conv_formulations --length=1024 --batch=128
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from jax import lax

from amrjax import models
from amrjax.models import flops
from benchmarks.scoring_throughput import best_time, matmul_rate

IN_CHANNELS, OUT_CHANNELS, KH, KW = 256, 80, 2, 3


def conv_variants(length: int):
  """{name: fn(x NHWC (B, 2, L + 2, 256), k (2, 3, 256, 80)) -> (B, 1, L + 4, 80)}."""
  width = length + 4

  def xla_nhwc(x, k):
    return lax.conv_general_dilated(x, k, (1, 1), ((0, 0), (2, 2)),
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def xla_nchw(x, k):  # transposes in and out, so the comparison includes them
    y = lax.conv_general_dilated(jnp.transpose(x, (0, 3, 1, 2)), jnp.transpose(k, (3, 2, 0, 1)),
                                 (1, 1), ((0, 0), (2, 2)))
    return jnp.transpose(y, (0, 2, 3, 1))

  def shifted(x, k):
    xp = jnp.pad(x, ((0, 0), (0, 0), (2, 2), (0, 0)))
    return sum(jnp.einsum('bwc,cf->bwf', xp[:, i, j:j + width, :], k[i, j])
               for i in range(KH) for j in range(KW))[:, None]

  def unfolded(x, k):
    xp = jnp.pad(x, ((0, 0), (0, 0), (2, 2), (0, 0)))
    cols = jnp.concatenate([xp[:, i, j:j + width, :] for i in range(KH) for j in range(KW)],
                           axis=-1)
    y = cols.reshape(-1, KH * KW * IN_CHANNELS) @ k.reshape(-1, OUT_CHANNELS)
    return y.reshape(x.shape[0], 1, width, OUT_CHANNELS)

  return {'XLA conv, NHWC': xla_nhwc, 'XLA conv, NCHW': xla_nchw,
          '6 shifted matmuls': shifted, 'unfold + 1 matmul': unfolded}


def measure(length: int, batch: int, batches: tuple[int, ...], repeats: int,
            matmul_size: int) -> list[dict]:
  peak = matmul_rate(matmul_size)
  rows = [{'kind': 'matmul', 'gflops': peak / 1e9}]
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, 2, length + 2, IN_CHANNELS), np.float32))
  k = jnp.asarray(rng.standard_normal((KH, KW, IN_CHANNELS, OUT_CHANNELS), np.float32) * 0.05)
  conv_flops = 2 * batch * (length + 4) * OUT_CHANNELS * KH * KW * IN_CHANNELS
  reference = None
  for name, fn in conv_variants(length).items():
    fn = jax.jit(fn)
    seconds = best_time(lambda: fn(x, k), repeats)
    out = fn(x, k)
    reference = out if reference is None else reference
    rows.append({'kind': 'conv2', 'variant': name, 'length': length, 'batch': batch,
                 'ms': seconds * 1e3, 'gflops': conv_flops / seconds / 1e9,
                 'fraction_of_matmul': conv_flops / seconds / peak,
                 'max_abs_diff': float(jnp.max(jnp.abs(out - reference)))})
  model = models.get('cnn2d', 24, length)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 2, length)), train=False)
  forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
  per_sample = flops.xla_flops(forward, variables, jnp.zeros((8, 2, length))) / 8
  for b in batches:
    xs = jnp.asarray(rng.standard_normal((b, 2, length), np.float32))
    seconds = best_time(lambda: forward(variables, xs), repeats)
    rows.append({'kind': 'forward', 'length': length, 'batch': b, 'samples_per_s': b / seconds,
                 'gflops': per_sample * b / seconds / 1e9,
                 'fraction_of_matmul': per_sample * b / seconds / peak})
  return rows


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  rows = measure(f.length, f.batch, tuple(int(b) for b in f.forward_batches), f.repeats,
                 f.matmul_size)
  for row in rows:
    print(json.dumps(row))
  print(f'matmul {rows[0]["gflops"]:.1f} GFLOP/s')
  for r in rows[1:]:
    if r['kind'] == 'conv2':
      print(f'conv2 {r["variant"]:20s} {r["ms"]:8.1f} ms {r["gflops"]:6.1f} GFLOP/s '
            f'({100 * r["fraction_of_matmul"]:.0f} % of matmul), max diff {r["max_abs_diff"]:.1e}')
    else:
      print(f'forward batch {r["batch"]:5d}: {r["samples_per_s"]:7.1f} samples/s '
            f'{r["gflops"]:6.1f} GFLOP/s ({100 * r["fraction_of_matmul"]:.0f} % of matmul)')


if __name__ == '__main__':
  flags.DEFINE_integer('length', 1024, 'Signal length L.')
  flags.DEFINE_integer('batch', 128, 'Batch of the convolution timings.')
  flags.DEFINE_list('forward_batches', ['32', '128', '256', '512', '1024'],
                    'Batch sizes of the forward-pass timings.')
  flags.DEFINE_integer('repeats', 3, 'Timed calls (fastest kept).')
  flags.DEFINE_integer('matmul_size', 2048, 'Side of the reference matmul.')
  app.run(main)
