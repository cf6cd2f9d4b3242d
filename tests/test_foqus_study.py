"""The FoQuS study's tables: read from run directories, ours beside the paper's."""

import dataclasses
import json

import pytest

from amrjax.errors import ConfigError
from amrjax.experiments import foqus_study
from amrjax.experiments.rundir import RunDir


def _write(root, name, records, eval_model='cnn1d', **changes):
  """A run directory of the named study run holding ``records`` (method, rate, seed, acc)."""
  config = dataclasses.asdict(foqus_study.config_of(name))
  config.update(changes)
  run_dir = RunDir(root / name)
  run_dir.start(config, log=lambda _: None)
  for method, rate, seed, accuracy in records:
    run_dir.append_jsonl('runs.jsonl', {
        'method': method, 'rate': rate, 'seed': seed, 'selection_model': 'cnn1d',
        'eval_model': eval_model, 'test': {'accuracy': accuracy}, 'seconds': 10.0})


def test_every_named_run_is_a_valid_study_config():
  for name in foqus_study.RUNS:
    config = foqus_study.config_of(name)
    assert config.preset == 'study' and config.dataset == 'rml2016.10a'
    assert config.selection_models == ('cnn1d',)
  assert foqus_study.config_of('table5').methods == foqus_study.coreset.ablation_methods()
  with pytest.raises(ConfigError, match='unknown study run'):
    foqus_study.config_of('table9')


def test_tables_put_ours_beside_the_paper_and_keep_tier_shares_apart(tmp_path):
  rates = foqus_study.RATES
  _write(tmp_path, 'table1',
         [('uniform', r, 0, 0.50 + i / 100) for i, r in enumerate(rates)] +
         [('herding', r, 0, 0.55 + i / 100) for i, r in enumerate(rates)] +
         [('foqus', r, 0, 0.52 + i / 100) for i, r in enumerate(rates)] +
         [('cd', 0.01, 0, 0.60)] +  # a row not finished: no Avg
         [(foqus_study.cx.FULL, None, 0, 0.90)])  # the full set is not a table row
  _write(tmp_path, 'tiers-top', [('foqus', r, 0, 0.40) for r in rates])
  _write(tmp_path, 'table5', [('foqus:quality', 0.01, 0, 0.33), ('foqus', 0.01, 0, 0.52)])
  _write(tmp_path, 'table4-signet', [('foqus', 0.01, 0, 0.44)], eval_model='signet')
  # Another evaluation length: named, not mixed in.
  _write(tmp_path, 'tiers-thirds', [('foqus', 0.01, 0, 0.99)], eval_epochs=5)
  # The same cell measured twice must agree: Table V's FoQuS at 1 % is Table I's.
  results = foqus_study.collect(tmp_path)
  assert results.cell('foqus', 0.01) == pytest.approx({0: 52})
  assert results.cell('foqus', 0.01, 'shares 0.8/0.1/0.1') == pytest.approx({0: 40})
  assert results.cell('foqus', 0.01, evaluation='signet') == pytest.approx({0: 44})
  assert results.average('herding') == pytest.approx({0: 57})
  assert results.average('cd') == {}
  assert results.skipped == ['tiers-thirds (differs in eval_epochs)']

  sections = foqus_study.report(tmp_path).split('### ')
  rows = [{line.split(' | ')[0].strip('| '): line.split(' | ') for line in section.splitlines()
           if line.startswith('| ')} for section in sections[1:5]]
  table1, table5, tiers, table4 = rows
  assert table1['FoQuS'][1] == '52.00 / 54.10' and table1['FoQuS'][6] == '54.00 / 74.56 |'
  assert table1['CD'][1] == '60.00 / 44.20' and table1['CD'][6].startswith('- /')
  assert table1['FoQuS − Uniform'][1] == '+2.00 / +25.03'
  # The best measured baseline of the 1 % column is CD (60), of Avg Herding (57).
  assert table1['FoQuS − best baseline'][1] == '-8.00 (CD) / +9.90 (CD)'
  assert table1['FoQuS − best baseline'][6].startswith('-3.00 (Herding)')
  assert table5['FoQuS: Quality'][1] == '33.00' and table5['FoQuS: Quality'][2] == '? |'
  assert table5['FoQuS'][2] == '54.10 |'
  assert tiers['FoQuS, shares 0.8/0.1/0.1'][6] == '40.00 |'
  assert tiers['FoQuS, shares 0.5/0.3/0.2 (default)'][1] == '52.00'
  assert table4['CNN1D → SigNet, FoQuS'][1] == '44.00 / 68.31'

  _write(tmp_path, 'table1-rest', [('foqus', 0.01, 0, 0.51)])
  with pytest.raises(ConfigError, match='gave 51.00 here and 52.00'):
    foqus_study.collect(tmp_path)
  # A finished run on another version of the synthetic generator is left out.
  (tmp_path / 'table1-rest' / 'results.json').write_text(json.dumps(
      {'data': {'kind': 'synthetic', 'generator_version': 1}}))
  assert 'table1-rest (differs in generator version 1)' in foqus_study.collect(tmp_path).skipped
