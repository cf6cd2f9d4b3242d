"""The real RadioML file formats: safe readers and faithful writers.

- RML2016.10a / 10b / 04c: a pickled dict ``{(mod, snr): float32 (n, 2, 128)}`` written by
  Python 2 cPickle. Python 3 reads it with ``encoding='latin1'`` (``'bytes'`` would turn
  the keys into bytes). It is read through :class:`RestrictedUnpickler`, which admits only
  NumPy arrays, dtypes and plain containers, so a pickle that would run code is refused.
  :func:`write_rml2016_pickle` writes the protocol-2 byte stream Python 2 NumPy wrote
  (``numpy.core.multiarray._reconstruct`` and ``str`` data), so the Python-2 path is
  tested on every synthetic run.
- RML2018.01a: HDF5 with ``X`` (N, 1024, 2) float32, ``Y`` (N, 24) one-hot, ``Z`` (N, 1)
  SNR. ``X`` is read lazily, batch by batch (:class:`H5Store`), and transposed to (k, 2, L)
  as it is read; ``Y`` and ``Z`` are read in chunks.
- Sig2019-12: the same X/Y/Z arrays, as HDF5 or NPZ, with an optional ``classes`` array of
  class names; ``Y`` may also be integer labels (N,) and ``X`` may be (N, 2, L).

Rows of a pool are numbered by their position in the file (pickles: keys in (class
index, SNR) order, then rows), and that number is the stable sample id.
"""

from __future__ import annotations

import contextlib
import pickle
import struct
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import h5py
import numpy as np

from amrjax.data import specs as specs_lib
from amrjax.data.pool import ArrayStore, SignalPool
from amrjax.errors import DataFormatError
from amrjax.fileio import atomic_path, atomic_write

# --- RML2016 pickles ----------------------------------------------------------------------


def _numpy_reconstruct():
  try:
    from numpy._core.multiarray import _reconstruct  # NumPy >= 2
  except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct
  return _reconstruct


def _numpy_frombuffer():
  try:
    from numpy._core.numeric import _frombuffer  # NumPy >= 2
  except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.numeric import _frombuffer
  return _frombuffer


class RestrictedUnpickler(pickle.Unpickler):
  """Admits NumPy arrays, dtypes and plain containers; refuses every other global.

  The allowed globals are what NumPy's own array pickles reference (Python 2 and 3,
  NumPy 1 and 2): the array reconstructor, ``ndarray``, ``dtype``, the protocol-5 buffer
  reader, and ``_codecs.encode`` (Python 3 writes bytes that way under protocol 2).
  """

  def __init__(self, file, *, source: str = 'the pickle'):
    super().__init__(file, encoding='latin1')
    self._source = source
    self._allowed = {
        ('numpy.core.multiarray', '_reconstruct'): _numpy_reconstruct(),
        ('numpy._core.multiarray', '_reconstruct'): _numpy_reconstruct(),
        ('numpy.core.numeric', '_frombuffer'): _numpy_frombuffer(),
        ('numpy._core.numeric', '_frombuffer'): _numpy_frombuffer(),
        ('numpy', 'ndarray'): np.ndarray,
        ('numpy', 'dtype'): np.dtype,
        ('_codecs', 'encode'): _latin1_encode,
    }

  def find_class(self, module: str, name: str):
    found = self._allowed.get((module, name))
    if found is None:
      raise DataFormatError(
          f'refusing to unpickle {self._source}: it asks for {module}.{name}, but only '
          'NumPy arrays and plain containers are admitted; a genuine RadioML file needs '
          'nothing else, so this file is damaged or unsafe: do not use it')
    return found

  def persistent_load(self, pid):
    raise DataFormatError(f'refusing to unpickle {self._source}: it uses persistent ids')


def _latin1_encode(obj, encoding='latin1', errors='strict'):
  if not isinstance(obj, str) or encoding not in ('latin1', 'latin-1'):
    raise DataFormatError('refusing to unpickle: unexpected _codecs.encode call')
  return obj.encode(encoding, errors)


def load_pickle(path: Path) -> object:
  """Unpickles ``path`` with :class:`RestrictedUnpickler` and latin1 strings."""
  path = Path(path)
  try:
    with open(path, 'rb') as f:
      return RestrictedUnpickler(f, source=str(path)).load()
  except DataFormatError:
    raise
  except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError,
          struct.error, UnicodeError, AttributeError, MemoryError) as e:
    raise DataFormatError(f'{path} is truncated or corrupt ({type(e).__name__}: {e}); '
                          'download it again, or remove it to use the synthetic '
                          'stand-in') from None


