"""Deriving independent seeds from the run's ``--seed`` and a path of tags."""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(seed: int, *tags: int | str) -> int:
  """A 31-bit seed determined by ``seed`` and ``tags`` (e.g. a method name and a round).

  Different tag paths give statistically independent streams (NumPy ``SeedSequence``).
  """
  key = [zlib.crc32(t.encode()) if isinstance(t, str) else int(t) for t in tags]
  return int(np.random.SeedSequence(int(seed), spawn_key=key).generate_state(1)[0] >> 1)
