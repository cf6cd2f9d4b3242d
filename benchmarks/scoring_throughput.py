"""Pool-scoring throughput: samples per second of each scorer, one device vs pmap vs sharded jit.

For every (model, L, scorer) it scores the same random pool through each path:

- ``single``: ``parallel.map_pool`` on a one-device mesh;
- ``pmap``: ``parallel.map_pool_pmap`` over all local devices;
- ``sharded``: ``parallel.map_pool`` (``jax.jit`` + ``NamedSharding``) over all local devices;
- ``topk`` (margin and entropy): ``parallel.top_k_pool`` on all devices, the streaming
  selection of ``pools.select_from_pool`` (scores folded into a running smallest 10 %,
  never all kept), checked against the top k of the full scores;

and reports, per path, the first call (trace + compile + one pass, after
``jax.clear_caches()``) apart from the steady rate, the largest score difference from
``single``, and the achieved FLOP/s: XLA's cost analysis of one batch over the measured
wall time, as a fraction of the measured float32 matrix-multiply rate of the same devices.
A ``forward`` row per (model, L) times the bare jitted forward pass on batches already on
the devices; ``overhead`` on the ``sharded`` and ``topk`` rows is their time over that
forward time, minus 1: what reading, padding, sharding, the score, the top-k and the host
transfer add.

  python -m benchmarks.scoring_throughput                       # the table in README.md
  python -m benchmarks.scoring_throughput --cpu_devices=2       # two CPU devices
  python -m benchmarks.scoring_throughput --models=cnn2d --lengths=1024 --scorers=margin \\
      --compute_dtype=bfloat16 --out=/tmp/throughput.jsonl

One JSON object per line on stdout (and appended to ``--out``), then a table.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from amrjax import models, parallel, scoring
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.models import flops
from amrjax.scoring import boundary, gradients, uncertainty
from amrjax.selection import select

SOFTMAX_SCORERS = ('margin', 'entropy', 'el2n')
SCORERS = SOFTMAX_SCORERS + ('grand', 'deepfool')
PATHS = ('single', 'pmap', 'sharded', 'topk')


@dataclasses.dataclass(frozen=True)
class Settings:
  """What one benchmark run measures; the flags below set it."""

  models: Sequence[str] = ('cnn2d', 'cnn1d')
  lengths: Sequence[int] = (128, 512, 1024)
  scorers: Sequence[str] = SCORERS
  paths: Sequence[str] = PATHS
  num_classes: int = 11
  softmax_batch: int = 256
  softmax_samples: int = 512
  grand_batch: int = 16
  grand_samples: int = 32
  deepfool_batch: int = 8
  deepfool_samples: int = 8
  deepfool_max_iter: int = 50
  repeats: int = 1
  matmul_size: int = 2048
  compute_dtype: str = 'float32'

  def __post_init__(self):
    for name, given, known in (('scorer', self.scorers, SCORERS), ('path', self.paths, PATHS),
                               ('model', self.models, models.names())):
      unknown = sorted(set(given) - set(known))
      if unknown:
        raise ConfigError(f'unknown {name}(s) {", ".join(unknown)}; choose from '
                          f'{", ".join(known)}')
    if self.repeats < 1:
      raise ConfigError(f'repeats must be >= 1, got {self.repeats}')


def matmul_rate(size: int, repeats: int = 5) -> float:
  """Measured float32 FLOP/s of a (size x size) @ (size x size) product on the first device."""
  a = jax.device_put(np.random.default_rng(0).standard_normal((size, size), np.float32))
  product = jax.jit(lambda m: m @ m)
  best = best_time(lambda: product(a), repeats)
  return 2.0 * size**3 / best


def best_time(run: Callable[[], object], repeats: int) -> float:
  """Least wall time of ``repeats`` calls of ``run`` (after one untimed call)."""
  jax.block_until_ready(run())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(run())
    times.append(time.perf_counter() - t0)
  return min(times)


def _scorer(name: str, model, settings: Settings) -> tuple[Callable, bool]:
  """The jitted per-batch function of ``name`` and whether it takes labels."""
  dtype = settings.compute_dtype
  if name == 'margin':
    return scoring.softmax_scorer(model, uncertainty.margin, dtype), False
  if name == 'entropy':
    return scoring.softmax_scorer(model, uncertainty.entropy, dtype), False
  if name == 'el2n':
    return scoring.labelled_softmax_scorer(model, uncertainty.el2n, dtype), True
  if name == 'grand':
    return gradients.grand_scorer(model), True
  return boundary.deepfool_scorer(model, settings.deepfool_max_iter), False


def _sizes(name: str, settings: Settings) -> tuple[int, int]:
  if name in SOFTMAX_SCORERS:
    return settings.softmax_batch, settings.softmax_samples
  if name == 'grand':
    return settings.grand_batch, settings.grand_samples
  return settings.deepfool_batch, settings.deepfool_samples


def untrained_variables(model, length: int, seed: int = 0):
  """``model.init`` with any all-zero kernel redrawn (LeCun-normal).

  The 2D-CNN's head starts at zero, which makes every logit 0: all margins would tie and
  DeepFool would never move. A random head gives scores that vary, as a trained model's do.
  """
  variables = model.init(jax.random.key(seed), jnp.zeros((1, 2, length)), train=False)
  keys = iter(jax.random.split(jax.random.key(seed + 1), len(jax.tree.leaves(variables))))

  def redraw(path, leaf):
    key = next(keys)
    if path[-1].key == 'kernel' and not np.any(np.asarray(leaf)):
      return nn.initializers.lecun_normal()(key, leaf.shape, leaf.dtype)
    return leaf

  return jax.tree_util.tree_map_with_path(redraw, variables)


def random_pool(n: int, length: int, num_classes: int, seed: int = 0) -> SignalPool:
  """n unit-power Gaussian I/Q vectors with cyclic labels (the rate does not depend on them)."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, 2, length)).astype(np.float32) / np.sqrt(2.0)
  return SignalPool.from_arrays(x, np.arange(n) % num_classes, np.zeros(n, np.int32),
                                tuple(f'c{i}' for i in range(num_classes)))


