"""Small builders shared by the tests."""

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np

from amrjax.data import formats, specs
from amrjax.data.pool import SignalPool
from amrjax.reporting import plots


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

# Runs experiments.<argv[1]> once per argument list of the JSON argv[2], in this one process,
# its flags reset in between, and prints each run's exit status, stdout and stderr as JSON.
_DRIVER_RUNS = textwrap.dedent('''
    import contextlib, importlib, io, json, sys, traceback
    from absl import flags
    from experiments import common
    name, runs = sys.argv[1], json.loads(sys.argv[2])
    driver = importlib.import_module('experiments.' + name)
    results = []
    for args in runs:
      flags.FLAGS.unparse_flags()
      sys.argv = [name, *args]
      out, err, code = io.StringIO(), io.StringIO(), 0
      with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
          common.main(driver.main)
        except SystemExit as e:
          code = e.code if isinstance(e.code, int) else int(e.code is not None)
        except Exception:
          traceback.print_exc()
          code = 1
      results.append({'returncode': code, 'stdout': out.getvalue(), 'stderr': err.getvalue()})
    print('RESULTS ' + json.dumps(results))
    ''')


def driver_runs(driver: str, runs: list[list[str]], *, env: dict,
                timeout: float = 300) -> list[types.SimpleNamespace]:
  """``python -m experiments.<driver> *args`` for each ``args`` of ``runs``, all in one
  subprocess (one Python and JAX start-up, ~2.5 s, instead of one per run): each run's
  ``returncode``, ``stdout`` and ``stderr`` (what Python wrote to them), as
  :func:`one_line_error` reads a process. For short runs (refused commands, printed
  tables); the real command line is tested per driver too."""
  proc = subprocess.run([sys.executable, '-c', _DRIVER_RUNS, driver, json.dumps(runs)],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
  line = next((l for l in proc.stdout.splitlines() if l.startswith('RESULTS ')), None)
  assert proc.returncode == 0 and line, (proc.returncode, proc.stderr[-3000:])
  return [types.SimpleNamespace(**r) for r in json.loads(line[len('RESULTS '):])]


def one_line_error(proc) -> str:
  """The single stderr line of a driver that refused its input: exit status 2, one line
  starting with 'error: ', no traceback."""
  lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
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
