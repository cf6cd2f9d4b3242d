"""BatchNorm running statistics against the population statistics they estimate.

Flax's ``nn.BatchNorm`` keeps ``mean`` and ``var`` in the ``batch_stats`` collection and,
in train mode, updates each as ``r <- m r + (1 - m) b`` with ``b`` the batch statistic and
``m`` the layer's momentum. Eval mode normalises with ``r``. When ``r`` trails the batch
statistics of the current parameters, eval mode sees shifted activations and its accuracy
collapses. Two things make it trail on RadioML-scaled inputs (first-layer activations of
standard deviation ~1e-3): a bias in front of a BatchNorm gets a zero gradient, yet Adam
moves it by about the learning rate every step, further than a momentum-0.9 running mean
follows; and at a constant learning rate the running averages describe the parameters of
some steps ago, an offset that deep residual networks compound over their layers
(benchmarks/README.md, "BatchNorm in eval mode").

``population_batch_stats`` re-estimates every layer's statistics under fixed parameters as
the average of the batch statistics of several training batches (Wu & Johnson 2021,
"Rethinking 'Batch' in BatchNorm", Sec. 3: "precise BN"); ``running_stat_offsets`` says how
far the running statistics are from them, per layer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from amrjax.data.pool import SignalPool, iter_batches
from amrjax.errors import ConfigError

EPSILON = 1e-5
"""Flax's default BatchNorm epsilon, which every zoo model keeps."""

POPULATION_BATCHES = 20
"""Batches averaged by default (2,560 vectors at batch 128): 20 extra forward passes per
training, a small share of any training the drivers run."""


def has_batchnorm(model: nn.Module, length: int) -> bool:
  """Whether ``model`` keeps a ``batch_stats`` collection for (B, 2, length) inputs."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                             jnp.zeros((1, 2, length)), train=False))
  return 'batch_stats' in shapes


@functools.lru_cache(maxsize=None)
def _train_mode_fn(model: nn.Module) -> Callable:
  """Jitted ``(params, batch_stats, x, key) -> (logits, updated batch_stats)`` of one
  train-mode pass (batch statistics, dropout on). ``population_batch_stats`` and
  ``batch_statistics_logits`` share it, so a model that needs both compiles it once."""

  def fn(params, batch_stats, x, key):
    logits, updates = model.apply({'params': params, 'batch_stats': batch_stats}, x,
                                  train=True, rngs={'dropout': key}, mutable=['batch_stats'])
    return logits, updates['batch_stats']

  return jax.jit(fn)


def population_batch_stats(model: nn.Module, variables: dict, pool: SignalPool,
                           batch_size: int, *, batches: int = POPULATION_BATCHES,
                           seed: int = 0) -> dict:
  """Every BatchNorm's statistics averaged over ``batches`` train-mode batches of ``pool``.

  The parameters are fixed; each batch's mean and (biased) variance are recovered from one
  train-mode update started from zero statistics (``(1 - m) b``), with the momentum ``m``
  read off a second update started from ones. Batches are drawn as in training
  (``iter_batches``: shuffled with ``seed``, the last one of a pass padded with repeated
  rows), pass after pass until ``batches`` are in, so a pool smaller than a batch works.
  Dropout is on, as in training: the result is what the running statistics would converge
  to if the parameters stopped moving.

  Args:
    model: a model with BatchNorm.
    variables: ``{'params': ..., 'batch_stats': ...}``.
    pool: training vectors to draw the batches from.
    batch_size: rows per batch (the training batch size: the statistics are per batch).
    batches: how many batches to average.
    seed: shuffling and dropout seed.

  Returns:
    A ``batch_stats`` tree of the same structure as ``variables['batch_stats']``.
  """
  if 'batch_stats' not in variables or not variables['batch_stats']:
    raise ConfigError(f'{type(model).__name__} has no BatchNorm statistics to re-estimate')
  if batches < 1 or len(pool) == 0:
    raise ConfigError(f'population statistics need at least one batch of a non-empty pool '
                      f'(got {batches} batches of a pool of {len(pool)})')
  fn = _train_mode_fn(model)
  params, running = variables['params'], variables['batch_stats']
  zeros = jax.tree.map(jnp.zeros_like, running)
  rng = np.random.default_rng(seed)
  total, momentum, drawn = None, None, 0
  while drawn < batches:
    for batch in iter_batches(pool, batch_size, rng=rng):
      if drawn == batches:
        break
      x, key = jnp.asarray(batch.x), jax.random.key(drawn)
      _, from_zeros = fn(params, zeros, x, key)
      if momentum is None:
        _, from_ones = fn(params, jax.tree.map(jnp.ones_like, running), x, key)
        momentum = jax.tree.map(lambda a, b: b - a, from_zeros, from_ones)
      total = from_zeros if total is None else jax.tree.map(jnp.add, total, from_zeros)
      drawn += 1
  return jax.tree.map(lambda t, m: t / (drawn * (1.0 - m)), total, momentum)


def batch_statistics_logits(model: nn.Module, variables: dict, x: jax.Array,
                            batch_size: int) -> jax.Array:
  """Train-mode logits of ``x`` (N, 2, L): batch statistics, dropout on (key = row offset).

  ``x`` is cut into consecutive batches of ``batch_size``; a partial last batch is left out,
  so the result is (batch_size * (N // batch_size), C). Shuffle ``x`` first when it is
  sorted by class: batch statistics of one-class batches say nothing about eval mode.
  """
  if len(x) < batch_size:
    raise ConfigError(f'{len(x)} vectors hold no batch of {batch_size}')
  fn = _train_mode_fn(model)
  params, batch_stats = variables['params'], variables.get('batch_stats', {})
  return jnp.concatenate([fn(params, batch_stats, x[start:start + batch_size],
                             jax.random.key(start))[0]
                          for start in range(0, len(x) - batch_size + 1, batch_size)])


def running_stat_offsets(running: dict, population: dict, *,
                         epsilon: float = EPSILON) -> dict[str, dict[str, float]]:
  """Per BatchNorm layer, how far eval mode's statistics are from the population's.

  Returns ``{layer path: {'mean_offset', 'var_ratio', 'population_var'}}``:
  ``mean_offset`` is max over channels of |running mean - population mean| /
  sqrt(population var + epsilon) (the shift eval mode adds to a normalised activation);
  ``var_ratio`` is the running variance over the population variance (each + epsilon) at the
  channel furthest from 1; ``population_var`` the median channel variance.
  """
  flat_running = traverse_util.flatten_dict(jax.device_get(running), sep='/')
  flat_population = traverse_util.flatten_dict(jax.device_get(population), sep='/')
  out = {}
  for path in flat_running:
    if not path.endswith('/mean'):
      continue
    layer = path[:-len('/mean')]
    rm, rv = np.asarray(flat_running[path]), np.asarray(flat_running[layer + '/var'])
    pm, pv = np.asarray(flat_population[path]), np.asarray(flat_population[layer + '/var'])
    scale = np.sqrt(pv + epsilon)
    ratio = (rv + epsilon) / (pv + epsilon)
    out[layer] = {
        'mean_offset': float(np.max(np.abs(rm - pm) / scale)),
        'var_ratio': float(ratio.flat[np.argmax(np.abs(np.log(ratio)))]),
        'population_var': float(np.median(pv)),
    }
  return out
