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
import math
import pickle
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import h5py
import numpy as np

from amrjax.data import specs as specs_lib
from amrjax.data.pool import ArrayStore, SignalPool
from amrjax.errors import AmrjaxError, DataFormatError
from amrjax.fileio import atomic_path, atomic_write

# --- damaged files ------------------------------------------------------------------------


def one_line(e: BaseException, limit: int = 200) -> str:
  """``e``'s message on one line (HDF5's span several), at most ``limit`` characters."""
  text = ' '.join(str(e).split()) or type(e).__name__
  return text if len(text) <= limit else text[:limit - 3] + '...'


@contextlib.contextmanager
def _parsing(path, problem: str, advice: str) -> Iterator[None]:
  """Turns a parser's failure on a damaged file into ``'{path} {problem} (...); {advice}'``.

  Only the parsing of a file's bytes runs inside (unpickling, HDF5 objects, zip members):
  anything those raise on a truncated or corrupt file (EOFError, struct.error, KeyError,
  OSError, zlib.error, ...) means the file is damaged. amrjax's own errors pass through.
  """
  try:
    yield
  except AmrjaxError:
    raise
  except Exception as e:  # any failure to parse the bytes: the file is damaged
    raise DataFormatError(f'{path} {problem} ({type(e).__name__}: {one_line(e)}); '
                          f'{advice}') from None


def _as_float32(path, x: np.ndarray) -> np.ndarray:
  """``x`` (float) as float32; a value beyond float32's range is refused, not made inf."""
  if x.dtype.itemsize <= 4:
    return x.astype(np.float32, copy=False)
  with np.errstate(over='ignore'):
    out = x.astype(np.float32)
  overflow = np.isinf(out) & np.isfinite(x)
  if overflow.any():
    raise DataFormatError(f'{path}: X holds values beyond the float32 range (up to '
                          f'{float(np.abs(x[overflow]).max()):.3g}); amrjax works in '
                          'float32: rescale the vectors')
  return out


# --- RML2016 pickles ----------------------------------------------------------------------


def _numpy_reconstruct():
  try:
    from numpy._core.multiarray import _reconstruct  # NumPy >= 2
  except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct
  return _reconstruct


def _numpy_scalar():
  try:
    from numpy._core.multiarray import scalar  # NumPy >= 2
  except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import scalar
  return scalar


def _numpy_frombuffer():
  try:
    from numpy._core.numeric import _frombuffer  # NumPy >= 2
  except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.numeric import _frombuffer
  return _frombuffer