def read_rml2016_pickle(path: Path, spec: specs_lib.DatasetSpec) -> SignalPool:
  """Reads an RML2016 dict pickle into an in-memory pool with ids in (class, SNR) order."""
  path = Path(path)
  data = load_pickle(path)
  if not isinstance(data, dict):
    raise DataFormatError(f'{path}: expected a pickled dict {{(mod, snr): array}}, found '
                          f'{type(data).__name__}; is this an RML2016 file?')
  index = {name: i for i, name in enumerate(spec.names_in_file)}
  cells = []
  for key, value in data.items():
    if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str) and
            isinstance(key[1], (int, np.integer))):
      raise DataFormatError(f'{path}: key {key!r} is not (modulation, snr); was it read '
                            "with encoding='bytes'? is this an RML2016 file?")
    mod, snr = key
    if mod not in index:
      raise DataFormatError(f'{path}: modulation {mod!r} is not a {spec.name} class '
                            f'({", ".join(spec.names_in_file)}); wrong --dataset?')
    if int(snr) not in spec.snrs:
      raise DataFormatError(f'{path}: SNR {snr} dB is off the {spec.name} grid '
                            f'{spec.snrs[0]}..{spec.snrs[-1]} dB; wrong --dataset?')
    if not (isinstance(value, np.ndarray) and value.dtype.kind == 'f' and value.ndim == 3 and
            value.shape[1:] == (2, spec.length)):
      shape = getattr(value, 'shape', None)
      dtype = getattr(value, 'dtype', type(value).__name__)
      raise DataFormatError(f'{path}: entry {key!r} should be float (n, 2, {spec.length}), '
                            f'got {dtype} {shape}')
    cells.append((index[mod], int(snr), value))
  _check_all_classes(path, spec, {c for c, _, _ in cells})
  cells.sort(key=lambda cell: (cell[0], cell[1]))
  x = np.concatenate([v for _, _, v in cells]).astype(np.float32, copy=False)
  y = np.concatenate([np.full(len(v), c, np.int32) for c, _, v in cells])
  snr = np.concatenate([np.full(len(v), s, np.int32) for _, s, v in cells])
  return SignalPool.from_arrays(x, y, snr, spec.classes)


def _check_all_classes(path, spec, present: set[int]):
  missing = [spec.classes[i] for i in range(spec.num_classes) if i not in present]
  if missing:
    raise DataFormatError(f'{path}: no vectors of class(es) {", ".join(missing)}; the file '
                          f'is incomplete or not {spec.name}')


class _Py2PickleWriter:
  """Emits protocol-2 opcodes the way Python 2's cPickle wrote a dict of NumPy arrays."""

  def __init__(self, f):
    self.f = f

  def string(self, s: bytes):  # a Python 2 str
    if len(s) < 256:
      self.f.write(b'U' + bytes([len(s)]) + s)  # SHORT_BINSTRING
    else:
      self.f.write(b'T' + struct.pack('<i', len(s)) + s)  # BINSTRING

  def int(self, v: int):
    if 0 <= v < 256:
      self.f.write(b'K' + bytes([v]))  # BININT1
    else:
      self.f.write(b'J' + struct.pack('<i', v))  # BININT

  def dtype(self, dt: np.dtype):
    self.f.write(b'cnumpy\ndtype\n')  # GLOBAL
    self.string(dt.str[1:].encode())  # e.g. 'f4'
    self.int(0)
    self.int(1)
    self.f.write(b'\x87R')  # TUPLE3, REDUCE
    self.f.write(b'(')  # MARK: state (3, '<', None, None, None, -1, -1, 0)
    self.int(3)
    self.string(b'<')
    self.f.write(b'NNN')
    self.int(-1)
    self.int(-1)
    self.int(0)
    self.f.write(b'tb')  # TUPLE, BUILD

  def array(self, a: np.ndarray):
    a = np.ascontiguousarray(a).astype(a.dtype.newbyteorder('<'), copy=False)
    self.f.write(b'cnumpy.core.multiarray\n_reconstruct\n')
    self.f.write(b'cnumpy\nndarray\n')
    self.int(0)
    self.f.write(b'\x85')  # TUPLE1 (0,)
    self.string(b'b')
    self.f.write(b'\x87R')  # TUPLE3, REDUCE: _reconstruct(ndarray, (0,), 'b')
    self.f.write(b'(')  # state (1, shape, dtype, is_fortran, data)
    self.int(1)
    self.f.write(b'(')
    for d in a.shape:
      self.int(d)
    self.f.write(b't')
    self.dtype(a.dtype)
    self.f.write(b'\x89')  # NEWFALSE
    self.string(a.tobytes())
    self.f.write(b'tb')


