"""Running a per-example function over a whole pool, sharded over every device and host.

Pools are walked in fixed-size batches: the last batch is padded and its padded rows
dropped on the host, so a jitted function compiles once whatever the pool size. Each
batch is split over a 1-D ``data`` mesh axis with ``NamedSharding``; the variables are
replicated, and every device runs the per-example function on its own rows
(``jax.shard_map`` inside ``jax.jit``). The same code runs on one CPU, eight fake CPU
devices, a GPU or a TPU slice.

A reader thread reads the next batches (from memory or an HDF5 file) and starts their
host-to-device transfer while the current batch computes (JAX dispatches asynchronously);
results come back to the host one batch behind. Nothing pool-sized lives on a device: the
outputs of each batch are copied to the host and either kept (:func:`map_pool`) or folded
into a running top-k (:func:`top_k_pool`, O(k) memory, for pools larger than memory).

Many hosts: after :func:`initialize_distributed`, every process scores only its own
contiguous slice of the pool (:func:`process_span`) on its local devices, and one
all-gather at the end gives every process the whole result (:func:`map_pool`) or the
global top k (:func:`top_k_pool`). Per-example functions need no communication, so there
is none until that gather.

:func:`map_pool_pmap` runs the same per-example function through ``jax.pmap`` instead: the
comparison the throughput benchmark makes (``pmap`` is in maintenance mode since JAX 0.8;
the ``NamedSharding`` path is the one to use).

No input buffer is donated here: XLA can only reuse a donated buffer for an output of the
same shape and dtype, and a scorer's outputs ((B,) scores) never match its (B, 2, L)
input (JAX warns 'Some donated buffers were not usable' and keeps the buffer). Each batch's
device buffer is released as soon as its computation is done and its reference dropped.
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

from amrjax import progress
from amrjax.data.pool import Batch, SignalPool, iter_batches
from amrjax.errors import ConfigError
from amrjax.selection.select import StreamingTopK

DATA_AXIS = 'data'


@functools.lru_cache(maxsize=None)
def data_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh named ``'data'`` over this process's first ``num_devices`` devices.

  Default: all of this process's (local) devices. With several processes each one scores
  its own slice of the pool on its own devices (see :func:`process_span`).
  """
  devices = jax.local_devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devices):
      raise ConfigError(f'asked for {num_devices} devices, this process has {len(devices)}')
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


# --- many hosts ---------------------------------------------------------------------------


def initialize_distributed(coordinator_address: str, num_processes: int, process_id: int, *,
                           timeout_s: int = 300) -> None:
  """Joins this process to a ``jax.distributed`` job; call it before any device is touched.

  Every process runs the same program with its own ``process_id`` in 0..num_processes-1;
  process 0 serves as coordinator at ``coordinator_address`` ('host:port'). CPU processes
  exchange data through gloo (``jax_cpu_collectives_implementation``); GPUs and TPUs use
  their own collectives and ignore that setting.
  """
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ConfigError(f'process_id must be in 0..{num_processes - 1} for {num_processes} '
                      f'processes, got {process_id}')
  if ':' not in coordinator_address:
    raise ConfigError(f'coordinator address must be host:port, got {coordinator_address!r}')
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id,
                             initialization_timeout=timeout_s)


