"""The code passes ruff (its settings: pyproject.toml's [tool.ruff]), so the style is checked
by the test command."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_passes():
  proc = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', '.'], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