def write_rml2016_pickle(path: Path, cells: Mapping[tuple[str, int], np.ndarray]) -> Path:
  """Writes ``{(mod, snr): float32 (n, 2, L)}`` as Python 2 cPickle did (protocol 2).

  The file is written to a temporary name and renamed, so it is complete or absent.
  """
  with atomic_write(path) as f:
    w = _Py2PickleWriter(f)
    f.write(b'\x80\x02}')  # PROTO 2, EMPTY_DICT
    for (mod, snr), value in cells.items():
      f.write(b'(')
      w.string(mod.encode('latin1'))
      w.int(int(snr))
      f.write(b'\x86')  # TUPLE2 key
      w.array(np.asarray(value, np.float32))
      f.write(b'u')  # SETITEMS
    f.write(b'.')
  return path


# --- X/Y/Z files (RML2018 HDF5, Sig2019 HDF5 or NPZ) --------------------------------------


class H5Store:
  """Lazily reads ``X`` of an X/Y/Z HDF5 file by sample id (= row), as (k, 2, L) float32.

  Sorted ids that cover a dense span are read as one slice; scattered ids are read as a
  point selection. RML2018's (N, L, 2) rows are transposed per read, never as a whole.
  """

  def __init__(self, path: Path, length: int):
    self.path = Path(path)
    self._file = h5py.File(self.path, 'r')
    self._x = self._file['X']
    self.length = length
    shape = self._x.shape
    if shape[1:] == (length, 2):
      self.channels_last = True
    elif shape[1:] == (2, length):
      self.channels_last = False
    else:
      raise DataFormatError(f'{path}: X has shape {shape}, expected (N, {length}, 2)')

  def __len__(self) -> int:
    return self._x.shape[0]

  def read(self, ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, np.int64)
    if ids.size == 0:
      return np.zeros((0, 2, self.length), np.float32)
    if ids.min() < 0 or ids.max() >= len(self):
      raise KeyError(f'sample ids outside 0..{len(self) - 1}')
    order = np.argsort(ids, kind='stable')
    sorted_ids = ids[order]
    unique, inverse = np.unique(sorted_ids, return_inverse=True)
    lo, hi = int(unique[0]), int(unique[-1]) + 1
    try:
      if hi - lo <= 4 * len(unique):
        block = self._x[lo:hi][unique - lo]
      else:
        block = self._x[unique]
    except OSError as e:
      raise DataFormatError(f'{self.path} could not be read ({e}); the file is truncated or '
                            'corrupt: download it again') from None
    block = np.asarray(block, np.float32)[inverse]
    if self.channels_last:
      block = np.swapaxes(block, 1, 2)
    out = np.empty_like(block)
    out[order] = block
    return np.ascontiguousarray(out)


def _labels_from_y(path, y: np.ndarray | h5py.Dataset, n: int, num_classes: int,
                   chunk: int = 1 << 16) -> np.ndarray:
  """Class indices (n,) from one-hot (n, C) or integer (n,) labels, read in chunks."""
  if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
    labels = np.asarray(y[:]).reshape(-1)
    if labels.dtype.kind not in 'iu' and not np.all(labels == np.round(labels)):
      raise DataFormatError(f'{path}: Y holds non-integer labels')
    labels = labels.astype(np.int64)
  elif y.ndim == 2:
    if y.shape[1] != num_classes:
      raise DataFormatError(f'{path}: Y has {y.shape[1]} columns, the dataset has '
                            f'{num_classes} classes; wrong --dataset?')
    labels = np.empty(n, np.int64)
    for start in range(0, n, chunk):
      part = np.asarray(y[start:start + chunk])
      if not (np.all(part.sum(axis=1) == 1) and np.all((part == 0) | (part == 1))):
        raise DataFormatError(f'{path}: Y is not one-hot (rows {start}..'
                              f'{start + len(part) - 1})')
      labels[start:start + len(part)] = part.argmax(axis=1)
  else:
    raise DataFormatError(f'{path}: Y has shape {y.shape}, expected (N, C) or (N,)')
  if len(labels) != n:
    raise DataFormatError(f'{path}: Y has {len(labels)} rows but X has {n}')
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise DataFormatError(f'{path}: Y has labels outside 0..{num_classes - 1}')
  return labels


