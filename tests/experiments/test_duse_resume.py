"""A DUSE run killed with SIGKILL and resumed leaves the run directory of an uninterrupted run.

Every file is compared: byte for byte, or for JSON files equal once the timing fields
below are removed. The run is killed in a subprocess; the resumed and the uninterrupted
runs are made in the test process (both with its eight CPU devices: the bits of scores and
trainings depend on the device count). The runs are tiny (120 training vectors, the
1D-CNN).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from amrjax.data import specs
from amrjax.errors import ConfigError
from amrjax.experiments import duse
from amrjax.experiments.rundir import RunDir
from amrjax.train import loop
from tests.helpers import random_pool

REPO = Path(__file__).resolve().parents[2]

# Wall-clock durations (time.time() differences). They depend on the machine's load, and in
# a resumed run they cover only what was computed after the restart (a cell trained across
# the kill, the whole run's total), so they are not results and are left out of the
# comparison. Nothing else is.
TIMING_FIELDS = {
    'results.json': ('seconds', 'runs[].seconds', 'runs[].selection_seconds'),
    'runs.jsonl': ('seconds', 'selection_seconds'),  # every line
    'rounds/*.json': ('[].seconds',),  # each DUSE round's time
}

TINY_RESUME = dict(name='tiny-resume', classes=('BPSK', 'QPSK', '16QAM', 'FM'), length=128,
                   snrs=(0, 12, 14), count_per_cell=40, train_fraction=0.75,
                   file_names=('tiny-resume.hdf5',), file_format=specs.XYZ_HDF5,
                   normalisation=specs.UNIT_POWER)


def _config(data: Path) -> duse.DuseConfig:
  """DUSE (target, random, DUSE with 2 rounds, 3 final epochs) on the tiny stand-in cached
  under ``data``."""
  return duse.DuseConfig(
      dataset='tiny-resume', cache_dir=str(data / 'cache'), data_dir=str(data), rates=(0.25,),
      seeds=(0,), rounds=2, round_epochs=1, final_epochs=3, batch_size=16, max_per_cell=20,
      target_fraction=0.25, model='cnn1d', methods=('target', 'random', 'duse'))


# Runs ``_config`` in argv[1] with the data under argv[2], an epoch checkpoint after every
# epoch, and kills itself with SIGKILL right after logging epoch 2 of DUSE's final training:
# target and random are done, DUSE's rounds are checkpointed, its final training has saved
# epoch 1 (epoch 2 is logged before it would be saved).
_KILLED = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path
    from amrjax.experiments import duse, rundir
    from amrjax.data import specs
    from amrjax.train import loop
    from tests.experiments import test_duse_resume as t
    specs.register(specs.DatasetSpec(**t.TINY_RESUME))
    loop.CHECKPOINT_INTERVAL_SECONDS = 0.0
    log_metrics = rundir.RunDir.log_metrics
    def log_then_kill(self, record):
      log_metrics(self, record)
      if (record.get('phase'), record.get('method'), record.get('epoch')) == ('final', 'duse', 2):
        os.kill(os.getpid(), signal.SIGKILL)
    rundir.RunDir.log_metrics = log_then_kill
    duse.run(t._config(Path(sys.argv[2])), sys.argv[1], write_report=False)
    ''')


def _run_killed(tmp_path, workdir):
  env = {**os.environ, 'PYTHONPATH': str(REPO), 'JAX_PLATFORMS': 'cpu',
         'AMRJAX_PROGRESS': 'off'}
  return subprocess.run([sys.executable, '-c', _KILLED, str(workdir), str(tmp_path / 'data')],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _run_here(tmp_path, workdir, monkeypatch) -> list[str]:
  """``_config`` run in this process, checkpointing every epoch; the lines it logged."""
  specs.register(specs.DatasetSpec(**TINY_RESUME))
  monkeypatch.setattr(loop, 'CHECKPOINT_INTERVAL_SECONDS', 0.0)
  lines = []
  duse.run(_config(tmp_path / 'data'), workdir, log=lines.append, write_report=False)
  return lines


def _without_timings(name: str, obj):
  """``obj`` (a parsed file or JSONL line) without the fields of ``TIMING_FIELDS``."""
  if name == 'results.json':
    obj = {k: v for k, v in obj.items() if k != 'seconds'}
    obj['runs'] = [_without_timings('runs.jsonl', r) for r in obj['runs']]
  elif name == 'runs.jsonl':
    obj = {k: v for k, v in obj.items() if k not in ('seconds', 'selection_seconds')}
  elif name.startswith('rounds/'):
    obj = [{k: v for k, v in r.items() if k != 'seconds'} for r in obj]
  return obj


def _contents(run_dir: Path) -> dict[str, object]:
  """Every file of ``run_dir``: JSON as canonical text without timings, the rest as bytes."""
  out = {}
  for path in sorted(p for p in run_dir.rglob('*') if p.is_file()):
    name = path.relative_to(run_dir).as_posix()
    if path.suffix == '.json':
      out[name] = json.dumps(_without_timings(name, json.loads(path.read_text())))
    elif path.suffix == '.jsonl':
      out[name] = [json.dumps(_without_timings(name, json.loads(line)))
                   for line in path.read_text().splitlines()]
    else:
      out[name] = path.read_bytes()
  return out


def test_a_killed_and_resumed_run_writes_the_uninterrupted_runs_files(tmp_path, monkeypatch):
  killed = _run_killed(tmp_path, tmp_path / 'resumed')
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  checkpoints = tmp_path / 'resumed' / 'checkpoints'
  assert sorted(p.relative_to(checkpoints).as_posix() for p in checkpoints.rglob('*.json')) == [
      'duse-seed0-r0.25/round-2.json', 'final/duse-seed0-r0.25-cnn1d/epoch-1.json']
  resumed = '\n'.join(_run_here(tmp_path, tmp_path / 'resumed', monkeypatch))
  assert 'resuming the run' in resumed and 'done before the interruption' in resumed
  _run_here(tmp_path, tmp_path / 'whole', monkeypatch)

  want, got = _contents(tmp_path / 'whole'), _contents(tmp_path / 'resumed')
  assert sorted(got) == sorted(want) == [
      'config.json', 'data.json', 'embeddings/seed0-r0.25.npz', 'metrics.jsonl', 'results.json',
      'rounds/duse-seed0-r0.25.json', 'runs.jsonl', 'selected/duse-seed0-r0.25.npy',
      'selected/random-seed0-r0.25.npy', 'selected/target-seed0.npy']
  assert [n for n in want if got[n] != want[n]] == []
  # The t-SNE input holds the set of random expansion, finished before the kill, as well.
  with np.load(tmp_path / 'resumed' / 'embeddings' / 'seed0-r0.25.npz') as f:
    assert f['methods'].tolist() == ['Random expansion', 'DUSE (2 rounds)']


def test_a_finished_methods_set_is_read_back_only_when_it_matches_runs_jsonl(tmp_path):
  pool = random_pool(40)
  splits = types.SimpleNamespace(target=pool.subset(np.arange(8)),
                                 auxiliary=pool.subset(np.arange(8, 40)))
  run = RunDir(tmp_path)
  moved = splits.auxiliary.ids[[0, 3, 5, 6]]
  run.write_ids('selected/random.npy', moved)
  want = splits.target.union(splits.auxiliary.take_ids(moved))
  record = {'train_size': 12, 'class_counts': want.class_counts().tolist()}
  got = duse._expanded_set(run, splits, 'selected/random.npy', record)
  np.testing.assert_array_equal(got.ids, want.ids)
  with pytest.raises(ConfigError, match='does not hold the training set recorded in runs.jsonl'):
    duse._expanded_set(run, splits, 'selected/random.npy',
                                  {**record, 'train_size': 13})
  (tmp_path / 'selected' / 'random.npy').write_bytes(b'\x93NUMPY')
  for name in ('selected/random.npy', 'selected/missing.npy'):
    with pytest.raises(ConfigError, match=rf'^{tmp_path}/{name} is missing or damaged \(.*\); '
                       'the embeddings of the resumed run need it: choose a new --workdir$'):
      duse._expanded_set(run, splits, name, record)