def _flops_per_sample(fn: Callable, variables, pool: SignalPool, batch: int,
                      with_labels: bool) -> float:
  x = jnp.asarray(pool.signals(np.arange(batch) % len(pool)))
  args = (x, jnp.asarray(pool.y[np.arange(batch) % len(pool)])) if with_labels else (x,)
  return flops.xla_flops(fn, variables, *args) / batch


def _run_path(path: str, fn: Callable, variables, pool: SignalPool, batch: int,
              with_labels: bool) -> Callable[[], np.ndarray]:
  if path == 'single':
    return lambda: parallel.map_pool(fn, variables, pool, batch_size=batch,
                                     mesh=parallel.data_mesh(1), with_labels=with_labels)
  if path == 'pmap':
    return lambda: parallel.map_pool_pmap(fn, variables, pool, batch_size=batch,
                                          with_labels=with_labels)
  if path == 'sharded':
    return lambda: parallel.map_pool(fn, variables, pool, batch_size=batch,
                                     with_labels=with_labels)
  k = max(1, len(pool) // 10)  # topk: DUSE's selection, smallest margins first
  return lambda: parallel.top_k_pool(fn, variables, pool, k, largest=False, batch_size=batch,
                                     with_labels=with_labels)


def forward_rate(model, variables, pool: SignalPool, batch: int, repeats: int,
                 compute_dtype: str) -> float:
  """Seconds per sample of the bare jitted forward pass on batches already on all devices."""
  mesh = parallel.data_mesh()
  batch = parallel.round_up_batch(batch, mesh)
  steps = -(-len(pool) // batch)
  xs = [parallel.shard_batch(pool.signals(np.arange(i * batch, (i + 1) * batch) % len(pool)),
                             mesh) for i in range(steps)]
  on_devices = parallel.replicate(scoring.cast_floating(variables, compute_dtype), mesh)
  forward = jax.jit(lambda v, x: model.apply(v, x.astype(compute_dtype), train=False))

  def run():
    return [forward(on_devices, x) for x in xs]

  return best_time(run, repeats) / len(pool)


def measure(settings: Settings, emit: Callable[[dict], None]) -> list[dict]:
  """Runs every measurement of ``settings``; each row goes to ``emit`` as it is made."""
  device = jax.devices()[0]
  common = {'platform': device.platform, 'device_kind': device.device_kind,
            'local_devices': jax.local_device_count(), 'compute_dtype': settings.compute_dtype}
  peak = matmul_rate(settings.matmul_size)
  rows = []

  def record(row):
    row = {**common, **row}
    rows.append(row)
    emit(row)

  record({'kind': 'matmul', 'size': settings.matmul_size, 'gflops': peak / 1e9})
  for model_name in settings.models:
    for length in settings.lengths:
      model = models.get(model_name, settings.num_classes, length)
      variables = untrained_variables(model, length)
      where = {'model': model_name, 'length': length}
      fwd_pool = random_pool(settings.softmax_samples, length, settings.num_classes)
      fwd_s = forward_rate(model, variables, fwd_pool, settings.softmax_batch,
                           settings.repeats, settings.compute_dtype)
      fwd_flops = _flops_per_sample(jax.jit(lambda v, x: model.apply(v, x, train=False)),
                                    variables, fwd_pool, settings.softmax_batch, False)
      record({**where, 'kind': 'forward', 'samples_per_s': 1 / fwd_s,
              'gflop_per_sample': fwd_flops / 1e9,
              'fraction_of_matmul': fwd_flops / fwd_s / peak})
      for scorer in settings.scorers:
        fn, with_labels = _scorer(scorer, model, settings)
        batch, n = _sizes(scorer, settings)
        pool = random_pool(n, length, settings.num_classes, seed=1)
        per_sample = _flops_per_sample(fn, variables, pool, batch, with_labels)
        reference = None
        for path in settings.paths:
          if path == 'topk' and scorer not in ('margin', 'entropy'):
            continue
          run = _run_path(path, fn, variables, pool, batch, with_labels)
          jax.clear_caches()  # so every path's first call traces and compiles afresh
          t0 = time.perf_counter()
          out = run()
          first = time.perf_counter() - t0
          best = best_time(run, settings.repeats)
          row = {**where, 'kind': 'score', 'scorer': scorer, 'path': path, 'batch': batch,
                 'samples': n, 'samples_per_s': n / best, 'first_call_s': first,
                 'compile_s': max(0.0, first - best),
                 'gflop_per_sample_xla': per_sample / 1e9,
                 'fraction_of_matmul': per_sample * n / best / peak}
          if scorer == 'deepfool':
            row['note'] = 'XLA counts the DeepFool while-loop body once, not per iteration'
          if path == 'topk':
            row['overhead_vs_forward'] = best / n / fwd_s - 1
            if reference is not None:  # the streamed selection = top k of the full scores
              want = pool.ids[select.top_k(reference, len(out[0]), largest=False)]
              row['topk_equals_full_sort'] = bool(np.array_equal(out[0], want))
          else:
            if path == 'sharded' and scorer in SOFTMAX_SCORERS:
              row['overhead_vs_forward'] = best / n / fwd_s - 1
            if reference is None:
              reference = out
            row['max_abs_diff_vs_first_path'] = float(np.max(np.abs(out - reference)))
          record(row)
  return rows


def table(rows: list[dict]) -> str:
  """A markdown table of the score rows (and forward rows) of ``rows``."""
  head = ('| model | L | scorer | path | batch | samples/s | first call s | GFLOP/sample (XLA) '
          '| % of matmul | overhead vs forward | agrees with single |\n|' + '---|' * 11)
  lines = [head]
  for r in rows:
    if r['kind'] == 'matmul':
      continue
    overhead = r.get('overhead_vs_forward')
    diff = r.get('max_abs_diff_vs_first_path')
    check = f'max diff {diff:.1e}' if diff is not None else ''
    if 'topk_equals_full_sort' in r:
      check = 'same top k' if r['topk_equals_full_sort'] else 'DIFFERENT top k'
    lines.append('| {} | {} | {} | {} | {} | {:.1f} | {} | {:.4f} | {:.0f} % | {} | {} |'.format(
        r['model'], r['length'], r.get('scorer', '(forward)'), r.get('path', 'on device'),
        r.get('batch', ''), r['samples_per_s'],
        f"{r['first_call_s']:.2f}" if 'first_call_s' in r else '',
        r.get('gflop_per_sample_xla', r.get('gflop_per_sample')),
        100 * r['fraction_of_matmul'],
        f'{100 * overhead:+.1f} %' if overhead is not None else '', check))
  return '\n'.join(lines)


def _settings_from_flags() -> Settings:
  f = flags.FLAGS
  return Settings(models=tuple(f.models), lengths=tuple(int(v) for v in f.lengths),
                  scorers=tuple(f.scorers), paths=tuple(f.paths), num_classes=f.classes,
                  softmax_batch=f.softmax_batch, softmax_samples=f.softmax_samples,
                  grand_batch=f.grand_batch, grand_samples=f.grand_samples,
                  deepfool_batch=f.deepfool_batch, deepfool_samples=f.deepfool_samples,
                  deepfool_max_iter=f.deepfool_max_iter, repeats=f.repeats,
                  matmul_size=f.matmul_size, compute_dtype=f.compute_dtype)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if flags.FLAGS.cpu_devices:
    jax.config.update('jax_num_cpu_devices', flags.FLAGS.cpu_devices)
  settings = _settings_from_flags()
  out = flags.FLAGS.out

  def emit(row):
    line = json.dumps(row)
    print(line, flush=True)
    if out:
      with open(out, 'a') as f:
        f.write(line + '\n')

  t0 = time.perf_counter()
  rows = measure(settings, emit)
  print(table(rows))
  print(f'matmul {rows[0]["gflops"]:.1f} GFLOP/s; {jax.local_device_count()} '
        f'{rows[0]["device_kind"]} device(s); {time.perf_counter() - t0:.0f} s in all')


if __name__ == '__main__':
  flags.DEFINE_list('models', list(Settings.models), 'Registry models to score with.')
  flags.DEFINE_list('lengths', [str(v) for v in Settings.lengths], 'Signal lengths L.')
  flags.DEFINE_list('scorers', list(SCORERS), 'Scorers to time.')
  flags.DEFINE_list('paths', list(PATHS), 'Paths: single, pmap, sharded, topk.')
  flags.DEFINE_integer('classes', Settings.num_classes, 'Number of classes C.')
  flags.DEFINE_integer('softmax_batch', Settings.softmax_batch, 'Batch of margin/entropy/EL2N.')
  flags.DEFINE_integer('softmax_samples', Settings.softmax_samples, 'Pool size for them.')
  flags.DEFINE_integer('grand_batch', Settings.grand_batch, 'Batch of GraNd.')
  flags.DEFINE_integer('grand_samples', Settings.grand_samples, 'Pool size for GraNd.')
  flags.DEFINE_integer('deepfool_batch', Settings.deepfool_batch, 'Batch of DeepFool.')
  flags.DEFINE_integer('deepfool_samples', Settings.deepfool_samples, 'Pool size for DeepFool.')
  flags.DEFINE_integer('deepfool_max_iter', Settings.deepfool_max_iter, 'DeepFool steps.')
  flags.DEFINE_integer('repeats', Settings.repeats, 'Timed passes per path (fastest kept).')
  flags.DEFINE_integer('matmul_size', Settings.matmul_size, 'Side of the reference matmul.')
  flags.DEFINE_enum('compute_dtype', 'float32', list(scoring.COMPUTE_DTYPES),
                    'Forward-pass dtype of the softmax scorers.')
  flags.DEFINE_integer('cpu_devices', 0, 'Split the CPU into this many devices (0: as is).')
  flags.DEFINE_string('out', None, 'Also append the JSON lines to this file.')
  app.run(main)
