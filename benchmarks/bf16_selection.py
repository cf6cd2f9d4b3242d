"""How far a bfloat16 forward pass moves DUSE's selection, and what it gains in speed.

Trains the 2D-CNN (float32) on part of a dataset's stand-in, then scores the rest (the
auxiliary pool) with softmax margins computed from a float32 and from a bfloat16 forward
pass (``scoring.softmax_scorer(..., compute_dtype)``; softmax and margin stay float32),
and compares the k smallest-margin sets at several selection rates: the overlap
|S_fp32 & S_bf16| / k, the Spearman rank correlation of all margins, the largest margin
difference, and the scoring rate of each dtype.

  python -m benchmarks.bf16_selection                  # RML2016.10a stand-in, CPU
  python -m benchmarks.bf16_selection --dataset=rml2018.01a --per_cell=40
"""

from __future__ import annotations

import json
import time

import jax
import numpy as np
from absl import app, flags, logging

from amrjax import models, scoring
from amrjax.scoring import pools
from amrjax.data import sources, splits
from amrjax.errors import ConfigError
from amrjax.selection import select
from amrjax.train import TrainConfig, fit


def ranks(values: np.ndarray) -> np.ndarray:
  """0-based ranks of ``values`` (ties by position), float64 (n,)."""
  out = np.empty(len(values))
  out[np.argsort(values, kind='stable')] = np.arange(len(values))
  return out


def compare_selections(fp32: np.ndarray, bf16: np.ndarray, rates) -> dict:
  """Overlap of the smallest-score sets at each rate, rank correlation, largest difference."""
  if fp32.shape != bf16.shape:
    raise ConfigError(f'score arrays differ in shape: {fp32.shape} vs {bf16.shape}')
  overlaps = {}
  for rate in rates:
    k = max(1, int(round(rate * len(fp32))))
    a = set(select.top_k(fp32, k, largest=False).tolist())
    b = set(select.top_k(bf16, k, largest=False).tolist())
    overlaps[f'{rate:g}'] = {'k': k, 'overlap': len(a & b) / k}
  spearman = float(np.corrcoef(ranks(fp32), ranks(bf16))[0, 1])
  return {'overlap': overlaps, 'spearman': spearman,
          'max_abs_margin_diff': float(np.max(np.abs(fp32 - bf16)))}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  dataset = sources.load(f.dataset, cache_dir=f.cache_dir, synthetic_per_cell=f.per_cell)
  split = splits.make_splits(dataset.pool, train_fraction=dataset.spec.train_fraction,
                             min_snr=f.min_snr, target_fraction=f.train_share)
  train, pool = split.target.in_memory(), split.auxiliary.in_memory()
  model = models.get(f.model, dataset.spec.num_classes, dataset.spec.length)
  t0 = time.perf_counter()
  state, _ = fit(model, train, TrainConfig(epochs=f.epochs, batch_size=f.batch_size), seed=0)
  train_s = time.perf_counter() - t0
  margins, rates = {}, {}
  for dtype in scoring.COMPUTE_DTYPES:
    pools.score_pool(model, state.variables, pool.subset(np.arange(f.batch_size)),
                       compute_dtype=dtype, batch_size=f.score_batch)  # compile
    t0 = time.perf_counter()
    margins[dtype] = pools.score_pool(model, state.variables, pool, compute_dtype=dtype,
                                        batch_size=f.score_batch)
    rates[dtype] = len(pool) / (time.perf_counter() - t0)
  # Pools are in class / SNR order: an evenly spaced 2,000 cover every class.
  test = split.test.subset(np.unique(np.linspace(0, len(split.test) - 1, 2000).astype(int)))
  predicted = np.argmax(np.asarray(model.apply(state.variables, test.signals(), train=False)),
                        axis=1)
  test_acc = float(np.mean(predicted == test.y))
  report = {'dataset': f.dataset, 'source': dataset.origin['kind'], 'model': f.model,
            'train_vectors': len(train), 'epochs': f.epochs, 'train_s': train_s,
            'test_accuracy_2000_spread': test_acc, 'pool_vectors': len(pool),
            'device': jax.devices()[0].device_kind,
            'samples_per_s': rates,
            **compare_selections(margins['float32'], margins['bfloat16'],
                                 [float(r) for r in f.rates])}
  print(json.dumps(report))


if __name__ == '__main__':
  flags.DEFINE_string('dataset', 'rml2016.10a', 'Registered dataset (its stand-in if absent).')
  flags.DEFINE_integer('per_cell', 200, 'Synthetic vectors per (class, SNR) cell.')
  flags.DEFINE_string('cache_dir', None, 'Where the synthetic stand-in is cached.')
  flags.DEFINE_float('min_snr', 10, 'Keep vectors above this SNR (dB), as DUSE does.')
  flags.DEFINE_float('train_share', 0.3, 'Share of the train split the scorer is trained on; '
                     'the rest of it is the pool that is scored.')
  flags.DEFINE_string('model', 'cnn2d', 'Registry model.')
  flags.DEFINE_integer('epochs', 5, 'Training epochs of the scorer.')
  flags.DEFINE_integer('batch_size', 128, 'Training batch size.')
  flags.DEFINE_integer('score_batch', 512, 'Scoring batch size.')
  flags.DEFINE_list('rates', ['0.01', '0.05', '0.1', '0.2'], 'Selection rates compared.')
  app.run(main)
