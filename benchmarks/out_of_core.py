"""Scoring a pool larger than memory: an RML2018.01a-train-size HDF5 file, streamed.

The synthetic generator writes the pool in RML2018's own HDF5 layout (X (N, 1024, 2)
float32, one-hot Y, Z), cell by cell, so it never sits in memory; the default is 3,277
vectors per (class, SNR) cell, 2,044,848 vectors (15.6 GiB), the size of RML2018.01a's 80 %
training split. The pool is then read batch by batch from the file
(``formats.H5Store``), scored, and the k smallest margins kept by a streaming top-k
(``pools.select_from_pool``); neither the signals nor the scores are ever held whole.
The run reports the time to read the file alone, the time to score and select, and the
process's peak resident memory (``ru_maxrss``; the page cache is not part of it).

  python -m benchmarks.out_of_core --model=cnn1d                 # the whole pool
  python -m benchmarks.out_of_core --model=cnn2d --limit=10000 --batch_size=256 \
      --compare_in_memory                   # its first 10,000 vectors, file vs memory

The file is cached under ``--cache_dir`` (default ``$AMRJAX_CACHE_DIR`` or
``~/.cache/amrjax``); it is data, never committed.
"""

from __future__ import annotations

import json
import resource
import time

import jax
import numpy as np
from absl import app, flags, logging

from amrjax import models, parallel, scoring
from amrjax.scoring import pools
from amrjax.data import sources
from amrjax.data.pool import SignalPool, iter_batches
from amrjax.errors import ConfigError
from benchmarks.scoring_throughput import untrained_variables

GIB = 1 << 30


def peak_rss_bytes() -> int:
  """This process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def read_rate(pool: SignalPool, batch_size: int) -> float:
  """Seconds to read every signal of ``pool`` from its store, batch by batch, nothing else."""
  t0 = time.perf_counter()
  for _ in parallel.prefetched(iter_batches(pool, batch_size)):
    pass
  return time.perf_counter() - t0


def score_out_of_core(pool: SignalPool, model_name: str, *, select_fraction: float,
                      batch_size: int, compute_dtype: str = 'float32',
                      read_pass: bool = True, compare_in_memory: bool = False,
                      ) -> tuple[dict, np.ndarray]:
  """Reads, scores (softmax margin) and selects the smallest margins of ``pool``.

  Returns:
    (a JSON-able report of times and memory, the selected ids (k,) best first).

  The model is an untrained one with a random head (the rate does not depend on training).
  ``compare_in_memory`` then scores the same vectors again from an in-memory copy (they
  must fit), so the file's cost is measured against the same machine at the same time.
  """
  if not 0 < select_fraction <= 1:
    raise ConfigError(f'select fraction must be in (0, 1], got {select_fraction}')
  model = models.get(model_name, pool.num_classes, pool.length)
  variables = untrained_variables(model, pool.length)
  k = max(1, int(round(select_fraction * len(pool))))
  report = {'model': model_name, 'vectors': len(pool), 'length': pool.length,
            'gib': len(pool) * 2 * pool.length * 4 / GIB, 'k': k, 'batch': batch_size,
            'compute_dtype': compute_dtype, 'device': jax.devices()[0].device_kind,
            'local_devices': jax.local_device_count(),
            'rss_before_gib': peak_rss_bytes() / GIB}
  if read_pass:
    seconds = read_rate(pool, batch_size)
    report.update(read_s=seconds, read_gib_per_s=report['gib'] / seconds)
  t0 = time.perf_counter()
  ids, margins = pools.select_from_pool(model, variables, pool, k, batch_size=batch_size,
                                          compute_dtype=compute_dtype)
  seconds = time.perf_counter() - t0
  report.update(score_select_s=seconds, samples_per_s=len(pool) / seconds,
                peak_rss_gib=peak_rss_bytes() / GIB, selected=len(ids),
                selected_margin_max=float(margins[-1]),
                selected_class_counts=np.bincount(pool.y[pool.positions_of(ids)],
                                                  minlength=pool.num_classes).tolist())
  if compare_in_memory:
    in_memory = pool.in_memory()
    t0 = time.perf_counter()
    same, _ = pools.select_from_pool(model, variables, in_memory, k, batch_size=batch_size,
                                       compute_dtype=compute_dtype)
    report.update(in_memory_samples_per_s=len(pool) / (time.perf_counter() - t0),
                  in_memory_selects_the_same=bool(np.array_equal(same, ids)))
  return report, ids


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  t0 = time.perf_counter()
  dataset = sources.load(f.dataset, data_dir=f.data_dir, cache_dir=f.cache_dir,
                         synthetic_per_cell=f.per_cell, notify=print)
  load_s = time.perf_counter() - t0
  pool = dataset.pool
  if f.limit:
    pool = pool.subset(np.arange(min(f.limit, len(pool))))
  report, _ = score_out_of_core(pool, f.model, select_fraction=f.select_fraction,
                             batch_size=f.batch_size, compute_dtype=f.compute_dtype,
                             read_pass=f.read_pass, compare_in_memory=f.compare_in_memory)
  report.update(dataset=f.dataset, source=dataset.origin['kind'], open_or_generate_s=load_s)
  line = json.dumps(report)
  print(line)
  if f.out:
    with open(f.out, 'a') as out:
      out.write(line + '\n')
  print(f'{report["vectors"]:,} vectors ({report["gib"]:.1f} GiB) scored by {f.model} and '
        f'the {report["k"]:,} smallest margins selected in {report["score_select_s"]:.0f} s '
        f'({report["samples_per_s"]:.0f} vectors/s); peak resident memory '
        f'{report["peak_rss_gib"]:.2f} GiB')
  if report['peak_rss_gib'] > f.max_rss_gib:
    raise SystemExit(f'peak resident memory {report["peak_rss_gib"]:.2f} GiB is above '
                     f'--max_rss_gib={f.max_rss_gib}')


if __name__ == '__main__':
  flags.DEFINE_string('dataset', 'rml2018.01a', 'Registered dataset whose format is written.')
  flags.DEFINE_integer('per_cell', 3277, 'Synthetic vectors per (class, SNR) cell (3,277: '
                       'the size of RML2018.01a\'s 80 % training split).')
  flags.DEFINE_string('data_dir', None, 'Folder of the real file (used when present).')
  flags.DEFINE_string('cache_dir', None, 'Where the synthetic file is cached.')
  flags.DEFINE_string('model', 'cnn1d', 'Registry model that scores.')
  flags.DEFINE_float('select_fraction', 0.1, 'Fraction of the pool selected (smallest margins).')
  flags.DEFINE_integer('batch_size', 1024, 'Rows per scoring step.')
  flags.DEFINE_integer('limit', 0, 'Score only the first N vectors (0: all).')
  flags.DEFINE_enum('compute_dtype', 'float32', list(scoring.COMPUTE_DTYPES),
                    'Forward-pass dtype.')
  flags.DEFINE_boolean('read_pass', True, 'First time a pass that only reads the file.')
  flags.DEFINE_boolean('compare_in_memory', False, 'Also score the same vectors from memory '
                       '(use with --limit).')
  flags.DEFINE_float('max_rss_gib', 3.0, 'Fail if the peak resident memory exceeds this.')
  flags.DEFINE_string('out', None, 'Also append the JSON line to this file.')
  app.run(main)
