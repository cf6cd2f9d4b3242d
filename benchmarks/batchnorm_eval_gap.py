"""Does a BatchNorm model classify as well in eval mode as with batch statistics?

Trains each ``--models`` entry with Adam at a constant rate on the high-SNR train split of
``--dataset`` (the stand-in or a real file, at the real file's scale: RML2016 vectors are
divided by the sum of |x|), then classifies ``--test_size`` test vectors three ways:

  eval       eval mode with the running statistics of training (what every result used
             before issue 16; ``TrainConfig(batchnorm_statistics='running')``);
  population eval mode, every BatchNorm's statistics re-estimated as the average of the
             batch statistics of ``--population_batches`` training batches under the
             final parameters ("precise BN"): what eval mode would give with no lag, and
             what ``fit`` now returns by default;
  batch      train mode (batch statistics, dropout on), in batches of ``--batch_size``.

and prints, for the BatchNorm layer whose running mean is furthest from the population
mean, that offset in units of sqrt(population var + eps) and the running/population variance
ratio. ``eval`` far below ``population`` means the running statistics are off (the bug of
issue 16); ``population`` far below ``batch`` means the model depends on batch statistics
in a way no fixed statistics can stand in for.

  python -m benchmarks.batchnorm_eval_gap --dataset=rml2016.10a --steps=300
"""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from amrjax import models
from amrjax.data import sources, splits
from amrjax.data.pool import ArrayStore, SignalPool
from amrjax.errors import ConfigError
from amrjax.train import TrainConfig, fit
from amrjax.train.batchnorm import (batch_statistics_logits, has_batchnorm,
                                    population_batch_stats, running_stat_offsets)
from amrjax.train.loop import RUNNING

FLAGS = flags.FLAGS


def _accuracy(logits, y) -> float:
  return float(np.mean(np.argmax(np.asarray(logits), -1) == y))


@dataclasses.dataclass(frozen=True)
class Settings:
  """One probe's training and measuring settings (the flags of the same names)."""

  train_size: int = 8000
  steps: int = 300
  learning_rate: float = 1e-3
  batch_size: int = 128
  test_size: int = 1024
  population_batches: int = 20
  seed: int = 0
  momentum: float | None = None


