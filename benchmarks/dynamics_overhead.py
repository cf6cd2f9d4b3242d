"""How much recording training dynamics slows training (issue: must stay under 10 %).

Trains the same model on the same random pool with ``fit`` and ``fit_recording``
(forgetting/FoQuS counters updated inside the jitted step), after a warm-up that compiles
both steps, and reports seconds per epoch and the relative overhead, median of repeats.

  python -m benchmarks.dynamics_overhead --model=cnn2d --length=128 --n=4096
"""

from __future__ import annotations

import time

import numpy as np
from absl import app, flags, logging

from amrjax import models
from amrjax.data.pool import SignalPool
from amrjax.train import TrainConfig, fit, fit_recording

flags.DEFINE_string('model', 'cnn2d', 'Registry model.')
flags.DEFINE_integer('length', 128, 'Signal length L.')
flags.DEFINE_integer('n', 4096, 'Pool size.')
flags.DEFINE_integer('classes', 11, 'Number of classes.')
flags.DEFINE_integer('epochs', 2, 'Epochs per timed run.')
flags.DEFINE_integer('repeats', 3, 'Timed runs per variant (median reported).')
flags.DEFINE_integer('batch_size', 128, 'Batch size.')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  rng = np.random.default_rng(0)
  pool = SignalPool.from_arrays(
      rng.standard_normal((FLAGS.n, 2, FLAGS.length)).astype(np.float32) * 0.1,
      rng.integers(0, FLAGS.classes, FLAGS.n), np.full(FLAGS.n, 12),
      tuple(f'c{i}' for i in range(FLAGS.classes)))
  model = models.get(FLAGS.model, FLAGS.classes, FLAGS.length)
  config = TrainConfig(epochs=FLAGS.epochs, batch_size=FLAGS.batch_size)
  runs = {'fit': lambda: fit(model, pool, config, seed=0),
          'fit_recording': lambda: fit_recording(model, pool, config, seed=0)}
  for run in runs.values():  # compile both
    run()
  times = {name: [] for name in runs}
  for _ in range(FLAGS.repeats):
    for name, run in runs.items():  # interleaved, so drift hits both alike
      t0 = time.perf_counter()
      run()
      times[name].append((time.perf_counter() - t0) / FLAGS.epochs)
  base, rec = (float(np.median(times[k])) for k in ('fit', 'fit_recording'))
  print(f'{FLAGS.model} L={FLAGS.length} n={FLAGS.n} batch={FLAGS.batch_size}: '
        f'fit {base:.3f} s/epoch, fit_recording {rec:.3f} s/epoch, overhead '
        f'{(rec / base - 1) * 100:+.1f} %')


if __name__ == '__main__':
  app.run(main)
