"""The ClST/SKD driver at tiny size, its split and its settings.

The smoke test distils a 1D-CNN teacher (``--teacher=cnn1d``) into KD-CNN: ClST takes
~25 s to initialise and ~40 s to compile its train step on the 2-core CPU, which alone
would exceed this file's time budget (the same test with the default ClST teacher took
105 s). ClST itself is tested in ``tests/models/test_clst.py``; the driver code path does
not depend on the teacher's architecture.
"""

import json

import pytest

from amrjax.errors import ConfigError
from amrjax.experiments import clst
from experiments import clst as driver
from tests.helpers import assert_report, one_line_error, run_script


def test_driver_smoke(tiny_spec, tmp_path, capsys):
  workdir = tmp_path / 'run'
  argv = ['clst', f'--dataset={tiny_spec.name}', f'--cache_dir={tmp_path / "cache"}',
          f'--data_dir={tmp_path}', '--synthetic_per_cell=all', '--fractions=0.25',
          '--teacher=cnn1d', '--students=kd-cnn', '--epochs=2', '--teacher_epochs=1',
          '--batch_size=32', '--eval_per_cell=4', '--seeds=3', '--temperature=2',
          '--inference_batch_size=16', '--inference_repeats=2', '--feature_weights=0,1',
          f'--workdir={workdir}']
  driver.main(argv)
  out = capsys.readouterr().out
  assert 'using the synthetic stand-in' in out

  config = json.loads((workdir / 'config.json').read_text())
  assert config['fractions'] == [0.25] and config['students'] == ['kd_cnn']
  assert config['temperature'] == 2 and config['hard_weight'] == 0.1  # default kept
  assert config['preset'] == 'quick' and config['schedule'] == 'cosine'
  assert config['teacher'] == 'cnn1d' and config['feature_weights'] == [0.0, 1.0]

  results = json.loads((workdir / 'results.json').read_text())
  rows = results['table']['rows']
  assert list(rows) == ['1D-CNN (teacher)', 'KD-CNN alone', 'KD-CNN distilled',
                        'KD-CNN distilled (SKD, feature weight 1)']
  assert all(len(cells['25%']) == 1 for cells in rows.values())
  # 4 classes x 3 SNRs x 40 per cell: 10 per cell to train, 4 + 4 per cell held out.
  assert results['splits']['3-0.25'] == {'train': 120, 'validation': 48, 'test': 48}
  runs = results['runs']
  assert [(r['model'], r['role']) for r in runs] == [
      ('cnn1d', 'teacher'), ('kd_cnn', 'alone'), ('kd_cnn', 'distilled'),
      ('kd_cnn', 'distilled-c1')]
  for run in runs:
    assert 0 <= run['test']['accuracy'] <= 1 and run['test']['count'] == 48
    assert run['epochs'] == (1 if run['role'] == 'teacher' else 2)
  assert all(0 <= r['teacher_agreement'] <= 1 for r in runs[2:])
  assert results['models']['kd_cnn']['params'] == 29_259 - 7 * 65  # C = 4, not 11
  for model in results['models'].values():
    assert model['inference']['microseconds_per_sample'] > 0
    assert model['inference']['batch_size'] == 16

  # The printed table: a row per model and role, accuracy per fraction, params, µs/sample.
  header = next(line for line in out.splitlines() if line.startswith('Model'))
  assert header.split() == ['Model', '25%', 'Params', 'µs/sample']
  teacher_row = next(l for l in out.splitlines() if l.startswith('1D-CNN (teacher)'))
  teacher_params = results['models']['cnn1d']['params']
  assert f'{teacher_params:,}' in teacher_row
  assert f'{100 * runs[0]["test"]["accuracy"]:.2f}' in teacher_row
  distilled_row = next(l for l in out.splitlines() if l.startswith('KD-CNN distilled'))
  assert '28,804' in distilled_row
  skd_row = next(l for l in out.splitlines() if l.startswith('KD-CNN distilled (SKD'))
  assert '28,804' in skd_row  # the bare student: the hint projection is not kept

  lines = (workdir / 'runs.jsonl').read_text().splitlines()
  records = [json.loads(line) for line in lines]
  assert [r['record'] for r in records].count('accuracy') == 4
  assert [r['model'] for r in records if r['record'] == 'complexity'] == ['cnn1d', 'kd_cnn']
  metrics = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert len(metrics) == 1 + 2 + 2 + 2  # one line per epoch trained
  assert not (workdir / 'checkpoints').exists()  # removed once results.json is written
  assert_report(workdir, ['accuracy_vs_fraction', 'accuracy_per_snr', 'confusion'])

  # As if killed before the distilled students' results: the same command resumes, reads
  # the first results back, and gives the same table.
  (workdir / 'results.json').unlink()
  (workdir / 'runs.jsonl').write_text(''.join(l + '\n' for l in lines[:4]))
  driver.main(argv + ['--noreport'])
  resumed = json.loads((workdir / 'results.json').read_text())
  assert [r['test'] for r in resumed['runs']] == [r['test'] for r in runs]
  assert resumed['models'] == results['models']  # the timings read back, not remeasured
  records = [json.loads(l) for l in (workdir / 'runs.jsonl').read_text().splitlines()]
  assert [r['record'] for r in records].count('accuracy') == 4


