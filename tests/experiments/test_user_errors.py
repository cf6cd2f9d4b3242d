"""User errors common to every driver: one line on stderr, exit status 2, and a
run directory that a corrected command can use.

- A bad or unknown flag value (absl's own parser) follows the same rule as every other user
  error.
- Seeds must be integers >= 0, given once each; an empty method list is refused.
- A run refused for its settings, its data or its splits writes nothing into --workdir (no
  config.json the corrected command would be refused against).
- (Class, SNR) cells a data file lacks are recorded in results.json and the report.
"""

import pytest

from amrjax.errors import ConfigError
from amrjax.experiments import clst, foqus, cwloss, duse, common
from amrjax.reporting import run_report
from tests.helpers import one_line_error, run_driver, write_rml2016_without_cells

CONFIGS = {'duse': duse.DuseConfig, 'foqus': foqus.CoresetConfig,
           'cwloss': cwloss.CwLossConfig, 'clst': clst.ClstConfig}
RUNS = {'duse': duse.run, 'foqus': foqus.run,
        'cwloss': cwloss.run, 'clst': clst.run}


def _one_line_error(driver, *args) -> str:
  return one_line_error(run_driver(driver, *args))


@pytest.mark.parametrize('driver,flag,message', [
    ('duse', '--preset=x', 'flag --preset=x: value should be one of <quick|paper|study>'),
    ('foqus', '--progress=x', 'flag --progress=x: value should be one of'),
    ('cwloss', '--epochs=ten', 'flag --epochs=ten'),
    ('crossarch', '--no_such_flag=1', "Unknown command line flag 'no_such_flag'"),
])
def test_flag_parsing_errors_exit_2_with_one_line(driver, flag, message, tmp_path):
  line = _one_line_error(driver, flag, f'--workdir={tmp_path / "w"}')
  assert message in line and 'see --help' in line
  assert not (tmp_path / 'w').exists()


def test_a_negative_seed_is_one_line_from_the_driver(tmp_path):
  line = _one_line_error('crossarch', '--seeds=-1', f'--workdir={tmp_path / "w"}')
  assert 'seeds must be integers >= 0, got -1' in line
  assert not (tmp_path / 'w').exists()
  line = _one_line_error('foqus', '--split_seed=-1', f'--workdir={tmp_path / "w"}')
  assert 'split_seed must be an integer >= 0, got -1' in line
  assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('name', sorted(CONFIGS))
@pytest.mark.parametrize('seeds,message', [((-1,), 'integers >= 0'),
                                           ((), 'at least one seed'),
                                           ((0, 1, 0), 'seeds repeat')])
def test_bad_seeds_are_refused_by_every_config(name, seeds, message):
  with pytest.raises(ConfigError, match=message):
    CONFIGS[name].from_preset('quick', seeds=seeds)


@pytest.mark.parametrize('name', ['duse', 'foqus', 'cwloss'])
def test_a_negative_split_seed_is_refused(name):
  with pytest.raises(ConfigError, match='split_seed must be an integer >= 0, got -3'):
    CONFIGS[name].from_preset('quick', split_seed=-3)


@pytest.mark.parametrize('name', ['duse', 'foqus'])
def test_an_empty_method_list_is_refused(name):
  with pytest.raises(ConfigError, match='give at least one method'):
    CONFIGS[name].from_preset('quick', methods=())


def test_bad_training_settings_are_refused_with_the_config():
  with pytest.raises(ConfigError, match='invalid training settings'):
    duse.DuseConfig.from_preset('quick', batch_size=0)


@pytest.mark.parametrize('name,overrides,message', [
    ('duse', dict(min_snr=100), 'no vectors have SNR > 100'),
    ('duse', dict(target_fraction=0.0001), 'fewer than one per class'),
    ('foqus', dict(batch_size=0, rates=(0.3,)), 'invalid training settings'),
    ('foqus', dict(min_snr=100), 'no vectors have SNR > 100'),
    ('cwloss', dict(max_per_cell=1), r'too small for a 80% / 20% train / test split'),
    ('cwloss', dict(min_snr=100), 'no vectors have SNR > 100'),
    ('clst', dict(min_snr=100), 'no vectors have SNR > 100'),
])
def test_a_refused_run_leaves_nothing_in_the_workdir(name, overrides, message, tmp_path):
  config = CONFIGS[name].from_preset('quick', dataset='rml2016.10a', synthetic_per_cell=5,
                                     cache_dir=str(tmp_path / 'cache'),
                                     data_dir=str(tmp_path / 'data'), **overrides)
  workdir = tmp_path / 'w'
  with pytest.raises(ConfigError, match=message):
    RUNS[name](config, workdir, log=lambda _: None, write_report=False)
  assert not workdir.exists() or not any(workdir.iterdir())


def test_missing_cells_of_the_file_go_into_the_results_data_record(tmp_path):
  write_rml2016_without_cells(tmp_path, {('QPSK', 4), ('8PSK', -20)}, per_cell=5)
  config = duse.DuseConfig.from_preset('quick', dataset='rml2016.10a',
                                                  data_dir=str(tmp_path))
  notes = []
  data = common.load_dataset(config, notes.append)
  assert data.origin['missing_cells'] == [['8PSK', -20], ['QPSK', 4]]  # results.json 'data'
  assert any('2 of 220 (class, SNR) cells hold no vectors' in n for n in notes)
  section = run_report._data_section({'data': data.origin, 'dataset': {'name': 'x'}})
  assert '- (Class, SNR) cells absent from the file: 8PSK at -20 dB, QPSK at 4 dB' in section
