"""The DUSE study's tables: read from run directories, ours beside the paper's."""

import dataclasses
import json

import pytest

from amrjax.errors import ConfigError
from amrjax.experiments import duse_study
from amrjax.experiments.rundir import RunDir


def _write(root, name, records, counts=None, **changes):
  """A run directory of the named study run holding ``records`` (method, rate, seed, acc),
  with ``counts[method]`` as the training sets' class counts where given."""
  config = dataclasses.asdict(duse_study.config_of(name))
  config.update(changes)
  run_dir = RunDir(root / name)
  run_dir.start(config, log=lambda _: None)
  for method, rate, seed, accuracy in records:
    run_dir.append_jsonl('runs.jsonl', {'method': method, 'rate': rate, 'seed': seed,
                                        'eval_model': config['model'],
                                        'test': {'accuracy': accuracy},
                                        'seconds': 10.0,
                                        'class_counts': (counts or {}).get(method, [1, 1])})


def test_every_named_run_is_a_valid_study_config():
  for name in duse_study.RUNS:
    config = duse_study.config_of(name)
    assert config.preset == 'study' and config.dataset == 'rml2016.10a'
    assert config.model == ('cnn2d' if name.startswith('cnn2d-') else 'cnn1d')
  cnn2d = [duse_study.config_of(n) for n in duse_study.RUNS if n.startswith('cnn2d-')]
  assert sorted((c.setting, c.seeds) for c in cnn2d) == [
      (setting, (s,)) for setting in ('balance', 'imbalance') for s in (0, 1, 2)]
  assert all(c.methods == ('target', 'random', 'duse_oneshot', 'duse') for c in cnn2d)
  with pytest.raises(ConfigError, match='unknown study run'):
    duse_study.config_of('table9')


def test_tables_pair_seeds_and_keep_variants_apart(tmp_path):
  _write(tmp_path, 'table1-seed0', [('target', None, 0, 0.40), ('random', 0.04, 0, 0.60),
                                    ('margin', 0.04, 0, 0.50), ('duse', 0.04, 0, 0.64)],
         counts={'target': [3, 3], 'margin': [4, 20], 'duse': [9, 10]})
  _write(tmp_path, 'table1-seed1', [('target', None, 1, 0.42), ('random', 0.04, 1, 0.66),
                                    ('margin', 0.04, 1, 0.52), ('duse', 0.04, 1, 0.66)],
         counts={'target': [3, 3], 'margin': [3, 21], 'duse': [8, 11]})
  # DUSE w/o active learning counts as Margin (the same selection).
  _write(tmp_path, 'table1-seed2-key', [('duse_oneshot', 0.04, 2, 0.54), ('duse', 0.04, 2, 0.58)])
  _write(tmp_path, 'retrain', [('duse', 0.04, 0, 0.61), ('duse', 0.04, 1, 0.70)])
  _write(tmp_path, 'rounds2', [('duse', 0.04, 0, 0.62)])
  # Another data scale: named, not mixed in.
  _write(tmp_path, 'geometric', [('duse', 0.04, 0, 0.99)], final_epochs=5)

  results = duse_study.collect(tmp_path)
  assert results.cell('imbalance', 'margin', 0.04) == pytest.approx({0: 50, 1: 52, 2: 54})
  assert results.cell('imbalance', 'duse', 0.04) == pytest.approx({0: 64, 1: 66, 2: 58})
  assert results.cell('imbalance', 'duse', 0.04, 'scorer retrained each round') == \
      pytest.approx({0: 61, 1: 70})
  assert results.cell('imbalance', 'duse', 0.04, 'R = 2') == pytest.approx({0: 62})
  assert results.skipped == ['geometric (differs in final_epochs)']
  # A finished run on another version of the synthetic generator is left out as well.
  (tmp_path / 'rounds2' / 'results.json').write_text(json.dumps(
      {'data': {'kind': 'synthetic', 'generator_version': 1}}))
  assert duse_study.collect(tmp_path).skipped == ['geometric (differs in final_epochs)',
                                                  'rounds2 (differs in generator version 1)']
  (tmp_path / 'rounds2' / 'results.json').unlink()

  sections = duse_study.report(tmp_path).split('### ')
  table1, rounds, protocol = (
      {line.split(' | ')[0].strip('| '): line for line in section.splitlines()
       if line.startswith('| ')}
      for section in (sections[1], sections[3], sections[4]))
  # DUSE - random over seeds 0 and 1 only (seed 2 has no random run): +4 and 0.
  assert '2.00 ± 2.00 (2)' in table1['DUSE − Random expansion, paired']
  assert '62.67 ± 3.40 (3)' in table1['DUSE (R = 4)']  # 64, 66, 58
  assert '68.07 ± 2.41' in table1['DUSE (R = 4)']  # the paper's cell beside ours
  assert '41.00 ± 1.00 (2)' in table1['Target only (1 %)']
  # What each class gained from D_A (training counts minus D_T's), over seeds 0 and 1.
  assert table1['Margin'].endswith('| 0-18 |') and table1['DUSE (R = 4)'].endswith('| 5-8 |')
  # Paired: retrained - continued = -3 and +4.
  assert '0.50 ± 3.50 (2)' in protocol['DUSE, scorer retrained from scratch each round']
  assert rounds['2'].split(' | ')[1] == '62.00 ± 0.00 (1)'
  assert rounds['1'].split(' | ')[1] == '52.00 ± 1.63 (3)'


