"""Running a per-example function over a whole pool, sharded over every device.

Pools are walked in fixed-size batches: the last batch is padded and its padded rows
dropped on the host, so a jitted function compiles once whatever the pool size. Each
batch is split over a 1-D ``data`` mesh axis with ``NamedSharding``; the variables are
replicated. The same code runs on one CPU, eight fake CPU devices, a GPU or a TPU slice.
The next batch is read and transferred while the current one computes (JAX dispatches
asynchronously), and results come back to the host one batch behind.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from amrjax.data.pool import SignalPool, iter_batches
from amrjax.errors import ConfigError

DATA_AXIS = 'data'


@functools.lru_cache(maxsize=None)
def data_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh named ``'data'`` over the first ``num_devices`` devices (default: all)."""
  devices = jax.devices()
  if num_devices is not None:
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def round_up_batch(batch_size: int, mesh: Mesh) -> int:
  """The smallest multiple of the mesh size that is >= ``batch_size``."""
  n = mesh.size
  return -(-batch_size // n) * n


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places every leaf of ``tree`` on all devices of ``mesh``."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """Splits the leading axis of ``x`` over the mesh's ``data`` axis."""
  return jax.device_put(x, NamedSharding(mesh, P(DATA_AXIS)))


def map_pool(fn: Callable[[Any, jax.Array], Any], variables: Any, pool: SignalPool, *,
             batch_size: int = 1024, mesh: Mesh | None = None) -> Any:
  """Applies ``fn(variables, x)`` to every member of ``pool``; returns host arrays.

  Args:
    fn: a jitted function of (variables, x (B, 2, L) float32) returning an array or a
      pytree of arrays whose leading axis is B (one value per example). Pass the same
      function object on every call so it compiles once.
    variables: model variables, replicated over the mesh.
    pool: the vectors to map over.
    batch_size: rows per step; rounded up to a multiple of the number of devices.
    mesh: a 1-D ``data`` mesh; default: all devices.

  Returns:
    The outputs for the n members in pool order, as NumPy arrays with leading axis n.
  """
  if len(pool) == 0:
    raise ConfigError('cannot score or evaluate an empty pool')
  mesh = mesh or data_mesh()
  batch_size = round_up_batch(batch_size, mesh)
  variables = replicate(variables, mesh)
  outputs, pending = [], None
  for batch in iter_batches(pool, batch_size):
    result = fn(variables, shard_batch(batch.x, mesh))  # dispatched asynchronously
    if pending is not None:
      outputs.append(_to_host(*pending))
    pending = (result, int(batch.mask.sum()))
  if pending is not None:
    outputs.append(_to_host(*pending))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)


def _to_host(result: Any, real_rows: int) -> Any:
  return jax.tree.map(lambda a: np.asarray(a)[:real_rows], result)