def test_bad_fraction_is_one_line_from_the_real_command_line(tmp_path):
  """``python -m experiments.clst`` for real (the smoke test above runs ``main`` in this
  process): a bad fraction is one line and exit status 2, nothing written."""
  line = one_line_error(run_script('experiments.clst', '--fractions=3',
                                   f'--workdir={tmp_path / "w"}'))
  assert 'training fraction must be in (0, 1)' in line
  assert not (tmp_path / 'w').exists()


def test_presets_and_settings():
  paper = clst.ClstConfig.from_preset('paper', seeds=(1, 2))
  assert paper.fractions == (0.03, 0.05) and paper.epochs == paper.teacher_epochs == 100
  assert paper.batch_size == 256 and paper.learning_rate == 0.01
  assert paper.schedule == 'cosine' and paper.synthetic_per_cell is None
  assert paper.students == ('kd_cnn', 'kd_mobilenet') and paper.seeds == (1, 2)
  quick = clst.ClstConfig.from_preset('quick', students=('KD-MobileNet',))
  assert quick.students == ('kd_mobilenet',) and quick.teacher == 'clst'
  assert quick.distillation_loss(0.0).temperature == 4.0 and quick.feature_weights == (0.0,)
  assert paper.feature_weights == (0.0, 1.0)
  study = clst.ClstConfig.from_preset('study')
  assert study.fractions == paper.fractions and study.batch_size == paper.batch_size
  assert study.learning_rate == 0.001 and study.synthetic_per_cell is None
  assert study.epochs == study.teacher_epochs == 30 and study.eval_per_cell == 100
  assert study.feature_weights == (0.0, 1.0)
  assert study.row_keys()[1:4] == [('kd_cnn', 'alone'), ('kd_cnn', 'distilled'),
                                   ('kd_cnn', 'distilled-c1')]
  assert clst.feature_weight_of('distilled-c0.5') == 0.5
  assert clst.feature_weight_of(clst.distilled_role(0.0)) == 0.0
  with pytest.raises(ConfigError, match='distinct feature weights'):
    clst.ClstConfig(feature_weights=(1.0, 1))
  with pytest.raises(ConfigError, match='must be non-negative'):
    clst.ClstConfig(feature_weights=(-1.0,))
  with pytest.raises(ConfigError, match='unknown preset'):
    clst.ClstConfig.from_preset('huge')
  with pytest.raises(ConfigError, match='unknown ClST setting'):
    clst.ClstConfig.from_preset('quick', rates=(0.1,))
  with pytest.raises(ConfigError, match='temperature must be positive'):
    clst.ClstConfig(temperature=-1.0)
  with pytest.raises(ConfigError, match='unknown model'):
    clst.ClstConfig(students=('vgg99',))
