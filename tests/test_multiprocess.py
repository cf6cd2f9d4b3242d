"""Two jax.distributed processes on this machine (CPU collectives) select what one does.

The test launches two worker processes (tests/multiprocess_worker.py), each with two CPU
devices, bounded in time; each scores only its slice of the pool, and both must return
every score and the single-process top k.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amrjax import parallel
from amrjax.errors import ConfigError
from amrjax.scoring import pools
from amrjax.selection import select
from tests.multiprocess_setup import BATCH, K, scorer_and_pool
from tests.xla_env import xla_flags

TIMEOUT_S = 240
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _run_workers(tmp_path, num_processes=2):
  port = str(_free_port())
  env = {**os.environ, 'XLA_FLAGS': xla_flags(devices=2),
         'JAX_PLATFORMS': 'cpu'}
  outs = [tmp_path / f'process{i}.npz' for i in range(num_processes)]
  procs = [subprocess.Popen(
      [sys.executable, '-m', 'tests.multiprocess_worker', port, str(i), str(num_processes),
       str(outs[i])], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
      for i in range(num_processes)]
  logs = []
  try:
    for p in procs:
      logs.append(p.communicate(timeout=TIMEOUT_S)[0].decode(errors='replace'))
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    pytest.fail(f'the worker processes did not finish within {TIMEOUT_S} s')
  for i, p in enumerate(procs):
    assert p.returncode == 0, f'process {i} failed:\n{logs[i][-3000:]}'
  return [dict(np.load(out)) for out in outs]


def test_two_processes_equal_one(tmp_path):
  results = _run_workers(tmp_path)
  model, variables, pool = scorer_and_pool()
  # The same per-device program as each worker's: two devices, BATCH / 2 rows each.
  mesh = parallel.data_mesh(2)
  reference = pools.score_pool(model, variables, pool, batch_size=BATCH, mesh=mesh)
  expected_ids = pool.ids[select.top_k(reference, K, largest=False)]
  assert len(np.unique(reference)) == len(pool)  # no ties: the top k is unambiguous
  spans = []
  for r in results:
    assert int(r['processes']) == 2 and int(r['local_devices']) == 2
    np.testing.assert_allclose(r['scores'], reference, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(r['ids'], expected_ids)
    np.testing.assert_allclose(r['top'], reference[select.top_k(reference, K, largest=False)],
                               rtol=1e-6, atol=1e-7)
    spans.append(tuple(r['span']))
  assert spans == [(0, 102), (102, len(pool))]  # each process read only its own half


def test_process_span_covers_the_pool_in_order():
  for n in (0, 1, 5, 203):
    for count in (1, 2, 3, 8):
      spans = [parallel.process_span(n, i, count) for i in range(count)]
      assert spans[0][0] == 0 and spans[-1][1] == n
      assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize('args, match', [
    (('localhost:1234', 2, 2), 'process_id must be in 0..1'),
    (('localhost', 2, 0), 'host:port'),
])
def test_initialize_distributed_rejects_bad_settings(args, match):
  with pytest.raises(ConfigError, match=match):
    parallel.initialize_distributed(*args)
