"""End-to-end: the FoQuS experiment at tiny size, its tables and files, its one-line errors."""

import json

import numpy as np
import pytest

from amrjax.errors import ConfigError
from amrjax.experiments import foqus
from tests.helpers import assert_report, one_line_error, run_script


def test_coresets_are_selected_trained_on_and_tabulated(tiny_spec, tmp_path):
  config = foqus.CoresetConfig(
      dataset=tiny_spec.name, cache_dir=str(tmp_path / 'cache'), data_dir=str(tmp_path),
      rates=(0.25, 0.5), seeds=(0,), selection_models=('2d-cnn',), min_snr=None,
      methods=('uniform', 'margin', 'foqus', 'full', 'foqus:quality+forgetting'),
      selection_epochs=2, eval_epochs=1, batch_size=16, max_per_cell=20)
  assert config.methods == ('uniform', 'margin', 'foqus', 'full', 'foqus:forgetting+quality')
  assert config.pairs() == [('cnn2d', 'cnn2d')]
  results = foqus.run(config, tmp_path / 'run', log=lambda _: None)
  train_size = results['splits']['train']
  runs = results['runs']
  assert len(runs) == 1 + 4 * 2  # the full set once, then 4 methods x 2 rates
  for run in runs:
    assert 0 <= run['test']['accuracy'] <= 1
    if run['method'] == 'full':
      assert run['train_size'] == train_size
      continue
    budget = round(run['rate'] * train_size)
    assert run['train_size'] == budget
    assert max(run['class_counts']) - min(run['class_counts']) <= 1
    name = run['method'].replace(':', '-')
    ids = np.load(tmp_path / 'run' / 'selected' / f'{name}-cnn2d-seed0-r{run["rate"]:g}.npy')
    assert len(np.unique(ids)) == budget
  table = results['table']
  assert table['columns'] == ['25%', '50%', 'Avg']
  assert '2D-CNN -> 2D-CNN' in table['title']
  margin = next(r for r in runs if r['method'] == 'margin' and r['rate'] == 0.25)
  other = next(r for r in runs if r['method'] == 'margin' and r['rate'] == 0.5)
  avg = table['rows']['Margin']['Avg']
  assert avg == pytest.approx([(margin['test']['accuracy'] + other['test']['accuracy']) / 2])
  full = table['rows']['Full training set']
  assert full['25%'] == full['50%'] and 'FoQuS: Forgetting + Quality' in table['rows']
  lines = (tmp_path / 'run' / 'runs.jsonl').read_text().splitlines()
  assert len(lines) == len(runs)
  assert json.loads((tmp_path / 'run' / 'config.json').read_text())['rates'] == [0.25, 0.5]
  assert_report(tmp_path / 'run', ['accuracy_vs_rate', 'accuracy_per_snr', 'confusion'])
  # Run again in the same folder: every evaluation is read back, none is retrained.
  (tmp_path / 'run' / 'results.json').unlink()
  metrics = tmp_path / 'run' / 'metrics.jsonl'
  evaluations = metrics.read_text().count('"phase": "evaluation"')
  messages = []
  again = foqus.run(config, tmp_path / 'run', log=messages.append,
                                 write_report=False)
  assert [r['test'] for r in again['runs']] == [r['test'] for r in runs]
  assert again['table']['rows'] == table['rows']
  assert any('resuming the run' in m and f'{len(runs)} result(s)' in m for m in messages)
  assert metrics.read_text().count('"phase": "evaluation"') == evaluations  # none retrained


def test_study_preset_is_the_paper_scale_cut_to_seven_methods_and_one_seed():
  study = foqus.CoresetConfig.from_preset('study')
  paper = foqus.CoresetConfig.from_preset('paper')
  for field in ('rates', 'selection_epochs', 'eval_epochs', 'batch_size', 'max_per_cell',
                'synthetic_per_cell', 'min_snr'):
    assert getattr(study, field) == getattr(paper, field), field
  assert study.seeds == (0,) and study.selection_models == ('cnn1d',)
  assert set(study.methods) == {'foqus', 'uniform', 'herding', 'forgetting', 'cd', 'grand',
                                'kcenter'}
  ablation = foqus.CoresetConfig.from_preset('study', ablation=True)
  assert len(ablation.methods) == 7 and 'foqus' in ablation.methods  # Table V's rows


def test_settings_are_checked_before_any_training():
  with pytest.raises(ConfigError, match='at least 2 selection epochs'):
    foqus.CoresetConfig(selection_epochs=1)
  with pytest.raises(ConfigError, match='unknown FoQuS setting'):
    foqus.CoresetConfig.from_preset('quick', rounds=3)
  with pytest.raises(ConfigError, match='unknown evaluation schedule'):
    foqus.CoresetConfig(eval_schedule='step')
  config = foqus.CoresetConfig(ablation=True, selection_models=('cnn1d',),
                                            eval_models=('cnn2d', 'signet'))
  assert config.methods[-1] == 'foqus' and len(config.methods) == 7
  assert config.pairs() == [('cnn1d', 'cnn2d'), ('cnn1d', 'signet')]


def test_driver_errors_are_one_line_from_the_real_command_line(tmp_path):
  """``python -m experiments.foqus`` for real (the other tests run the library)."""
  line = one_line_error(run_script('experiments.foqus', '--methods=uniform,foqus:margin',
                                   f'--workdir={tmp_path / "w"}'))
  assert line.startswith('error: FoQuS components')
  assert not (tmp_path / 'w').exists()
