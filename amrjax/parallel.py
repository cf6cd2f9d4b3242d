"""Running a per-example function over a whole pool, sharded over every device.

Pools are walked in fixed-size batches: the last batch is padded and its padded rows
dropped on the host, so a jitted function compiles once whatever the pool size. Each
batch is split over a 1-D ``data`` mesh axis with ``NamedSharding``; the variables are
replicated, and every device runs the per-example function on its own rows
(``jax.shard_map`` inside ``jax.jit``). The same code runs on one CPU, eight fake CPU
devices, a GPU or a TPU slice. A reader thread reads the next batches (from memory or an
HDF5 file) while the current one computes (JAX dispatches asynchronously), and results
come back to the host one batch behind.

:func:`map_pool_pmap` runs the same per-example function through ``jax.pmap`` instead: the
comparison the throughput benchmark makes (``pmap`` is in maintenance mode since JAX 0.8;
the ``NamedSharding`` path is the one to use).
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from amrjax.data.pool import Batch, SignalPool, iter_batches
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


def map_pool(fn: Callable[..., Any], variables: Any, pool: SignalPool, *,
             batch_size: int = 1024, mesh: Mesh | None = None, with_labels: bool = False,
             prefetch: int = 2) -> Any:
  """Applies ``fn(variables, x)`` (or ``fn(variables, x, y)``) to every member of ``pool``.

  Args:
    fn: a jitted function of (variables, x (B, 2, L) float32[, y (B,) int32]) returning an
      array or a pytree of arrays whose leading axis is B (one value per example). Pass the
      same function object on every call so it compiles once.
    variables: model variables, replicated over the mesh.
    pool: the vectors to map over, in memory or read lazily from a file.
    batch_size: rows per step; rounded up to a multiple of the number of devices.
    mesh: a 1-D ``data`` mesh; default: all devices.
    with_labels: also pass the batch's labels (for label-dependent scores: EL2N, GraNd).
    prefetch: batches read ahead by the reader thread.

  Returns:
    The outputs for the n members in pool order, as NumPy arrays with leading axis n.
  """
  _check_pool(pool)
  mesh = mesh or data_mesh()
  batch_size = round_up_batch(batch_size, mesh)
  variables = replicate(variables, mesh)
  per_device = _shard_mapped(fn, mesh, with_labels)

  def run(batch: Batch):
    args = (shard_batch(batch.x, mesh),)
    if with_labels:
      args += (shard_batch(batch.y.astype(np.int32), mesh),)
    return per_device(variables, *args)

  return _collect(run, prefetched(iter_batches(pool, batch_size), prefetch))


def map_pool_pmap(fn: Callable[..., Any], variables: Any, pool: SignalPool, *,
                  batch_size: int = 1024, num_devices: int | None = None,
                  with_labels: bool = False, prefetch: int = 2) -> Any:
  """:func:`map_pool` through ``jax.pmap``: each device runs ``fn`` on its slice.

  Same arguments and results as :func:`map_pool`; ``fn`` is wrapped in a cached
  ``jax.pmap`` (variables broadcast, batch split into (devices, B / devices, ...)).
  """
  _check_pool(pool)
  devices = jax.devices()[:num_devices] if num_devices else jax.devices()
  n_dev = len(devices)
  batch_size = -(-batch_size // n_dev) * n_dev
  pmapped = _pmapped(fn, with_labels, tuple(devices))

  def split(a: np.ndarray) -> np.ndarray:
    return a.reshape(n_dev, a.shape[0] // n_dev, *a.shape[1:])

  def run(batch: Batch):
    args = (split(batch.x),) + ((split(batch.y.astype(np.int32)),) if with_labels else ())
    out = pmapped(variables, *args)
    return jax.tree.map(lambda a: a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]), out)

  return _collect(run, prefetched(iter_batches(pool, batch_size), prefetch))


@functools.lru_cache(maxsize=None)
def _shard_mapped(fn: Callable, mesh: Mesh, with_labels: bool) -> Callable:
  """``fn`` run by each device on its own slice of the batch (``jax.shard_map`` under jit).

  Per-example functions need no communication, so each device runs exactly the
  single-device program on its rows. Leaving the partitioning to XLA's SPMD partitioner
  instead gave wrong per-example gradients on the 8-device CPU mesh (JAX 0.10.2): a
  vmapped convolution-kernel gradient (a ``batch_group_count`` convolution) partitioned
  over the batch was off by up to 20 % (tests/test_parallel.py checks this).
  """
  batch_spec = (P(DATA_AXIS),) * (2 if with_labels else 1)
  # check_vma=False: gradients with respect to the replicated variables inside ``fn`` (GraNd,
  # through custom VJPs) are per-device values by design; nothing is reduced across devices.
  return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P(),) + batch_spec,
                               out_specs=P(DATA_AXIS), check_vma=False))


@functools.lru_cache(maxsize=None)
def _pmapped(fn: Callable, with_labels: bool, devices: tuple) -> Callable:
  in_axes = (None, 0, 0) if with_labels else (None, 0)
  return jax.pmap(fn, in_axes=in_axes, devices=devices)


def _check_pool(pool: SignalPool) -> None:
  if len(pool) == 0:
    raise ConfigError('cannot score or evaluate an empty pool')


def _collect(run: Callable[[Batch], Any], batches: Iterable[Batch]) -> Any:
  """Runs ``run`` on every batch, keeping one in flight; host outputs without padding.

  ``batches`` is closed on the way out, so a failing ``run`` stops the reader thread.
  """
  outputs, pending = [], None
  with contextlib.closing(iter(batches)) as batch_iter:
    for batch in batch_iter:
      result = run(batch)  # dispatched asynchronously
      if pending is not None:
        outputs.append(_to_host(*pending))
      pending = (result, int(batch.mask.sum()))
  if pending is not None:
    outputs.append(_to_host(*pending))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)


def _to_host(result: Any, real_rows: int) -> Any:
  return jax.tree.map(lambda a: np.asarray(a)[:real_rows], result)


_DONE = object()


def prefetched(items: Iterable[Any], depth: int = 2) -> Iterator[Any]:
  """Yields ``items`` in order while a daemon thread produces up to ``depth`` ahead.

  Reading the next batch (an HDF5 slice, a fancy-indexed copy) then overlaps the
  computation on the current one. An exception in the reader is re-raised here.
  ``depth=0`` iterates in the calling thread.
  """
  if depth <= 0:
    yield from items
    return
  slots: queue.Queue = queue.Queue(maxsize=depth)
  stop = threading.Event()

  def produce():
    try:
      for item in items:
        if stop.is_set():
          return
        slots.put((item, None))
      slots.put((_DONE, None))
    except BaseException as e:  # noqa: BLE001 - handed to the consumer
      slots.put((_DONE, e))

  thread = threading.Thread(target=produce, daemon=True, name='amrjax-prefetch')
  thread.start()
  try:
    while True:
      item, error = slots.get()
      if item is _DONE:
        if error is not None:
          raise error
        return
      yield item
  finally:
    stop.set()
    while thread.is_alive():  # unblock a producer waiting on a full queue
      try:
        slots.get_nowait()
      except queue.Empty:
        thread.join(timeout=0.01)
