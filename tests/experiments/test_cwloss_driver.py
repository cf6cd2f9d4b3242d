"""End-to-end: the CW-loss driver at tiny size, its split, its tables and its one-line errors.

The smoke test runs the real command line in a subprocess, through a small launcher that
registers the tiny dataset there first, as the ``tiny_spec`` fixture of conftest.py does
in-process, and a Table II model, ``twin``: the 2D-CNN under another name, so that it shares
the weight model's compiled steps and the test stays fast (registered there, it stays out of
this process's model registry).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amrjax.data import specs
from amrjax.errors import ConfigError
from amrjax.experiments import cwloss
from tests.helpers import assert_report, one_line_error, run_driver
from tests.xla_env import xla_flags

REPO = Path(__file__).resolve().parents[2]

# tiny_spec's shape at L = 32, so the 2D-CNN's dense layer (and its compile) stays small.
TINY = dict(name='tiny-cwloss', classes=('BPSK', 'QPSK', '16QAM', 'FM'), length=32,
            snrs=(0, 12, 14), count_per_cell=10, train_fraction=0.8,
            file_names=('tiny-cwloss.hdf5',), file_format=specs.XYZ_HDF5,
            normalisation=specs.UNIT_POWER)
LAUNCH = f"""
from amrjax import models
from amrjax.data import specs
specs.register(specs.DatasetSpec(**{TINY!r}))
models.register('twin', lambda num_classes, length: models.CNN2D(num_classes), label='Twin')
from experiments import cwloss
cwloss.DRIVER.script()
"""


def _run(*args, timeout=300):
  env = {**os.environ, 'XLA_FLAGS': xla_flags(), 'JAX_PLATFORMS': 'cpu'}
  return subprocess.run([sys.executable, '-c', LAUNCH, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_driver_smoke(tmp_path):
  workdir = tmp_path / 'run'
  args = ('--dataset=tiny-cwloss', f'--cache_dir={tmp_path / "cache"}',
          f'--data_dir={tmp_path}', '--weight_model=cnn2d', '--models=twin',
          '--ks=2,3', '--table2_k=3', '--epochs=2', '--patience=1', '--batch_size=16',
          '--validation_fraction=0.25', '--seeds=5', f'--workdir={workdir}')
  proc = _run(*args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = proc.stdout
  assert 'using the synthetic stand-in' in out

  config = json.loads((workdir / 'config.json').read_text())
  assert config['ks'] == [2, 3] and config['models'] == ['twin'] and config['seeds'] == [5]
  assert config['weight_model'] == 'cnn2d' and config['patience'] == 1
  assert config['tables'] == ['table1', 'table2'] and config['warm_start'] is False

  results = json.loads((workdir / 'results.json').read_text())
  # 12 cells of 10: 8 train / 2 test per cell, then 2 of the 8 held out for validation.
  assert results['splits'] == {'train': 72, 'validation': 24, 'test': 24}
  runs = results['runs']
  assert [(r['model'], r['loss'], r['k']) for r in runs] == [
      ('cnn2d', 'ce', None), ('cnn2d', 'cw', 2), ('cnn2d', 'cw', 3), ('twin', 'ce', None),
      ('twin', 'cw', 3)]
  for r in runs:
    per_snr = r['test']['per_snr']
    assert set(per_snr) == {'0', '12', '14'} and r['test']['count'] == 24
    assert r['average_accuracy'] == pytest.approx(np.mean(list(per_snr.values())))
    assert r['max_accuracy'] == max(per_snr.values())
    assert 1 <= r['epochs_trained'] <= 2 and r['seed'] == 5
    assert r['weights_from'] == (None if r['loss'] == 'ce' else 'cnn2d')

  table1 = results['tables']['table1']
  assert list(table1['rows']) == ['w/o CW loss', 'k = 2', 'k = 3']
  assert table1['columns'] == ['Average acc', 'Max acc']
  assert table1['rows']['k = 2']['Average acc'] == [runs[1]['average_accuracy']]
  table2 = results['tables']['table2']
  assert list(table2['rows']) == ['Twin']
  twin = table2['rows']['Twin']
  assert twin['Avg w/o CW'] == [runs[3]['average_accuracy']]
  assert twin['Max + CW'] == [runs[4]['max_accuracy']]
  assert twin['Δ Avg'] == [pytest.approx(runs[4]['average_accuracy'] -
                                         runs[3]['average_accuracy'])]
  per_snr = results['tables']['per_snr']
  assert per_snr['columns'] == ['0', '12', '14'] and len(per_snr['rows']) == 5

  # The printed tables.
  assert 'Table I: 2D-CNN with the CW loss' in out and 'Table II' in out
  header = next(line for line in out.splitlines() if line.startswith('Model  Avg w/o CW'))
  assert header.split()[1:4] == ['Avg', 'w/o', 'CW']
  assert any(line.startswith('Twin + CW loss (k = 3, 2D-CNN weights)') for line in
             out.splitlines())
  assert next(l for l in out.splitlines() if l.startswith('k = 3')).split()[-2:] == [
      f'{100 * runs[2]["average_accuracy"]:.2f}', f'{100 * runs[2]["max_accuracy"]:.2f}']

  # Files: every result as produced, per-epoch metrics of both stages, the weights.
  lines = (workdir / 'runs.jsonl').read_text().splitlines()
  assert [json.loads(l)['loss'] for l in lines] == ['ce', 'cw', 'cw', 'ce', 'cw']
  metrics = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert len(metrics) == sum(r['epochs_trained'] for r in runs)
  assert all('val_loss' in m for m in metrics)
  ids = np.load(workdir / 'weights' / 'train-ids.npy')
  for k in (2, 3):
    w = np.load(workdir / 'weights' / f'cnn2d-seed5-k{k}.npy')
    assert w.shape == ids.shape == (72,) and np.all((w >= 0) & (w <= 1))
  stats = [json.loads(l) for l in (workdir / 'weights.jsonl').read_text().splitlines()]
  assert [s['k'] for s in stats] == [2, 3] and set(stats[0]['per_snr']) == {'0', '12', '14'}
  assert not (workdir / 'checkpoints').exists()  # removed once results.json is written
  assert_report(workdir, ['accuracy_per_snr', 'confusion', 'confidence_weights'])

  # As if killed after the third result: the same command resumes, retrains only the
  # Table II model, and gives the same results.
  (workdir / 'results.json').unlink()
  (workdir / 'runs.jsonl').write_text(''.join(l + '\n' for l in lines[:3]))
  again = _run(*args, '--noreport')
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.count('done before the interruption') == 3
  resumed = json.loads((workdir / 'results.json').read_text())
  strip = lambda rs: [{k: v for k, v in r.items() if k != 'seconds'} for r in rs]
  assert strip(resumed['runs']) == strip(runs)
  assert resumed['tables'] == results['tables'] and resumed['weights'] == results['weights']
  # The retrained model's epochs were logged before the "kill": a resumed run does not log
  # them twice, so metrics.jsonl is the uninterrupted run's.
  resumed_metrics = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert resumed_metrics == metrics


def test_bad_settings_are_one_line(tmp_path):
  line = one_line_error(run_driver('cwloss', '--ks=1,3', f'--workdir={tmp_path / "w"}'))
  assert 'the top-k entropy needs k >= 2, got k = 1' in line


def test_presets_and_overrides():
  quick = cwloss.CwLossConfig.from_preset('quick')
  paper = cwloss.CwLossConfig.from_preset('paper', seeds=(4,))
  assert (paper.batch_size, paper.learning_rate, paper.patience) == (512, 1e-3, 15)
  assert paper.synthetic_per_cell is None and paper.max_per_cell is None
  assert paper.min_snr is None and paper.seeds == (4,) and paper.epochs >= 100
  assert quick.dataset == 'rml2016.10a' and quick.ks == (2, 3, 4) and quick.table2_k == 3
  assert quick.models == ('resnet', 'cldnn', 'lstm2', 'icamcnet')
  assert quick.weight_model == 'afnet'
  study = cwloss.CwLossConfig.from_preset('study')
  assert (study.batch_size, study.learning_rate, study.min_snr) == (512, 1e-3, None)
  assert study.max_per_cell == 200 and study.synthetic_per_cell is None  # the full file, cut
  assert study.ks == (2, 3, 4) and study.models == ('icamcnet', 'lstm2')
  assert study.seeds == (0,) and (study.epochs, study.patience) == (30, 6)
  assert cwloss.CwLossConfig(models=('IC-AMCNet', 'lstm')).models == (
      'icamcnet', 'lstm2')
  with pytest.raises(ConfigError, match='unknown preset'):
    cwloss.CwLossConfig.from_preset('huge')
  with pytest.raises(ConfigError, match='unknown table'):
    cwloss.CwLossConfig(tables=('table3',))
  with pytest.raises(ConfigError, match='needs a validation split'):
    cwloss.CwLossConfig(validation_fraction=0.0, patience=3)
  with pytest.raises(ConfigError, match='unknown model'):
    cwloss.CwLossConfig(models=('transformer9000',))
