"""The runner every experiment shares: records kept and read back on resume, a divergence
named by its cell, metrics and checkpoints of a cell's training, the in-memory rule."""

import dataclasses
import json
import os

import numpy as np
import pytest

from amrjax import models
from amrjax.errors import ConfigError
from amrjax.experiments import runner
from amrjax.train import TrainConfig, loop
from tests.helpers import random_pool


@dataclasses.dataclass(frozen=True)
class Settings:
  seeds: tuple[int, ...] = (0,)


def _run(tmp_path, settings=Settings(), log=None):
  return runner.Run(settings, tmp_path, key=lambda r: (r['method'], r['seed']),
                    log=log or (lambda _: None))


def test_a_record_is_kept_at_once_and_read_back_by_a_resumed_run(tmp_path):
  run = _run(tmp_path)
  assert run.reuse(('a', 0)) is None and run.records == []
  record = run.record({'method': 'a', 'seed': 0, 'accuracy': 0.5})
  assert run.records == [record]
  assert json.loads((tmp_path / 'runs.jsonl').read_text()) == record  # before the end
  run.release()  # as a killed process's lock is
  lines = []
  resumed = _run(tmp_path, log=lines.append)
  assert 'resuming the run' in lines[0]
  assert resumed.reuse(('b', 0)) is None and resumed.records == []
  assert resumed.reuse(('a', 0)) == record and resumed.records == [record]
  resumed.release()
  with pytest.raises(ConfigError, match=r'different configuration \(differs in: seeds\)'):
    _run(tmp_path, Settings(seeds=(1,)))
  _run(tmp_path).release()  # a refused run leaves the directory free


def test_a_cells_training_logs_its_epochs_and_a_divergence_names_the_cell(tmp_path,
                                                                         monkeypatch):
  model, pool = models.get('cnn2d', 4, 128), random_pool(48)
  config = TrainConfig(epochs=2, batch_size=16)
  run = _run(tmp_path)
  run.fit(model, pool, config, seed=0, where='seed 0, cell a', tag={'method': 'a'},
          checkpoint='cell-a')
  metrics = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [(m['method'], m['epoch']) for m in metrics] == [('a', 1), ('a', 2)]
  assert (tmp_path / 'checkpoints' / 'cell-a').is_dir()  # to resume from; the last kept
  real_step_fn = loop.train_step_fn

  def nan_step_fn(*args, **kwargs):
    step = real_step_fn(*args, **kwargs)

    def step_with_nan(state, *rest):
      state, out = step(state, *rest)
      return state, {**out, 'loss_sum': out['loss_sum'] * np.nan}
    return step_with_nan
  monkeypatch.setattr(loop, 'train_step_fn', nan_step_fn)
  with pytest.raises(loop.TrainingDivergedError, match=r'^seed 0, cell b: .*epoch 1'):
    run.fit(model, pool, config, seed=0, where='seed 0, cell b', tag={'method': 'b'},
            checkpoint='cell-b')


def test_the_in_memory_rule_adds_up_the_splits(monkeypatch):
  a, b = random_pool(10), random_pool(6)
  assert a.nbytes == 10 * 2 * 128 * 4
  monkeypatch.setattr(runner, 'IN_MEMORY_LIMIT_BYTES', a.nbytes + b.nbytes)
  assert runner.fits_in_memory(a, b) and not runner.fits_in_memory(a, b, random_pool(1))


def test_percent_labels():
  assert [runner.percent_label(r) for r in (0.04, 0.09, 0.005, 1)] == ['4%', '9%', '0.5%',
                                                                       '100%']


def _data(tmp_path, kind='synthetic', **origin):
  from amrjax.data import sources, specs
  return sources.Dataset(specs.get_spec('rml2016.10a'), random_pool(4),
                         {'kind': kind, 'vectors': 4, 'generator_version': 2, 'seed': 0,
                          'count_per_cell': 1, 'path': str(tmp_path / 'file'), **origin})


def test_a_run_resumes_only_on_the_data_it_was_begun_on(tmp_path):
  _run_on = lambda data: runner.Run(Settings(), tmp_path / 'run', key=lambda r: r['method'],
                                    data=data, log=lambda _: None).release()
  _run_on(_data(tmp_path))
  assert json.loads((tmp_path / 'run' / 'data.json').read_text())['generator_version'] == 2
  _run_on(_data(tmp_path))  # the same stand-in, wherever it is cached: resumed
  with pytest.raises(ConfigError, match=r'begun on other data \(differs in: '
                     r'generator_version, seed\); resume it with the same data'):
    _run_on(_data(tmp_path, generator_version=3, seed=1))
  # A real file: its path, size and modification time.
  (tmp_path / 'file').write_bytes(b'x' * 10)
  real = _data(tmp_path, kind='real')
  _run_on_real = lambda: runner.Run(Settings(), tmp_path / 'real', key=lambda r: r['method'],
                                    data=real, log=lambda _: None).release()
  _run_on_real()
  _run_on_real()
  (tmp_path / 'file').write_bytes(b'y' * 11)  # replaced
  with pytest.raises(ConfigError, match=r'differs in: bytes, mtime_ns'):
    _run_on_real()


def test_one_writer_per_run_directory(tmp_path):
  first = _run(tmp_path)
  with pytest.raises(ConfigError, match=rf'is being written by another run \(pid {os.getpid()}\)'):
    _run(tmp_path)
  first.release()
  assert not (tmp_path / runner.LOCK_FILE).exists()
  _run(tmp_path).release()  # free again
  # A run that ended without finishing (killed) leaves .lock behind; the system released
  # its lock, so the next run takes it over.
  (tmp_path / runner.LOCK_FILE).write_text('12345')
  _run(tmp_path).release()


def test_a_damaged_config_or_data_record_is_one_line(tmp_path):
  _run(tmp_path).release()
  (tmp_path / 'config.json').write_text('[1, 2]')
  with pytest.raises(ConfigError, match=r'config.json is not a JSON object; choose a new'):
    _run(tmp_path)
  (tmp_path / 'config.json').write_text('{"seeds": [0')
  with pytest.raises(ConfigError, match=r'config.json is unreadable \(.*\); choose a new'):
    _run(tmp_path)
