"""The study drivers: print the tables from a study folder; bad run names are one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import test_duse_study, test_foqus_study

REPO = Path(__file__).resolve().parents[2]


def _run(driver, *args):
  return subprocess.run([sys.executable, '-m', f'experiments.{driver}', *args], cwd=REPO,
                        env={**os.environ, 'JAX_PLATFORMS': 'cpu'}, capture_output=True,
                        text=True, timeout=120)


def test_duse_study_prints_the_tables_of_a_study_folder(tmp_path):
  test_duse_study._write(tmp_path, 'table1-seed0',
                         [('target', None, 0, 0.40), ('duse', 0.09, 0, 0.70)])
  proc = _run('duse_study', f'--workdir={tmp_path}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '### Table I: class imbalance' in proc.stdout
  assert '| DUSE (R = 4) | - | 68.07 ± 2.41 | 70.00 ± 0.00 (1) | 75.18 ± 2.11 |' in proc.stdout


def test_foqus_study_prints_the_tables_of_a_study_folder(tmp_path):
  test_foqus_study._write(tmp_path, 'table1', [('foqus', 0.01, 0, 0.50)])
  proc = _run('foqus_study', f'--workdir={tmp_path}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '### Table I: CNN1D → CNN1D' in proc.stdout
  assert '| FoQuS | 50.00 / 54.10 | - / 70.66 |' in proc.stdout


@pytest.mark.parametrize('driver', ['duse_study', 'foqus_study'])
def test_unknown_run_and_missing_folder_are_one_line(driver, tmp_path):
  for args, message in (((f'--workdir={tmp_path}', '--run=table9'), "unknown study run 'table9'"),
                        ((f'--workdir={tmp_path / "none"}',), 'no study folder')):
    proc = _run(driver, *args)
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
