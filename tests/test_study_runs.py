"""Reading a study folder: matching run directories, cut-off lines, conflicting cells."""

import json

import pytest

from amrjax.errors import ConfigError
from amrjax.experiments import study_runs


def test_reads_matching_run_directories_and_names_the_others(tmp_path):
  study = {'epochs': 50, 'dataset': 'x'}
  for name, config in (('a', {'epochs': 50, 'dataset': 'x'}), ('b', {'epochs': 5, 'dataset': 'x'})):
    (tmp_path / name).mkdir()
    (tmp_path / name / 'config.json').write_text(json.dumps(config))
  # A line cut off by a kill is left out; the run redoes it when resumed.
  (tmp_path / 'a' / 'runs.jsonl').write_text('{"seed": 0}\n{"seed": 1')
  skipped = []
  read = list(study_runs.read(tmp_path, study, ('epochs', 'dataset'), skipped))
  assert read == [('a', {'epochs': 50, 'dataset': 'x'}, [{'seed': 0}])]
  assert skipped == ['b (differs in epochs)']


def test_a_cell_measured_twice_must_agree():
  cells = {}
  study_runs.put(cells, ('m', 0.1), 0, 50.0, 'a')
  study_runs.put(cells, ('m', 0.1), 0, 50.0, 'b')  # the same result again: fine
  with pytest.raises(ConfigError, match='b: .* seed 0 gave 51.00 here and 50.00'):
    study_runs.put(cells, ('m', 0.1), 0, 51.0, 'b')
  assert study_runs.markdown(['A', 'B'], [['1', '2']]) == '| A | B |\n|---|---|\n| 1 | 2 |'
