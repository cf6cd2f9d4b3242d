"""The FoQuS study driver: prints the tables from a study folder; bad names are one line."""

import os
import subprocess
import sys
from pathlib import Path

from tests.test_foqus_study import _write

REPO = Path(__file__).resolve().parents[2]


def _run(*args):
  return subprocess.run([sys.executable, '-m', 'experiments.foqus_study', *args], cwd=REPO,
                        env={**os.environ, 'JAX_PLATFORMS': 'cpu'}, capture_output=True,
                        text=True, timeout=120)


def test_prints_the_tables_of_a_study_folder(tmp_path):
  _write(tmp_path, 'table1', [('foqus', 0.01, 0, 0.50)])
  proc = _run(f'--workdir={tmp_path}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '### Table I: CNN1D → CNN1D' in proc.stdout
  assert '| FoQuS | 50.00 / 54.10 | - / 70.66 |' in proc.stdout


def test_unknown_run_and_missing_folder_are_one_line(tmp_path):
  for args, message in (((f'--workdir={tmp_path}', '--run=table9'), "unknown study run 'table9'"),
                        ((f'--workdir={tmp_path / "none"}',), 'no study folder')):
    proc = _run(*args)
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