def probe(name: str, num_classes: int, split, settings: Settings) -> dict:
  """Trains ``name`` on a draw of ``split.train`` and measures eval mode three ways.

  Returns the accuracies ('train_mode_accuracy', 'eval', 'population', 'batch'), the
  steps and training seconds, and the worst layer with its ``running_stat_offsets``.
  """
  rng = np.random.default_rng(settings.seed)
  length = split.train.length
  model = models.get(name, num_classes, length)
  if settings.momentum is not None:
    if not hasattr(model, 'batchnorm_momentum'):
      raise ConfigError(f'{name} has no batchnorm_momentum to set')
    model = model.clone(batchnorm_momentum=settings.momentum)
  if not has_batchnorm(model, length):
    raise ConfigError(f'{name} has no BatchNorm; nothing to probe')
  train = split.train.subset(np.sort(rng.choice(
      len(split.train), min(settings.train_size, len(split.train)), replace=False)))
  test = split.test.subset(np.sort(rng.choice(
      len(split.test), min(settings.test_size, len(split.test)), replace=False)))
  # Pool order is class by class; batch statistics need mixed batches.
  shuffled = rng.permutation(len(test))
  batch_size = settings.batch_size
  epochs = -(-settings.steps // -(-len(train) // batch_size))
  t0 = time.time()
  # Running statistics kept, to measure them (fit's default replaces them by population ones).
  config = TrainConfig(epochs, batch_size, settings.learning_rate,
                       batchnorm_statistics=RUNNING)
  state, history = fit(model, train, config, seed=settings.seed)
  seconds = time.time() - t0
  x_test, y_test = jnp.asarray(test.signals(shuffled)), test.y[shuffled]
  eval_logits = model.apply(state.variables, x_test, train=False)
  population = population_batch_stats(model, state.variables, train, batch_size,
                                      batches=settings.population_batches, seed=settings.seed)
  population_variables = {'params': state.params, 'batch_stats': population}
  population_logits = model.apply(population_variables, x_test, train=False)
  batch_logits = batch_statistics_logits(model, state.variables, x_test, batch_size)
  offsets = running_stat_offsets(state.batch_stats, population)
  worst = max(offsets, key=lambda k: offsets[k]['mean_offset'])
  return {
      'model': name, 'epochs': epochs, 'steps': int(state.step), 'seconds': seconds,
      'train_mode_accuracy': history[-1]['accuracy'],
      'eval': _accuracy(eval_logits, y_test),
      'population': _accuracy(population_logits, y_test),
      'batch': _accuracy(batch_logits, y_test[:len(batch_logits)]),
      'worst_layer': worst, **offsets[worst],
  }


def row(r: dict) -> str:
  """One markdown table row of a ``probe`` result (columns of ``HEADER``)."""
  return (f'| {r["model"]} | {r["steps"]} | {r["train_mode_accuracy"]:.1%} | {r["eval"]:.1%} | '
          f'{r["population"]:.1%} | {r["batch"]:.1%} | {r["mean_offset"]:.2f} '
          f'(`{r["worst_layer"]}`) | {r["var_ratio"]:.2f} | {r["seconds"]:.0f} |')


HEADER = ('| model | steps | train-mode acc. | eval (running stats) | eval (population stats) '
          '| batch stats | worst layer: mean offset / sqrt(var+eps) | running / population var '
          '| train s |\n|---|---|---|---|---|---|---|---|---|')


def _scaled(pool: SignalPool, gain: float) -> SignalPool:
  return SignalPool(ArrayStore(pool.signals() * np.float32(gain), pool.ids), pool.ids, pool.y,
                    pool.snr, pool.classes)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  data = sources.load(FLAGS.dataset)
  split = splits.make_splits(data.pool, train_fraction=data.spec.train_fraction,
                             min_snr=FLAGS.min_snr).in_memory()
  if FLAGS.unit_power:
    gain = 1.0 / np.sqrt(2 * split.train.signals().var())
    split = dataclasses.replace(split, train=_scaled(split.train, gain),
                                test=_scaled(split.test, gain))
  x = split.train.signals(np.arange(min(len(split.train), 4096)))
  print(f'{data.spec.name} ({data.origin["kind"]}), SNR > {FLAGS.min_snr:g} dB: train '
        f'{len(split.train):,} (mean |x| {np.abs(x).mean():.2e}, per-component variance '
        f'{x.var():.2e}); {FLAGS.steps} Adam steps at a constant {FLAGS.learning_rate:g}, '
        f'batch {FLAGS.batch_size}, on {FLAGS.train_size:,} of them; seed {FLAGS.seed}'
        f'{"; rescaled to unit power" if FLAGS.unit_power else ""}'
        f'{f"; BatchNorm momentum {FLAGS.momentum:g}" if FLAGS.momentum is not None else ""}',
        flush=True)
  print(HEADER)
  settings = Settings(FLAGS.train_size, FLAGS.steps, FLAGS.learning_rate, FLAGS.batch_size,
                      FLAGS.test_size, FLAGS.population_batches, FLAGS.seed, FLAGS.momentum)
  for name in FLAGS.models:
    try:
      print(row(probe(name, data.spec.num_classes, split, settings)), flush=True)
    except ConfigError as e:
      raise app.UsageError(str(e)) from None


if __name__ == '__main__':
  # Defined here, not at import, so that tests can import this module beside the drivers.
  flags.DEFINE_string('dataset', 'rml2016.10a', 'Registered dataset name.')
  flags.DEFINE_list('models', ['cnn1d', 'signet', 'afnet', 'clst', 'kd_cnn', 'kd_mobilenet'],
                    'Registry models to probe (each must have BatchNorm).')
  flags.DEFINE_integer('train_size', Settings.train_size,
                       'Training vectors drawn from the high-SNR train split.')
  flags.DEFINE_integer('steps', Settings.steps, 'Adam steps (rounded up to whole epochs).')
  flags.DEFINE_float('learning_rate', Settings.learning_rate, 'Constant Adam learning rate.')
  flags.DEFINE_integer('batch_size', Settings.batch_size,
                       'Batch size of training and of the batch-statistics pass.')
  flags.DEFINE_integer('test_size', Settings.test_size, 'Test vectors classified.')
  flags.DEFINE_integer('population_batches', Settings.population_batches,
                       'Training batches averaged for the population statistics.')
  flags.DEFINE_float('min_snr', 10, 'Keep vectors with SNR above this.')
  flags.DEFINE_integer('seed', Settings.seed, 'Initialisation, shuffling and subset seed.')
  flags.DEFINE_float('momentum', None, 'BatchNorm momentum of the models that take it as '
                     '`batchnorm_momentum` (cnn1d, signet, afnet); default: the model\'s (0.9).')
  flags.DEFINE_bool('unit_power', False, 'Multiply every vector by one constant that gives the '
                    'train split unit mean power (RML2018/Sig2019 scale) before training.')
  app.run(main)
