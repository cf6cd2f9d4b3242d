"""One process of the two-process test (tests/test_multiprocess.py); not a test itself.

  python -m tests.multiprocess_worker PORT PROCESS_ID NUM_PROCESSES OUT.npz

Joins the jax.distributed job, scores the shared test pool with the shared scorer through
``pools.score_pool`` (every process scores its slice; all receive every score) and
``pools.select_from_pool`` (streaming top k merged across processes), and saves both.
"""

from __future__ import annotations

import sys


def main(port: str, process_id: int, num_processes: int, out: str) -> None:
  from amrjax import parallel
  parallel.initialize_distributed(f'localhost:{port}', num_processes, process_id, timeout_s=60)
  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415

  from amrjax.scoring import pools
  from tests.multiprocess_setup import BATCH, K, scorer_and_pool  # noqa: PLC0415

  model, variables, pool = scorer_and_pool()
  scores = pools.score_pool(model, variables, pool, batch_size=BATCH)
  ids, top = pools.select_from_pool(model, variables, pool, K, batch_size=BATCH)
  span = parallel.process_span(len(pool))
  np.savez(out, scores=scores, ids=ids, top=top, span=np.asarray(span),
           processes=jax.process_count(), local_devices=jax.local_device_count())
  jax.distributed.shutdown()


if __name__ == '__main__':
  main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