class RestrictedUnpickler(pickle.Unpickler):
  """Admits NumPy arrays, dtypes and plain containers; refuses every other global.

  The allowed globals are what NumPy's own array pickles reference (Python 2 and 3,
  NumPy 1 and 2): the array reconstructor, ``ndarray``, ``dtype``, the NumPy scalar
  constructor (an SNR key saved as ``numpy.int64``), the protocol-5 buffer reader, and
  ``_codecs.encode`` and ``bytes()`` (Python 3 writes bytes, and empty bytes, that way
  under protocol 2).
  """

  def __init__(self, file, *, source: str = 'the pickle'):
    super().__init__(file, encoding='latin1')
    self._source = source
    self._allowed = {
        ('numpy.core.multiarray', '_reconstruct'): _numpy_reconstruct(),
        ('numpy._core.multiarray', '_reconstruct'): _numpy_reconstruct(),
        ('numpy.core.multiarray', 'scalar'): _numpy_scalar(),
        ('numpy._core.multiarray', 'scalar'): _numpy_scalar(),
        ('numpy.core.numeric', '_frombuffer'): _numpy_frombuffer(),
        ('numpy._core.numeric', '_frombuffer'): _numpy_frombuffer(),
        ('numpy', 'ndarray'): np.ndarray,
        ('numpy', 'dtype'): np.dtype,
        ('_codecs', 'encode'): self._latin1_encode,
        ('__builtin__', 'bytes'): self._empty_bytes,
        ('builtins', 'bytes'): self._empty_bytes,
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

  def _latin1_encode(self, obj, encoding='latin1', errors='strict'):
    """``_codecs.encode(str, 'latin1')``: how Python 3 pickles bytes under protocol 2."""
    if not isinstance(obj, str) or encoding not in ('latin1', 'latin-1') or errors != 'strict':
      raise DataFormatError(f'refusing to unpickle {self._source}: an unexpected '
                            '_codecs.encode call; the file is damaged or unsafe')
    return obj.encode(encoding, errors)

  def _empty_bytes(self, *args):
    """``bytes()``: how Python 3 pickles an empty array's data under protocol 2."""
    if args:
      raise DataFormatError(f'refusing to unpickle {self._source}: an unexpected bytes() '
                            'call; the file is damaged or unsafe')
    return b''


def load_pickle(path: Path) -> object:
  """Unpickles ``path`` with :class:`RestrictedUnpickler` and latin1 strings."""
  path = Path(path)
  with _parsing(path, 'is truncated or corrupt', 'download it again, or remove it to use '
                'the synthetic stand-in'):
    with open(path, 'rb') as f:
      return RestrictedUnpickler(f, source=str(path)).load()


def read_rml2016_pickle(path: Path, spec: specs_lib.DatasetSpec) -> SignalPool:
  """Reads an RML2016 dict pickle into an in-memory pool with ids in (class, SNR) order.

  Every key must be ``(modulation, snr)`` on ``spec``'s grid and every value a float array
  (n, 2, L). A (class, SNR) key may be absent (see ``sources.Dataset.missing_cells``); a
  class with no key at all is an error.
  """
  path = Path(path)
  data = load_pickle(path)
  if not isinstance(data, dict):
    raise DataFormatError(f'{path}: expected a pickled dict {{(mod, snr): array}}, found '
                          f'{type(data).__name__}; is this an RML2016 file?')
  index = {name: i for i, name in enumerate(spec.names_in_file)}
  cells = []
  for key, value in data.items():
    _check_pickle_key(path, spec, key)
    _check_pickle_cell(path, spec, key, value)
    cells.append((index[key[0]], int(key[1]), value))
  _check_all_classes(path, spec, {c for c, _, v in cells if len(v)})
  cells.sort(key=lambda cell: (cell[0], cell[1]))
  x = _as_float32(path, np.concatenate([v for _, _, v in cells]))
  y = np.concatenate([np.full(len(v), c, np.int32) for c, _, v in cells])
  snr = np.concatenate([np.full(len(v), s, np.int32) for _, s, v in cells])
  return SignalPool.from_arrays(x, y, snr, spec.classes)


def _check_pickle_key(path, spec: specs_lib.DatasetSpec, key) -> None:
  """``key`` must be ``(modulation name, integer SNR)`` with both in ``spec``."""
  if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str) and
          isinstance(key[1], (int, np.integer)) and not isinstance(key[1], bool)):
    raise DataFormatError(f'{path}: key {key!r} is not (modulation, snr); was it read '
                          "with encoding='bytes'? is this an RML2016 file?")
  mod, snr = key
  if mod not in spec.names_in_file:
    raise DataFormatError(f'{path}: modulation {mod!r} is not a {spec.name} class '
                          f'({", ".join(spec.names_in_file)}); wrong --dataset?')
  if int(snr) not in spec.snrs:
    raise DataFormatError(f'{path}: SNR {snr} dB is off the {spec.name} grid '
                          f'{spec.snrs[0]}..{spec.snrs[-1]} dB; wrong --dataset?')