def test_disagreeing_duplicates_are_refused(tmp_path):
  _write(tmp_path, 'table1-seed0', [('duse', 0.04, 0, 0.64)])
  _write(tmp_path, 'table1-seed2-key', [('duse', 0.04, 0, 0.60)], seeds=[0])
  with pytest.raises(ConfigError, match='gave 60.00 here and 64.00'):
    duse_study.collect(tmp_path)


def test_the_2d_cnn_rows_stand_beside_the_1d_cnns_and_stay_out_of_its_tables(tmp_path):
  _write(tmp_path, 'table1-seed0', [('target', None, 0, 0.40), ('duse_oneshot', 0.04, 0, 0.50),
                                    ('duse', 0.04, 0, 0.64)],
         counts={'target': [3, 3], 'duse_oneshot': [4, 20], 'duse': [9, 10]})
  _write(tmp_path, 'cnn2d-imbalance-seed0', [('target', None, 0, 0.30),
                                             ('duse_oneshot', 0.04, 0, 0.45),
                                             ('duse', 0.04, 0, 0.55)],
         counts={'target': [3, 3], 'duse_oneshot': [3, 27], 'duse': [10, 10]})
  _write(tmp_path, 'cnn2d-balance-seed0', [('duse', 0.09, 0, 0.70)], seeds=[0])
  one, two = duse_study.collect(tmp_path), duse_study.collect(tmp_path, 'cnn2d')
  assert one.cell('imbalance', 'margin', 0.04) == pytest.approx({0: 50})
  assert two.cell('imbalance', 'margin', 0.04) == pytest.approx({0: 45})
  assert two.cell('balance', 'duse', 0.09) == pytest.approx({0: 70})
  assert one.skipped == two.skipped == []
  section = duse_study.report(tmp_path).split("### The paper's 2D-CNN")[1]
  rows = {line.split(' | ')[0].strip('| '): line.split(' | ') for line in section.splitlines()
          if line.startswith('| imbalance') or line.startswith('| balance')}
  margin = rows['imbalance: Margin']
  assert margin[1:4] == ['50.00 ± 0.00 (1)', '45.00 ± 0.00 (1)', '47.76 ± 7.51']
  assert margin[-2] == '1-17 / 0-24'  # added per class at 4 %: 1D-CNN / 2D-CNN
  assert rows['imbalance: DUSE − Margin, paired'][1:3] == ['14.00 ± 0.00 (1)',
                                                          '10.00 ± 0.00 (1)']
  # Another model's run directory is named, not mixed in.
  _write(tmp_path, 'table1-seed1', [('duse', 0.04, 1, 0.9)], model='resnet')
  assert duse_study.collect(tmp_path).skipped == ['table1-seed1 (differs in model)']