def _snrs_from_z(path, z, n: int, spec: specs_lib.DatasetSpec) -> np.ndarray:
  z = np.asarray(z[:]).reshape(-1)
  if len(z) != n:
    raise DataFormatError(f'{path}: Z has {len(z)} rows but X has {n}')
  snr = np.round(z).astype(np.int32)
  off_grid = np.setdiff1d(np.unique(snr), spec.snrs)
  if off_grid.size:
    raise DataFormatError(f'{path}: SNRs {off_grid[:5].tolist()} dB are off the {spec.name} '
                          f'grid {spec.snrs[0]}..{spec.snrs[-1]} dB; wrong --dataset?')
  return snr


def _class_map(path, file_classes, spec: specs_lib.DatasetSpec) -> np.ndarray | None:
  """Maps the file's own class order onto the spec's, when the file names its classes."""
  if file_classes is None:
    return None
  names = [c.decode() if isinstance(c, bytes) else str(c) for c in np.asarray(file_classes)]
  if sorted(names) != sorted(spec.names_in_file):
    raise DataFormatError(f'{path}: its classes {names} are not the {spec.name} classes '
                          f'{list(spec.names_in_file)}')
  index = {name: i for i, name in enumerate(spec.names_in_file)}
  return np.asarray([index[name] for name in names], np.int64)


def read_xyz_hdf5(path: Path, spec: specs_lib.DatasetSpec) -> SignalPool:
  """Opens an X/Y/Z HDF5 file; ``X`` stays on disk and is read as batches are needed."""
  path = Path(path)
  try:
    f = h5py.File(path, 'r')
  except OSError as e:
    raise DataFormatError(f'{path} is not a readable HDF5 file ({e}); download it again, '
                          'or remove it to use the synthetic stand-in') from None
  with f:
    missing = [k for k in ('X', 'Y', 'Z') if k not in f]
    if missing:
      raise DataFormatError(f'{path}: no dataset(s) {", ".join(missing)}; an X/Y/Z file '
                            f'has X, Y and Z (found: {", ".join(f.keys()) or "nothing"})')
    n = f['X'].shape[0]
    try:
      labels = _labels_from_y(path, f['Y'], n, spec.num_classes)
      snr = _snrs_from_z(path, f['Z'], n, spec)
      mapping = _class_map(path, f['classes'][:] if 'classes' in f else None, spec)
    except OSError as e:
      raise DataFormatError(f'{path} could not be read ({e}); the file is truncated or '
                            'corrupt: download it again') from None
  store = H5Store(path, spec.length)
  if mapping is not None:
    labels = mapping[labels]
  _check_all_classes(path, spec, set(np.unique(labels).tolist()))
  return SignalPool(store, np.arange(n, dtype=np.int64), labels.astype(np.int32), snr,
                    spec.classes)


def read_xyz_npz(path: Path, spec: specs_lib.DatasetSpec) -> SignalPool:
  """Reads an X/Y/Z ``.npz`` (no pickled objects allowed) into memory."""
  path = Path(path)
  try:
    with np.load(path, allow_pickle=False) as f:
      missing = [k for k in ('X', 'Y', 'Z') if k not in f.files]
      if missing:
        raise DataFormatError(f'{path}: no array(s) {", ".join(missing)}; an X/Y/Z file has '
                              f'X, Y and Z (found: {", ".join(f.files)})')
      x = f['X']
      y, z = f['Y'], f['Z']
      file_classes = f['classes'] if 'classes' in f.files else None
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise DataFormatError(f'{path} is not a readable .npz file ({type(e).__name__}: {e}); '
                          'write it with numpy.savez and no object arrays') from None
  if x.ndim == 3 and x.shape[1:] == (spec.length, 2):
    x = np.ascontiguousarray(np.swapaxes(x, 1, 2))
  elif not (x.ndim == 3 and x.shape[1:] == (2, spec.length)):
    raise DataFormatError(f'{path}: X has shape {x.shape}, expected (N, {spec.length}, 2)')
  labels = _labels_from_y(path, y, len(x), spec.num_classes)
  snr = _snrs_from_z(path, z, len(x), spec)
  mapping = _class_map(path, file_classes, spec)
  if mapping is not None:
    labels = mapping[labels]
  _check_all_classes(path, spec, set(np.unique(labels).tolist()))
  return SignalPool(ArrayStore(x), np.arange(len(x), dtype=np.int64), labels.astype(np.int32),
                    snr, spec.classes)


