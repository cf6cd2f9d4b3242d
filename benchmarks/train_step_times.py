"""Seconds per training step of zoo models, beside the machine's matmul rate.

What the study presets' sizes are planned from (docs/results.md): one jitted step of
``amrjax.train.loop.train_step_fn`` (Adam, train mode, dropout and BatchNorm updates as in
``fit``) on a random (batch, 2, length) batch, the least of ``--repeats`` timed calls after
one untimed call, on the first device. Each line is one JSON row; the last lines are a
Markdown table.

  taskset -c 0 python -m benchmarks.train_step_times                 # one core
  python -m benchmarks.train_step_times --models=afnet:512,iqformer:128
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
from absl import app, flags, logging

from amrjax import models
from amrjax.errors import ConfigError
from amrjax.train import loop
from benchmarks.scoring_throughput import best_time, matmul_rate

DEFAULT_MODELS = ('cnn1d:128', 'afnet:512', 'icamcnet:512', 'lstm2:512', 'kd_cnn:256',
                  'kd_mobilenet:256', 'clst:256', 'iqformer:128', 'signet:128')
"""model:batch, at the batch size the study preset trains it with."""

flags.DEFINE_list('models', list(DEFAULT_MODELS), 'model:batch pairs to time.')
flags.DEFINE_integer('length', 128, 'Vector length L (RML2016.10a: 128).')
flags.DEFINE_integer('classes', 11, 'Number of classes (RML2016.10a: 11).')
flags.DEFINE_integer('repeats', 3, 'Timed calls per model; the least is reported.')
flags.DEFINE_integer('matmul_size', 2048, 'Side of the square float32 matmul timed first.')


def parse_models(items) -> list[tuple[str, int]]:
  """``['afnet:512']`` -> ``[('afnet', 512)]``; a bad item or an unknown model is a
  ``ConfigError``."""
  out = []
  for item in items:
    name, sep, batch = item.partition(':')
    if not sep or not batch.strip().isdigit() or int(batch) < 1:
      raise ConfigError(f'{item!r} is not MODEL:BATCH, e.g. afnet:512')
    out.append((models.canonical_name(name.strip()), int(batch)))
  return out


def step_seconds(name: str, batch: int, *, length: int, classes: int, repeats: int) -> float:
  """Least wall time of one training step of model ``name`` at ``batch`` (seconds)."""
  model = models.get(name, classes, length)
  state = loop.init_state(model, length=length, learning_rate=1e-3, seed=0)
  step = loop.train_step_fn(model, 1e-3, length)
  x = jax.random.normal(jax.random.key(1), (batch, 2, length))
  y = jnp.zeros(batch, jnp.int32)
  mask = jnp.ones(batch, bool)
  box = [state]

  def run():
    box[0], metrics = step(box[0], x, y, mask, jax.random.key(2))  # the state is donated
    return metrics

  return best_time(run, repeats)


def measure(pairs, *, length: int, classes: int, repeats: int, matmul_size: int,
            emit=print) -> list[dict]:
  """One row for the matmul rate, then one per (model, batch); each is passed to ``emit``."""
  rows = [{'kind': 'matmul', 'size': matmul_size,
           'gflop_per_s': matmul_rate(matmul_size) / 1e9, 'device': str(jax.devices()[0])}]
  emit(rows[-1])
  for name, batch in pairs:
    seconds = step_seconds(name, batch, length=length, classes=classes, repeats=repeats)
    rows.append({'kind': 'step', 'model': name, 'batch': batch, 'length': length,
                 'seconds_per_step': seconds})
    emit(rows[-1])
  return rows


def table(rows: list[dict]) -> str:
  """Markdown: the matmul rate, then seconds per step by model."""
  lines = [f'float32 matmul {rows[0]["gflop_per_s"]:.0f} GFLOP/s', '',
           '| model | batch | s/step |', '|---|---|---|']
  lines += [f'| {r["model"]} | {r["batch"]} | {r["seconds_per_step"]:.3f} |'
            for r in rows[1:]]
  return '\n'.join(lines)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  try:
    pairs = parse_models(f.models)
  except ConfigError as e:
    raise app.UsageError(str(e)) from None
  rows = measure(pairs, length=f.length, classes=f.classes, repeats=f.repeats,
                 matmul_size=f.matmul_size, emit=lambda row: print(json.dumps(row), flush=True))
  print(table(rows))


if __name__ == '__main__':
  app.run(main)