def _check_pickle_cell(path, spec: specs_lib.DatasetSpec, key, value) -> None:
  """``value`` must be a real float array (n, 2, L): n vectors, I row then Q row."""
  expected = f'float32 (n, 2, {spec.length})'
  if not isinstance(value, np.ndarray):
    raise DataFormatError(f'{path}: entry {key!r} is a {type(value).__name__}, not an array; '
                          f'each entry should be {expected}')
  if value.dtype.kind == 'c':
    raise DataFormatError(f'{path}: entry {key!r} is complex ({value.dtype}); store I and Q '
                          f'as real rows, {expected}')
  if not (value.dtype.kind == 'f' and value.ndim == 3 and value.shape[1:] == (2, spec.length)):
    raise DataFormatError(f'{path}: entry {key!r} should be float (n, 2, {spec.length}), '
                          f'got {value.dtype} {value.shape}')


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


_XYZ_KEYS = ('X', 'Y', 'Z')
_H5_DAMAGED = ('could not be read', 'the file is truncated or corrupt: download it again')


class H5Store:
  """Lazily reads ``X`` of an X/Y/Z HDF5 file by sample id (= row), as (k, 2, L) float32.

  Sorted ids that cover a dense span are read as one slice; scattered ids are read as a
  point selection. RML2018's (N, L, 2) rows are transposed per read, never as a whole.
  """

  def __init__(self, path: Path, length: int):
    self.path = Path(path)
    with _parsing(self.path, *_H5_DAMAGED):
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

  def close(self) -> None:
    """Closes the file; reads after this fail."""
    self._file.close()

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
    with _parsing(self.path, *_H5_DAMAGED):
      if hi - lo <= 4 * len(unique):
        block = self._x[lo:hi][unique - lo]
      else:
        block = self._x[unique]
    block = _as_float32(self.path, np.asarray(block))[inverse]
    if self.channels_last:
      block = np.swapaxes(block, 1, 2)
    out = np.empty_like(block)
    out[order] = block
    return np.ascontiguousarray(out)


def _array(path, key: str, obj) -> np.ndarray | h5py.Dataset:
  """``obj`` if it is an array (ndarray or HDF5 dataset) with rows, else an error."""
  if isinstance(obj, h5py.Group):
    raise DataFormatError(f'{path}: {key} is an HDF5 group, not a dataset; an X/Y/Z file '
                          'stores X, Y and Z as datasets at its top level')
  if not isinstance(obj, (np.ndarray, h5py.Dataset)):
    raise DataFormatError(f'{path}: {key} is a {type(obj).__name__}, not an array; write it '
                          'as an array with one row per vector')
  if obj.shape is None:  # h5py.Empty: a dataset without a dataspace
    raise DataFormatError(f'{path}: {key} is an empty HDF5 dataset (no shape); write it '
                          'with one row per vector')
  if len(obj.shape) == 0:
    raise DataFormatError(f'{path}: {key} is a scalar ({obj.dtype}), not an array with one '
                          'row per vector')
  return obj


def _check_xyz(path, arrays: Mapping[str, object], spec: specs_lib.DatasetSpec) -> int:
  """Checks ``X``, ``Y`` and ``Z`` by shape and dtype alone, before any of them is read.

  ``X``: float (N, L, 2) or (N, 2, L); ``Y``: one-hot (N, C) or labels (N,) or (N, 1), of
  bool, int or float; ``Z``: SNRs (N,) or (N, 1), int or float; the same N in all three.
  Returns N.
  """
  x, y, z = (_array(path, key, arrays[key]) for key in _XYZ_KEYS)
  rows = [a.shape[0] for a in (x, y, z)]
  if len(set(rows)) > 1:
    raise DataFormatError(f'{path}: X has {rows[0]:,} rows, Y {rows[1]:,} and Z {rows[2]:,}; '
                          'each vector needs one row in all three, so the file is truncated '
                          'or was written wrongly: download or write it again')
  _check_x(path, x, spec.length)
  _check_y(path, y, spec.num_classes)
  _check_z(path, z)
  for key, a in zip(_XYZ_KEYS, (x, y, z)):
    if isinstance(a, h5py.Dataset):
      _check_written(path, key, a)
  return rows[0]