class XYZRows:
  """Appends (class, SNR) blocks to the X/Y/Z datasets of an open HDF5 file.

  ``X`` is (N, L, 2) float32 in row chunks, ``Y`` (N, C) int64 one-hot, ``Z`` (N, 1) int64,
  plus ``classes`` (the names, in label order), as RML2018.01a lays them out.
  """

  def __init__(self, f: h5py.File, spec: specs_lib.DatasetSpec, total: int):
    self.spec, self.total, self.row = spec, total, 0
    chunk = max(1, min(total, (1 << 20) // (8 * spec.length)))
    self._x = f.create_dataset('X', (total, spec.length, 2), np.float32,
                               chunks=(chunk, spec.length, 2))
    self._y = f.create_dataset('Y', (total, spec.num_classes), np.int64)
    self._z = f.create_dataset('Z', (total, 1), np.int64)
    f.create_dataset('classes', data=np.array(spec.names_in_file, dtype='S'))

  def write(self, class_index: int, snr: int, x: np.ndarray) -> None:
    n = len(x)
    if self.row + n > self.total:
      raise DataFormatError(f'writing more than the {self.total} rows declared')
    rows = slice(self.row, self.row + n)
    self._x[rows] = np.swapaxes(x, 1, 2)
    onehot = np.zeros((n, self.spec.num_classes), np.int64)
    onehot[:, class_index] = 1
    self._y[rows] = onehot
    self._z[rows] = snr
    self.row += n


@contextlib.contextmanager
def xyz_writer(path: Path, spec: specs_lib.DatasetSpec, total: int) -> Iterator[XYZRows]:
  """Streams blocks into a new X/Y/Z HDF5 file of ``total`` rows; see :class:`XYZRows`.

  The file appears at ``path`` only when every declared row was written.
  """
  with atomic_path(path) as tmp, h5py.File(tmp, 'w') as f:
    rows = XYZRows(f, spec, total)
    yield rows
    if rows.row != total:
      raise DataFormatError(f'{path}: wrote {rows.row} rows of the {total} declared')


def write_xyz_npz(path: Path, spec: specs_lib.DatasetSpec, x: np.ndarray, y: np.ndarray,
                  snr: np.ndarray) -> Path:
  """Writes X (N, L, 2) float32, Y (N, C) one-hot, Z (N, 1) and ``classes`` to an .npz."""
  path = Path(path)
  onehot = np.zeros((len(y), spec.num_classes), np.int64)
  onehot[np.arange(len(y)), y] = 1
  with atomic_write(path) as f:
    np.savez(f, X=np.swapaxes(x, 1, 2).astype(np.float32), Y=onehot,
             Z=np.asarray(snr, np.int64).reshape(-1, 1), classes=np.array(spec.names_in_file))
  return path


# --- dispatch -----------------------------------------------------------------------------


def read_dataset(path: Path, spec: specs_lib.DatasetSpec) -> SignalPool:
  """Opens ``path`` as a ``spec`` file in its real format."""
  path = Path(path)
  if not path.is_file():
    raise DataFormatError(f'{path} does not exist or is not a file')
  if path.stat().st_size == 0:
    raise DataFormatError(f'{path} is empty; download it again')
  if spec.file_format == specs_lib.RML2016_PICKLE:
    return read_rml2016_pickle(path, spec)
  if path.suffix == '.npz':
    if spec.file_format != specs_lib.XYZ_HDF5_OR_NPZ:
      raise DataFormatError(f'{path}: {spec.name} comes as HDF5, not .npz')
    return read_xyz_npz(path, spec)
  return read_xyz_hdf5(path, spec)


def write_cells(path: Path, spec: specs_lib.DatasetSpec,
                cells: Iterable[tuple[int, int, np.ndarray]], total: int) -> Path:
  """Writes (class index, SNR, x (n, 2, L)) blocks to ``path`` in ``spec``'s real format.

  Blocks must come in file order (class, then SNR ascending); ``total`` is the row count.
  Pickle and NPZ formats gather the blocks in memory; HDF5 streams them to disk.
  """
  path = Path(path)
  if spec.file_format == specs_lib.RML2016_PICKLE:
    grouped: dict[tuple[str, int], list[np.ndarray]] = {}
    for c, snr, x in cells:
      grouped.setdefault((spec.names_in_file[c], int(snr)), []).append(x)
    return write_rml2016_pickle(path, {k: np.concatenate(v) for k, v in grouped.items()})
  if path.suffix == '.npz':
    xs, ys, zs = [], [], []
    for c, snr, x in cells:
      xs.append(x)
      ys.append(np.full(len(x), c))
      zs.append(np.full(len(x), snr))
    return write_xyz_npz(path, spec, np.concatenate(xs), np.concatenate(ys),
                         np.concatenate(zs))
  with xyz_writer(path, spec, total) as rows:
    for c, snr, x in cells:
      rows.write(c, snr, x)
  return path

