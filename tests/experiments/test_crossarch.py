"""Cross-architecture evaluation: one selection, several evaluation models (DUSE Table III)."""

import json

import numpy as np

from amrjax.experiments import duse
from tests.helpers import one_line_error, run_driver, run_script


def test_one_selection_trains_every_evaluation_model(tiny_spec, tmp_path):
  config = duse.DuseConfig(
      dataset=tiny_spec.name, cache_dir=str(tmp_path / 'cache'), data_dir=str(tmp_path),
      rates=(0.2, 0.3), seeds=(0,), rounds=1, round_epochs=1, final_epochs=1, batch_size=16,
      max_per_cell=20, target_fraction=0.25, methods=('target', 'random', 'margin'),
      model='cnn1d', eval_models=('1d-cnn', 'kd-cnn', 'cnn1d'))
  assert config.eval_models == ('cnn1d', 'kd_cnn')  # canonical, duplicates dropped
  results = duse.run(config, tmp_path / 'run', log=lambda _: None,
                                write_report=False)
  # Target once per model; random and DUSE once per model and rate.
  runs = results['runs']
  assert len(runs) == 2 * (1 + 2 * 2)
  assert {r['eval_model'] for r in runs} == {'cnn1d', 'kd_cnn'}
  # A selection is shared by the evaluation models: one ids file per method and rate.
  for run in runs:
    if run['method'] != 'target':
      ids = np.load(tmp_path / 'run' / 'selected' / f'{run["method"]}-seed0-r{run["rate"]:g}.npy')
      assert run['train_size'] == len(ids) + results['splits']['0']['target']
  tables = results['tables']
  assert [t['columns'] for t in tables] == [['1D-CNN', 'KD-CNN']] * 2
  assert results['table'] == tables[0] and '20%' in tables[0]['title']
  for table, rate in zip(tables, (0.2, 0.3)):
    for label, cells in table['rows'].items():
      for column, accs in cells.items():
        method = next(m for m in config.methods if config.method_label(m) == label)
        eval_model = {'1D-CNN': 'cnn1d', 'KD-CNN': 'kd_cnn'}[column]
        expected = [r['test']['accuracy'] for r in runs
                    if r['method'] == method and r['eval_model'] == eval_model
                    and r['rate'] in (None, rate)]
        assert accs == expected and len(accs) == 1


def test_driver_defaults_and_flags(tmp_path):
  workdir = tmp_path / 'run'
  proc = run_driver(
      'crossarch', '--dataset=rml2016.10a', '--synthetic_per_cell=20',
      f'--cache_dir={tmp_path / "cache"}', f'--data_dir={tmp_path}', '--seeds=0',
      '--round_epochs=1', '--final_epochs=1', '--rounds=1', '--batch_size=32',
      '--target_fraction=0.05', '--eval_models=kd_cnn,cnn1d', '--methods=random',
      f'--workdir={workdir}', '--noreport')
  assert proc.returncode == 0, proc.stderr[-2000:]
  config = json.loads((workdir / 'config.json').read_text())
  assert config['rates'] == [0.04] and config['eval_models'] == ['kd_cnn', 'cnn1d']
  assert config['methods'] == ['random'] and config['model'] == 'cnn2d'
  assert 'Method / evaluation model' in proc.stdout and '1D-CNN' in proc.stdout


def test_the_real_command_line_refuses_a_bad_seed_in_one_line(tmp_path):
  """``python -m experiments.crossarch`` for real (the test above runs ``main`` in this
  process)."""
  line = one_line_error(run_script('experiments.crossarch', '--seeds=-1',
                                   f'--workdir={tmp_path / "w"}'))
  assert 'seeds must be integers >= 0, got -1' in line
  assert not (tmp_path / 'w').exists()
