"""The study drivers: print the tables from a study folder; bad run names are one line. The
commands run in this process (``tests.helpers.run_driver``); ``python -m`` once for real."""

from pathlib import Path

import pytest

from tests import test_duse_study, test_foqus_study
from tests.helpers import one_line_error, run_driver, run_script


def _commands(driver: str, folder: Path) -> list[list[str]]:
  """The arguments of three commands: tabulate a study folder (written here), an unknown
  run name, a missing folder."""
  if driver == 'duse_study':
    test_duse_study._write(folder, 'table1-seed0',
                           [('target', None, 0, 0.40), ('duse', 0.09, 0, 0.70)])
  else:
    test_foqus_study._write(folder, 'table1', [('foqus', 0.01, 0, 0.50)])
  return [[f'--workdir={folder}'], [f'--workdir={folder}', '--run=table9'],
          [f'--workdir={folder / "none"}']]


@pytest.fixture(scope='module', params=['duse_study', 'foqus_study'])
def runs(request, tmp_path_factory):
  """The three commands of ``_commands``, each run in this process."""
  folder = tmp_path_factory.mktemp(request.param)
  return request.param, [run_driver(request.param, *args)
                         for args in _commands(request.param, folder)]


def test_the_tables_of_a_study_folder_are_printed(runs):
  driver, (tables, _, _) = runs
  assert tables.returncode == 0, tables.stderr[-2000:]
  if driver == 'duse_study':
    assert '### Table I: class imbalance' in tables.stdout
    assert ('| DUSE (R = 4) | - | 68.07 ± 2.41 | 70.00 ± 0.00 (1) | 75.18 ± 2.11 |'
            in tables.stdout)
  else:
    assert '### Table I: CNN1D → CNN1D' in tables.stdout
    assert '| FoQuS | 50.00 / 54.10 | - / 70.66 |' in tables.stdout


def test_unknown_run_and_missing_folder_are_one_line(runs):
  _, (_, unknown, missing) = runs
  assert "unknown study run 'table9'" in one_line_error(unknown)
  assert 'no study folder' in one_line_error(missing)


@pytest.mark.parametrize('driver', ['duse_study', 'foqus_study'])
def test_the_real_command_line_prints_the_tables(driver, tmp_path):
  """``python -m experiments.<driver>`` for real: the tables of a study folder."""
  proc = run_script(f'experiments.{driver}', *_commands(driver, tmp_path)[0])
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '### Table I' in proc.stdout