def _check_written(path, key: str, ds: h5py.Dataset) -> None:
  """Refuses an HDF5 dataset with rows never written: they would read as zeros.

  From the storage layout alone: a chunked dataset must have all its chunks, a contiguous
  one its storage (virtual and external datasets are not checked).
  """
  if ds.size == 0 or ds.is_virtual or ds.external:
    return
  if ds.chunks is None:
    if ds.id.get_storage_size() == 0:
      raise DataFormatError(f'{path}: {key} {ds.shape} was never written (no storage); the '
                            'file is incomplete: download or write it again')
    return
  chunks = math.prod(-(-size // chunk) for size, chunk in zip(ds.shape, ds.chunks))
  stored = ds.id.get_num_chunks()
  if stored < chunks:
    raise DataFormatError(f'{path}: {key} {ds.shape} is only partly written ({stored} of its '
                          f'{chunks} chunks); the file is incomplete: download or write it '
                          'again')


def _check_x(path, x, length: int) -> None:
  if x.dtype.kind == 'c':
    raise DataFormatError(f'{path}: X is complex ({x.dtype}); store I and Q as a real float32 '
                          f'array (N, {length}, 2) (RML2018) or (N, 2, {length}), e.g. '
                          'numpy.stack([x.real, x.imag], axis=-1)')
  if x.dtype.kind != 'f':
    raise DataFormatError(f'{path}: X holds {x.dtype} values; expected float32 I/Q samples '
                          f'(N, {length}, 2)')
  if x.ndim != 3 or x.shape[1:] not in ((length, 2), (2, length)):
    raise DataFormatError(f'{path}: X has shape {x.shape}, expected (N, {length}, 2)')


def _check_y(path, y, num_classes: int) -> None:
  if y.dtype.kind not in 'biuf':
    raise DataFormatError(f'{path}: Y holds {y.dtype} values; expected one-hot rows '
                          f'(N, {num_classes}) or integer class labels (N,)')
  if y.ndim > 2:
    raise DataFormatError(f'{path}: Y has shape {y.shape}, expected (N, {num_classes}) or '
                          '(N,)')
  if y.ndim == 2 and y.shape[1] not in (1, num_classes):
    raise DataFormatError(f'{path}: Y has {y.shape[1]} columns, the dataset has '
                          f'{num_classes} classes; wrong --dataset?')


def _check_z(path, z) -> None:
  if z.dtype.kind not in 'iuf':
    raise DataFormatError(f'{path}: Z holds {z.dtype} values; expected the SNR of each '
                          'vector in dB, (N, 1) integers')
  if not (z.ndim == 1 or (z.ndim == 2 and z.shape[1] == 1)):
    raise DataFormatError(f'{path}: Z has shape {z.shape}, expected (N, 1) or (N,) SNRs')


def _labels_from_y(path, y: np.ndarray | h5py.Dataset, n: int, num_classes: int,
                   chunk: int = 1 << 16) -> np.ndarray:
  """Class indices int64 (n,) from one-hot (n, C) or label (n,) / (n, 1) rows, in chunks.

  ``y``'s shape and dtype are checked by :func:`_check_xyz`; its values are checked here.
  """
  labels = np.empty(n, np.int64)
  onehot = y.ndim == 2 and y.shape[1] == num_classes and num_classes > 1
  for start in range(0, n, chunk):
    part = np.asarray(y[start:start + chunk])
    if onehot:
      labels[start:start + len(part)] = _onehot_labels(path, part, start)
    else:
      labels[start:start + len(part)] = _integer_labels(path, part.reshape(-1), start,
                                                        num_classes)
  return labels


def _bad_rows(mask: np.ndarray, start: int) -> str:
  rows = start + np.flatnonzero(mask)
  return f'{rows.size:,} row(s), first {rows[:5].tolist()}'


def _onehot_labels(path, part: np.ndarray, start: int) -> np.ndarray:
  """argmax of one-hot rows (k, C) whose first row is row ``start`` of the file."""
  ones = part == 1
  bad = ~(((part == 0) | ones).all(axis=1) & (ones.sum(axis=1) == 1))
  if bad.any():
    raise DataFormatError(f'{path}: Y is not one-hot in {_bad_rows(bad, start)}; each row '
                          'needs a single 1, in the column of its class, and 0 elsewhere')
  return ones.argmax(axis=1)


def _integer_labels(path, part: np.ndarray, start: int, num_classes: int) -> np.ndarray:
  """Labels (k,) whose first is row ``start`` of the file, as int64 in 0..C-1."""
  if part.dtype.kind == 'f':
    bad = ~np.isfinite(part) | (part != np.round(part))
    if bad.any():
      raise DataFormatError(f'{path}: Y holds non-integer labels in {_bad_rows(bad, start)} '
                            f'(e.g. {part[bad][0]}); labels are class indices '
                            f'0..{num_classes - 1}')
  outside = (part < 0) | (part >= num_classes)
  if outside.any():
    raise DataFormatError(f'{path}: Y has labels outside 0..{num_classes - 1} in '
                          f'{_bad_rows(outside, start)} (e.g. {part[outside][0]}); wrong '
                          '--dataset?')
  return part.astype(np.int64)


def _snrs_from_z(path, z, spec: specs_lib.DatasetSpec) -> np.ndarray:
  """SNRs int32 (N,) from ``Z``, each a finite integer on ``spec``'s grid."""
  z = np.asarray(z[()]).reshape(-1)
  if z.dtype.kind == 'f':
    nonfinite = ~np.isfinite(z)
    if nonfinite.any():
      raise DataFormatError(f'{path}: Z holds non-finite SNR values (NaN or infinite) in '
                            f'{_bad_rows(nonfinite, 0)}; every vector needs its SNR in dB: '
                            'download the file again or fix Z')
    fractional = z != np.round(z)
    if fractional.any():
      raise DataFormatError(f'{path}: Z holds non-integer SNRs in '
                            f'{_bad_rows(fractional, 0)} (e.g. {z[fractional][0]:g} dB); '
                            f'{spec.name} SNRs are whole dB')
  off_grid = ~np.isin(z, spec.snrs)
  if off_grid.any():
    values = np.unique(z[off_grid])[:5]
    raise DataFormatError(f'{path}: SNRs {", ".join(f"{v:g}" for v in values)} dB are off the '
                          f'{spec.name} grid {spec.snrs[0]}..{spec.snrs[-1]} dB '
                          f'({_bad_rows(off_grid, 0)}); wrong --dataset?')
  return z.astype(np.int32)


def _class_names(path, classes) -> list[str] | None:
  """The names in a file's optional ``classes`` array (1-D strings), or None."""
  if classes is None:
    return None
  _array(path, 'classes', classes)
  if classes.ndim != 1 or classes.dtype.kind not in 'SUO':
    raise DataFormatError(f'{path}: classes is {classes.dtype} {classes.shape}; expected the '
                          'class names in label order, a 1-D array of strings')
  names = []
  for name in np.asarray(classes[()]).tolist():
    if isinstance(name, bytes):
      try:
        name = name.decode('utf-8')
      except UnicodeDecodeError:
        raise DataFormatError(f'{path}: class name {name!r} is not UTF-8 text; write the '
                              'names as UTF-8 strings') from None
    if not isinstance(name, str):
      raise DataFormatError(f'{path}: classes holds {type(name).__name__} {name!r}, not a '
                            'class name')
    names.append(name)
  return names


def _class_map(path, names: list[str] | None,
               spec: specs_lib.DatasetSpec) -> np.ndarray | None:
  """Maps the file's own class order onto the spec's, when the file names its classes."""
  if names is None:
    return None
  if sorted(names) != sorted(spec.names_in_file):
    raise DataFormatError(f'{path}: its classes {names} are not the {spec.name} classes '
                          f'{list(spec.names_in_file)}')
  index = {name: i for i, name in enumerate(spec.names_in_file)}
  return np.asarray([index[name] for name in names], np.int64)


def _xyz_labels(path, arrays: Mapping[str, object], classes,
                spec: specs_lib.DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
  """Checks an X/Y/Z file's arrays, then reads its labels (N,) and SNRs (N,), int32."""
  n = _check_xyz(path, arrays, spec)
  mapping = _class_map(path, _class_names(path, classes), spec)
  labels = _labels_from_y(path, arrays['Y'], n, spec.num_classes)
  snr = _snrs_from_z(path, arrays['Z'], spec)
  if mapping is not None:
    labels = mapping[labels]
  _check_all_classes(path, spec, set(np.unique(labels).tolist()))
  return labels.astype(np.int32), snr


def _missing_keys(path, keys: Iterable[str], kind: str) -> None:
  keys = list(keys)
  missing = [k for k in _XYZ_KEYS if k not in keys]
  if missing:
    raise DataFormatError(f'{path}: no {kind}(s) {", ".join(missing)}; an X/Y/Z file has X, '
                          f'Y and Z (found: {", ".join(keys) or "nothing"})')


def read_xyz_hdf5(path: Path, spec: specs_lib.DatasetSpec) -> SignalPool:
  """Opens an X/Y/Z HDF5 file; ``X`` stays on disk and is read as batches are needed.

  Every array's shape and dtype is checked before anything is read (:func:`_check_xyz`),
  then ``Y`` and ``Z`` are read and checked; ``X`` is read lazily by :class:`H5Store`.
  """
  path = Path(path)
  with _parsing(path, 'is not a readable HDF5 file', 'download it again, or remove it to '
                'use the synthetic stand-in'):
    f = h5py.File(path, 'r')
  with f, _parsing(path, *_H5_DAMAGED):
    _missing_keys(path, f.keys(), 'dataset')
    arrays = {key: f[key] for key in _XYZ_KEYS}
    labels, snr = _xyz_labels(path, arrays, f['classes'] if 'classes' in f else None, spec)
  store = H5Store(path, spec.length)
  return SignalPool(store, np.arange(len(labels), dtype=np.int64), labels, snr, spec.classes)


def read_xyz_npz(path: Path, spec: specs_lib.DatasetSpec) -> SignalPool:
  """Reads an X/Y/Z ``.npz`` (no pickled objects allowed) into memory."""
  path = Path(path)
  with _parsing(path, 'is not a readable .npz file', 'write it with numpy.savez and no '
                'object arrays'):
    f = np.load(path, allow_pickle=False)
    if not isinstance(f, np.lib.npyio.NpzFile):
      raise DataFormatError(f'{path} holds a single .npy array, not an .npz archive; write '
                            'X, Y and Z with numpy.savez')
    with f:
      _missing_keys(path, f.files, 'array')
      arrays = {key: f[key] for key in _XYZ_KEYS}
      classes = f['classes'] if 'classes' in f.files else None
  labels, snr = _xyz_labels(path, arrays, classes, spec)
  x = _as_float32(path, arrays['X'])
  if x.shape[1:] == (spec.length, 2):
    x = np.ascontiguousarray(np.swapaxes(x, 1, 2))
  return SignalPool(ArrayStore(x), np.arange(len(x), dtype=np.int64), labels, snr,
                    spec.classes)


class XYZRows:
  """Appends (class, SNR) blocks to the X/Y/Z datasets of an open HDF5 file.

  ``X`` is (N, L, 2) float32 in row chunks, ``Y`` (N, C) int64 one-hot, ``Z`` (N, 1) int64,
  plus ``classes`` (the names, in label order), as RML2018.01a lays them out. ``check``
  is called after every block (:meth:`_GuardedFile.check`: stop at a failed write).
  """

  def __init__(self, f: h5py.File, spec: specs_lib.DatasetSpec, total: int,
               check: Callable[[], None] = lambda: None):
    self.spec, self.total, self.row, self._check = spec, total, 0, check
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
    self._z[rows] = np.full((n, 1), snr, np.int64)  # a whole block: one write, not n
    self.row += n
    self._check()


class _GuardedFile:
  """A file for h5py's ``fileobj`` driver that keeps write errors away from HDF5.

  HDF5 does not recover from a failed write: after "Unable to flush" (a full disk) the
  process dies with a segmentation fault when the file is closed or at exit. This file
  records the first OSError of a write or truncate and from then on pretends success (and
  reads zeros), so HDF5 closes cleanly; :meth:`check` raises the recorded error.
  """

  def __init__(self, raw):
    self._raw, self.error = raw, None

  def check(self) -> None:
    if self.error is not None:
      raise self.error

  def seek(self, offset: int, whence: int = 0) -> int:
    return self._raw.seek(offset, whence)

  def tell(self) -> int:
    return self._raw.tell()

  def read(self, size: int = -1) -> bytes:  # h5py wants it; it reads with readinto
    raise NotImplementedError

  def readinto(self, buffer) -> int:
    view = memoryview(buffer).cast('B')
    n = 0 if self.error is not None else self._raw.readinto(view) or 0
    view[n:] = bytes(len(view) - n)
    return len(view)

  def write(self, data) -> int:
    view = memoryview(data).cast('B')
    size = len(view)
    if self.error is None:
      try:
        while view:
          view = view[self._raw.write(view):]
      except OSError as e:
        self.error = e
    return size

  def truncate(self, size: int) -> int:
    if self.error is None:
      try:
        self._raw.truncate(size)
      except OSError as e:
        self.error = e
    return size

  def flush(self) -> None:  # the raw file is unbuffered
    pass


@contextlib.contextmanager
def xyz_writer(path: Path, spec: specs_lib.DatasetSpec, total: int) -> Iterator[XYZRows]:
  """Streams blocks into a new X/Y/Z HDF5 file of ``total`` rows; see :class:`XYZRows`.

  The file appears at ``path`` only when every declared row was written. A failed write
  (a full disk) raises its OSError and leaves no file behind.
  """
  with atomic_path(path) as tmp, open(tmp, 'w+b', buffering=0) as raw:
    guarded = _GuardedFile(raw)
    with h5py.File(guarded, 'w') as f:
      rows = XYZRows(f, spec, total, check=guarded.check)
      yield rows
      if rows.row != total:
        raise DataFormatError(f'{path}: wrote {rows.row} rows of the {total} declared')
    guarded.check()  # HDF5 writes what it cached when the file closes


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
  try:
    open(path, 'rb').close()
  except OSError as e:
    raise DataFormatError(f'{path} cannot be opened ({one_line(e)}); check its '
                          'permissions') from None
  if spec.file_format == specs_lib.RML2016_PICKLE:
    return read_rml2016_pickle(path, spec)
  if path.suffix == '.npz':
    if spec.file_format != specs_lib.XYZ_HDF5_OR_NPZ:
      raise DataFormatError(f'{path}: {spec.name} comes as HDF5, not .npz')
    return read_xyz_npz(path, spec)
  return read_xyz_hdf5(path, spec)


def estimated_bytes(spec: specs_lib.DatasetSpec, total: int) -> int:
  """Roughly the size of the file :func:`write_cells` writes for ``total`` vectors (bytes).

  X is float32 (N, 2, L); X/Y/Z files add int64 one-hot labels and SNRs per row, pickles a
  few bytes per (class, SNR) key; 1 MiB covers headers.
  """
  x = total * spec.length * 2 * 4
  if spec.file_format == specs_lib.RML2016_PICKLE:
    labels = 256 * spec.num_classes * len(spec.snrs)
  else:
    labels = total * (spec.num_classes + 1) * 8
  return x + labels + (1 << 20)


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

