"""Small builders shared by the tests."""

import contextlib
import importlib
import io
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

from amrjax.data import formats, specs
from amrjax.data.pool import SignalPool
from amrjax.reporting import plots
from tests.xla_env import xla_flags


def random_pool(n=64, num_classes=4, length=128, seed=0, snrs=(12, 14)) -> SignalPool:
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, 2, length)).astype(np.float32)
  y = np.arange(n) % num_classes
  snr = np.asarray(snrs)[np.arange(n) % len(snrs)]
  return SignalPool.from_arrays(x, y, snr, tuple(f'c{i}' for i in range(num_classes)))


def write_rml2016_without_cells(folder, missing, per_cell=1):
  """An RML2016.10a pickle in ``folder`` with ``per_cell`` random vectors in every (class,
  SNR) cell but the ``missing`` ones; returns its path."""
  spec = specs.get_spec('rml2016.10a')
  rng = np.random.default_rng(0)
  cells = {(name, snr): rng.standard_normal((per_cell, 2, 128)).astype(np.float32)
           for name in spec.names_in_file for snr in spec.snrs if (name, snr) not in missing}
  return formats.write_rml2016_pickle(folder / spec.file_name, cells)


REPO = Path(__file__).resolve().parents[1]


def run_driver(driver: str, *args: str) -> types.SimpleNamespace:
  """``python -m experiments.<driver> *args`` run in this process (``main(argv)``, its flags
  its own): its ``returncode`` (the ``SystemExit`` status, 0 when it returns), ``stdout``
  and ``stderr``, as :func:`one_line_error` reads a process. An exception other than
  ``SystemExit`` propagates: a traceback is never a driver's answer."""
  module = importlib.import_module(f'experiments.{driver}')
  out, err, code = io.StringIO(), io.StringIO(), 0
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      module.main([driver, *args])
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else int(e.code is not None)
  return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def run_script(module: str, *args: str, env: dict | None = None, cwd=REPO,
               timeout: float = 300) -> subprocess.CompletedProcess:
  """``python -m <module> *args`` for real, in a subprocess with one XLA compute thread and
  one CPU device (``tests/xla_env.py``): the command line a user types, start-up included."""
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'XLA_FLAGS': xla_flags(), **(env or {})}
  return subprocess.run([sys.executable, '-m', module, *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=timeout)


def one_line_error(proc) -> str:
  """The single stderr line of a driver that refused its input: exit status 2, one line
  starting with 'error: ', no traceback."""
  lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
  assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr[-2000:])
  assert lines[0].startswith('error: ') and 'Traceback' not in proc.stderr, proc.stderr
  return lines[0]


def assert_report(workdir, plot_names):
  """The run left report.md with these plots, each a valid PNG the report links to."""
  text = (workdir / 'report.md').read_text()
  for name in plot_names:
    assert f'(plots/{name}.png)' in text, name
    assert plots.is_png(workdir / 'plots' / f'{name}.png'), name
  return text