def process_span(n: int, index: int | None = None, count: int | None = None,
                 ) -> tuple[int, int]:
  """Pool positions [lo, hi) that process ``index`` of ``count`` scores (default: this one).

  Slices are contiguous and ceil(n / count) long (the last ones shorter or empty), so the
  processes' results concatenated in process order are the pool's, in pool order.
  """
  index = jax.process_index() if index is None else index
  count = jax.process_count() if count is None else count
  size = -(-n // count)
  return min(index * size, n), min((index + 1) * size, n)


def _process_slice(pool: SignalPool) -> SignalPool:
  """The members of ``pool`` this process scores (all of them with one process)."""
  lo, hi = process_span(len(pool))
  return pool.subset(np.arange(lo, hi))


def _gather_rows(tree: Any, n: int) -> Any:
  """Concatenates every process's rows (each :func:`process_span` long) in process order."""
  from jax.experimental import multihost_utils  # noqa: PLC0415 - only with many processes
  size = -(-n // jax.process_count())

  def pad(a):
    a = np.asarray(a)
    return np.concatenate([a, np.zeros((size - len(a),) + a.shape[1:], a.dtype)])

  gathered = multihost_utils.process_allgather(jax.tree.map(pad, tree), tiled=True)
  return jax.tree.map(lambda a: np.asarray(a)[:n], gathered)


# --- the batch walk -----------------------------------------------------------------------


def for_each_batch(fn: Callable[..., Any], variables: Any, pool: SignalPool,
                   consume: Callable[[np.ndarray, Any], None], *, batch_size: int = 1024,
                   mesh: Mesh | None = None, with_labels: bool = False,
                   prefetch: int = 2) -> None:
  """Runs ``fn`` on every batch of ``pool`` in this process; hands each result to ``consume``.

  ``consume(positions (b,), outputs)`` is called in pool order with host (NumPy) outputs
  whose padded rows are already dropped; ``positions`` index ``pool``. The next batches
  are read and transferred while the current one computes. Arguments as :func:`map_pool`.
  """
  mesh = mesh or data_mesh()
  batch_size = round_up_batch(batch_size, mesh)
  variables = replicate(variables, mesh)
  per_device = _shard_mapped(fn, mesh, with_labels)

  def place(batch: Batch):  # runs in the reader thread: the transfer overlaps compute
    args = (shard_batch(batch.x, mesh),)
    if with_labels:
      args += (shard_batch(batch.y.astype(np.int32), mesh),)
    return batch, args

  batches = (place(b) for b in iter_batches(pool, batch_size))
  with progress.task('scoring', total=-(-len(pool) // batch_size), unit='batch') as shown:

    def consume_and_count(positions, outputs):
      consume(positions, outputs)
      shown.advance()
    _drain(lambda placed: (placed[0], per_device(variables, *placed[1])),
           prefetched(batches, prefetch), consume_and_count)


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
    mesh: a 1-D ``data`` mesh of this process's devices; default: all of them.
    with_labels: also pass the batch's labels (for label-dependent scores: EL2N, GraNd).
    prefetch: batches read and transferred ahead by the reader thread.

  Returns:
    The outputs for the n members in pool order, as NumPy arrays with leading axis n. With
    several processes each scores its :func:`process_span` and all receive all n rows.
  """
  _check_pool(pool)
  local = _process_slice(pool)
  parts: list[Any] = []
  if len(local):
    for_each_batch(fn, variables, local, lambda _, out: parts.append(out),
                   batch_size=batch_size, mesh=mesh, with_labels=with_labels,
                   prefetch=prefetch)
    out = _concat(parts)
  else:
    out = _empty_outputs(fn, variables, pool, with_labels)
  return _gather_rows(out, len(pool)) if jax.process_count() > 1 else out


def top_k_pool(fn: Callable[..., jax.Array], variables: Any, pool: SignalPool, k: int, *,
               largest: bool, batch_size: int = 1024, mesh: Mesh | None = None,
               with_labels: bool = False, prefetch: int = 2) -> tuple[np.ndarray, np.ndarray]:
  """The ``k`` members with the largest (or smallest) score, never holding all n scores.

  Each batch's scores are folded into a :class:`amrjax.selection.select.StreamingTopK` (O(k + batch)
  host memory); with several processes each keeps its own k best and one all-gather of
  those candidates gives the global k, identical on every process. The result equals
  ``select.top_k`` over all n scores, ties going to the smaller sample id.

  Args:
    fn: jitted (variables, x[, y]) -> (B,) scores, e.g. ``scoring.softmax_scorer(...)``.
    k: how many to select, 0 <= k <= len(pool).
    largest: select the largest scores if True, the smallest if False (margin: False).
    Others as :func:`map_pool`.

  Returns:
    (ids int64 (k,), scores float64 (k,)), best first.
  """
  _check_pool(pool)
  if not 0 <= k <= len(pool):
    raise ConfigError(f'cannot select {k} of {len(pool)} samples')
  local = _process_slice(pool)
  best = StreamingTopK(min(k, len(local)), largest=largest)

  def consume(positions, scores):
    scores = np.asarray(scores)
    if scores.shape != positions.shape:
      raise ConfigError(f'top_k_pool needs one score per sample, got shape {scores.shape} '
                        f'for a batch of {len(positions)}')
    best.add(scores, local.ids[positions])

  if len(local):
    for_each_batch(fn, variables, local, consume, batch_size=batch_size, mesh=mesh,
                   with_labels=with_labels, prefetch=prefetch)
  ids, scores = best.result()
  if jax.process_count() > 1:
    ids, scores = _merge_process_top_k(ids, scores, k, largest)
  return ids, scores


def _merge_process_top_k(ids, scores, k, largest):
  """The global k best of every process's k best (padded to k rows for the all-gather)."""
  from jax.experimental import multihost_utils  # noqa: PLC0415 - only with many processes
  real = np.zeros(k, bool)
  real[:len(ids)] = True
  pad = k - len(ids)
  gathered = multihost_utils.process_allgather(
      {'ids': np.concatenate([ids, np.zeros(pad, np.int64)]),
       'scores': np.concatenate([scores, np.zeros(pad, np.float64)]), 'real': real},
      tiled=True)
  keep = np.asarray(gathered['real'])
  merged = StreamingTopK(k, largest=largest)
  merged.add(np.asarray(gathered['scores'])[keep], np.asarray(gathered['ids'])[keep])
  return merged.result()


def map_pool_pmap(fn: Callable[..., Any], variables: Any, pool: SignalPool, *,
                  batch_size: int = 1024, num_devices: int | None = None,
                  with_labels: bool = False, prefetch: int = 2) -> Any:
  """:func:`map_pool` through ``jax.pmap``: each device runs ``fn`` on its slice.

  Same arguments and results as :func:`map_pool` (one process); ``fn`` is wrapped in a
  cached ``jax.pmap`` (variables broadcast, batch split into (devices, B / devices, ...)).
  """
  _check_pool(pool)
  devices = jax.local_devices()[:num_devices] if num_devices else jax.local_devices()
  n_dev = len(devices)
  batch_size = -(-batch_size // n_dev) * n_dev
  pmapped = _pmapped(fn, with_labels, tuple(devices))

  def split(a: np.ndarray) -> np.ndarray:
    return a.reshape(n_dev, a.shape[0] // n_dev, *a.shape[1:])

  def run(batch: Batch):
    args = (split(batch.x),) + ((split(batch.y.astype(np.int32)),) if with_labels else ())
    out = pmapped(variables, *args)
    return batch, jax.tree.map(lambda a: a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]),
                               out)

  parts: list[Any] = []
  _drain(run, prefetched(iter_batches(pool, batch_size), prefetch),
         lambda _, out: parts.append(out))
  return _concat(parts)


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


def _empty_outputs(fn, variables, pool: SignalPool, with_labels: bool) -> Any:
  """Zero-row outputs of ``fn``'s structure (a process whose slice of the pool is empty)."""
  args = (jax.ShapeDtypeStruct((1, 2, pool.length), np.float32),)
  if with_labels:
    args += (jax.ShapeDtypeStruct((1,), np.int32),)
  shapes = jax.eval_shape(fn, variables, *args)
  return jax.tree.map(lambda s: np.zeros((0,) + s.shape[1:], s.dtype), shapes)


def _concat(parts: list[Any]) -> Any:
  return jax.tree.map(lambda *p: np.concatenate(p), *parts)


def _drain(run: Callable[[Any], tuple[Batch, Any]], items: Iterable[Any],
           consume: Callable[[np.ndarray, Any], None]) -> None:
  """Runs ``run`` on every item, keeping one batch in flight; consumes host outputs in order.

  ``run`` returns (the batch, its device outputs). ``items`` is closed on the way out, so a
  failing ``run`` or ``consume`` stops the reader thread.
  """
  pending = None
  with contextlib.closing(iter(items)) as item_iter:
    for item in item_iter:
      result = run(item)  # dispatched asynchronously
      if pending is not None:
        _consume_on_host(pending, consume)
      pending = result
  if pending is not None:
    _consume_on_host(pending, consume)


def _consume_on_host(pending: tuple[Batch, Any], consume) -> None:
  batch, result = pending
  real = int(batch.mask.sum())
  consume(batch.positions[:real], jax.tree.map(lambda a: np.asarray(a)[:real], result))


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
