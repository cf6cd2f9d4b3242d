"""Fuzzing the dataset readers (issue 19): a file loads exactly what was written, or it is
refused with an ``AmrjaxError``; never another exception, never a wrong result.

Valid files come from the project's writers (``write_rml2016_pickle``, ``write_cells``
through ``xyz_writer`` or ``write_xyz_npz``). Hypothesis then picks mutations of their
content (dtypes, shapes, values, keys), their container (groups, scalars, links, missing or
extra keys, other top-level objects) and their bytes (cut at a random offset). Each
mutation says what the reader must do: ``KEEPS`` (still valid: it must load and equal the
oracle), ``BREAKS`` (it must be refused) or ``EITHER`` (a cut may only drop slack bytes).
Bounded and reproducible: a fixed number of examples, derandomized, no example database.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, event, given, settings, strategies as st

from amrjax.data import formats, specs
from amrjax.errors import AmrjaxError

KEEPS, BREAKS, EITHER = 'keeps', 'breaks', 'either'
GROUP, EMPTY, DANGLING = 'GROUP', 'EMPTY', 'DANGLING'  # container stand-ins, see _write_h5


def _fuzz_settings(examples: int):
  return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow])


def _worst(*verdicts: str) -> str:
  return BREAKS if BREAKS in verdicts else EITHER if EITHER in verdicts else KEEPS


def _check(path: Path, spec: specs.DatasetSpec, expected: dict, verdict: str) -> None:
  """Reads ``path``: a refusal must be one line and allowed, a load must equal ``expected``.

  ``expected``: ``x`` float32 (N, 2, L), ``y`` (N,) class indices, ``snr`` (N,) dB.
  """
  try:
    pool = formats.read_dataset(path, spec)
    try:
      x = pool.signals()
    finally:
      if isinstance(pool.store, formats.H5Store):
        pool.store.close()
  except AmrjaxError as e:
    event(f'{verdict}, refused')
    assert '\n' not in str(e), f'a multi-line error: {e!r}'
    assert verdict != KEEPS, f'a valid file was refused: {e}'
    return
  event(f'{verdict}, loaded')
  assert verdict != BREAKS, 'a broken file was accepted'
  assert x.dtype == np.float32
  np.testing.assert_array_equal(x, expected['x'])
  np.testing.assert_array_equal(pool.y, expected['y'])
  np.testing.assert_array_equal(pool.snr, expected['snr'])
  np.testing.assert_array_equal(pool.ids, np.arange(len(expected['y'])))


def _cut(path: Path, rng: np.random.Generator) -> None:
  """Cuts ``path`` at a random byte offset (keeping at least one byte less than it had)."""
  data = path.read_bytes()
  path.write_bytes(data[:int(rng.integers(0, len(data)))])


# --- RML2016 pickles ----------------------------------------------------------------------

PICKLE_SPECS = ('rml2016.10a', 'rml2016.10b')


def _pickle_cells(spec, rng) -> dict:
  """{(name, snr): float32 (rows, 2, L)}: every class at one or two random SNRs."""
  cells = {}
  for name in spec.names_in_file:
    for snr in sorted(rng.choice(spec.snrs, size=int(rng.integers(1, 3)), replace=False)):
      rows = int(rng.integers(1, 3))
      cells[(name, int(snr))] = rng.standard_normal((rows, 2, spec.length)).astype(np.float32)
  return cells


def _pickle_expected(spec, cells: dict) -> tuple[dict, str]:
  """What the reader must return for a valid ``cells`` dict, and KEEPS or BREAKS."""
  index = {name: i for i, name in enumerate(spec.names_in_file)}
  order = sorted(cells, key=lambda key: (index[key[0]], int(key[1])))
  present = {index[key[0]] for key in order if len(cells[key])}
  expected = {
      'x': np.concatenate([np.asarray(cells[k]).astype(np.float32) for k in order]),
      'y': np.concatenate([np.full(len(cells[k]), index[k[0]]) for k in order]),
      'snr': np.concatenate([np.full(len(cells[k]), int(k[1])) for k in order])}
  return expected, KEEPS if len(present) == spec.num_classes else BREAKS


def _some_key(cells: dict, rng) -> tuple:
  keys = list(cells)
  return keys[int(rng.integers(len(keys)))]


def _pickle_mutation(name: str, cells: dict, spec, rng):
  """Mutates ``cells`` in place or returns another object; returns (object, verdict, py2).

  ``py2``: the object is still a dict of float32 cells the Python 2 writer can write.
  """
  key = _some_key(cells, rng)
  if name == 'none':
    return cells, KEEPS, True
  if name == 'empty_cell':  # a key without vectors: a missing cell, allowed
    cells[key] = np.zeros((0, 2, spec.length), np.float32)
    return cells, KEEPS, True
  if name == 'drop_cell':
    del cells[key]
    return cells, KEEPS, True
  if name == 'drop_class':
    for k in [k for k in cells if k[0] == key[0]]:
      del cells[k]
    return cells, BREAKS, True
  if name == 'nan':  # finiteness is sources.check_finite's business, not the reader's
    cells[key][0, 1, 3] = np.nan
    return cells, KEEPS, True
  if name == 'fortran_order':
    cells[key] = np.asfortranarray(cells[key])
    return cells, KEEPS, True
  if name == 'float_dtype':
    cells[key] = cells[key].astype(rng.choice(['<f2', '<f8', '>f4', '>f8']))
    return cells, KEEPS, False
  if name == 'numpy_int_snr':
    cells[(key[0], np.int64(key[1]))] = cells.pop(key)
    return cells, KEEPS, False
  if name == 'huge_float64':
    cells[key] = cells[key].astype(np.float64)
    cells[key][0, 0, 0] = 1e300
    return cells, BREAKS, False
  if name == 'bad_dtype':
    dtype = rng.choice(['complex64', 'complex128', 'int16', 'int64', 'uint8', 'bool', 'object'])
    cells[key] = cells[key].astype(dtype)
    return cells, BREAKS, False
  if name == 'bad_shape':
    value = cells[key]
    cells[key] = [np.swapaxes(value, 1, 2), value[:, :, :-1], value[:, 0], value[..., None],
                  value.reshape(-1), value[0, 0, 0]][int(rng.integers(6))]
    return cells, BREAKS, False
  if name == 'not_an_array':
    cells[key] = [cells[key].tolist(), tuple(cells[key].ravel()[:3]), None, 'x', b'x',
                  {'x': cells[key]}, 7][int(rng.integers(7))]
    return cells, BREAKS, False
  if name == 'bad_key':
    mod, snr = key
    bad = [(mod.encode(), snr), (mod, float(snr)), (mod, True), (mod, snr + 1), (mod,), mod,
           (mod, snr, 0), ('NOPE', snr), (snr, mod), 7, None, (mod, str(snr))]
    cells[bad[int(rng.integers(len(bad)))]] = cells.pop(key)
    return cells, BREAKS, False
  if name == 'container':
    wrapped = [list(cells.items()), tuple(cells.items()), {'data': cells}, list(cells.values()),
               None, 0, 'RML2016', np.zeros(3)]
    return wrapped[int(rng.integers(len(wrapped)))], BREAKS, False
  raise AssertionError(name)


PICKLE_MUTATIONS = ('none', 'empty_cell', 'drop_cell', 'drop_class', 'nan', 'fortran_order',
                    'float_dtype', 'numpy_int_snr', 'huge_float64', 'bad_dtype', 'bad_shape',
                    'not_an_array', 'bad_key', 'container')


@_fuzz_settings(250)
@given(spec_name=st.sampled_from(PICKLE_SPECS), mutation=st.sampled_from(PICKLE_MUTATIONS),
       writer=st.sampled_from(['py2', 2, 3, 4, 5]), cut=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_rml2016_pickle_reader(spec_name, mutation, writer, cut, seed):
  spec = specs.get_spec(spec_name)
  rng = np.random.default_rng(seed)
  cells = _pickle_cells(spec, rng)
  obj, verdict, py2 = _pickle_mutation(mutation, cells, spec, rng)
  expected = None
  if verdict == KEEPS:
    expected, verdict = _pickle_expected(spec, obj)
  with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / spec.file_name
    if writer == 'py2' and py2:
      formats.write_rml2016_pickle(path, obj)
    else:
      path.write_bytes(pickle.dumps(obj, protocol=2 if writer == 'py2' else writer))
    if cut:  # a pickle ends with STOP: any cut breaks it
      _cut(path, rng)
      verdict = BREAKS
    _check(path, spec, expected, verdict)


# --- X/Y/Z files: RML2018 and Sig2019 HDF5, Sig2019 NPZ -----------------------------------


class Link:
  """Stores ``value`` under ``/data/<key>`` and makes ``<key>`` a soft link to it."""

  def __init__(self, value):
    self.value = value


class Unwritten:
  """An HDF5 dataset of ``value``'s shape whose later rows were never written (in an .npz,
  where rows cannot be left out, the first rows only)."""

  def __init__(self, value):
    self.value = value


def _xyz_cells(spec, rng) -> list[tuple[int, int, np.ndarray]]:
  """Blocks (class, snr, float32 (1, 2, L)) in file order: one or two per class."""
  cells = []
  for c in range(spec.num_classes):
    for snr in sorted(rng.choice(spec.snrs, size=int(rng.integers(1, 3)), replace=False)):
      cells.append((c, int(snr), rng.standard_normal((1, 2, spec.length)).astype(np.float32)))
  return cells


def _raw_arrays(path: Path) -> dict:
  if path.suffix == '.npz':
    with np.load(path) as f:
      return {key: f[key] for key in f.files}
  with h5py.File(path, 'r') as f:
    return {key: f[key][()] for key in f}


def _write_h5(path: Path, arrays: dict, compressed: bool) -> None:
  with h5py.File(path, 'w') as f:
    for key, value in arrays.items():
      if isinstance(value, str) and value == GROUP:
        f.create_group(key).create_dataset('inner', data=np.zeros(3))
      elif isinstance(value, str) and value == EMPTY:
        f.create_dataset(key, data=h5py.Empty('f4'))
      elif isinstance(value, str) and value == DANGLING:
        f[key] = h5py.SoftLink('/nowhere')
      elif isinstance(value, Link):
        f.create_dataset(f'data/{key}', data=value.value)
        f[key] = h5py.SoftLink(f'/data/{key}')
      elif isinstance(value, Unwritten):  # chunked: half the rows; contiguous: none
        chunked = len(value.value) > 1 and compressed
        ds = f.create_dataset(key, value.value.shape, value.value.dtype,
                              chunks=(1,) + value.value.shape[1:] if chunked else None)
        if chunked:
          ds[:len(value.value) // 2] = value.value[:len(value.value) // 2]
      elif np.asarray(value).dtype.kind == 'U':
        f.create_dataset(key, data=np.asarray(value).astype(object), dtype=h5py.string_dtype())
      elif compressed and np.ndim(value) >= 1 and np.size(value):
        f.create_dataset(key, data=value, compression='gzip', chunks=True)
      else:
        f[key] = value


def _write_npz(path: Path, arrays: dict, compressed: bool) -> None:
  out = {}
  for key, value in arrays.items():
    if isinstance(value, str) and value == GROUP:
      out[key] = np.array({'inner': 0}, dtype=object)  # pickled: refused on reading
    elif isinstance(value, str) and value == EMPTY:
      out[key] = np.zeros(0, np.float32)
    elif isinstance(value, str) and value == DANGLING:
      continue  # a missing key
    elif isinstance(value, Unwritten):
      out[key] = value.value[:len(value.value) // 2]
    else:
      out[key] = value.value if isinstance(value, Link) else value
  (np.savez_compressed if compressed else np.savez)(path, **out)


def _x_as_read(x: np.ndarray, length: int) -> np.ndarray:
  """What the reader returns for a valid ``X``: float32 (N, 2, L)."""
  x = x.astype(np.float32)
  return np.ascontiguousarray(np.swapaxes(x, 1, 2)) if x.shape[1:] == (length, 2) else x


def _container(name: str, value):
  """``value`` replaced by a scalar, a group, an empty dataset or nothing (None)."""
  if name == 'unwritten':
    return Unwritten(value)
  return {'scalar': np.float32(0), 'group': GROUP, 'empty': EMPTY, 'missing': None,
          'dangling_link': DANGLING}[name]


CONTAINERS = ('scalar', 'group', 'empty', 'missing', 'dangling_link', 'unwritten')


def _mutate_x(name: str, arrays: dict, expected: dict, spec, rng) -> str:
  x = arrays['X']  # (N, L, 2) float32
  if name == 'none':
    return KEEPS
  if name in CONTAINERS:
    arrays['X'] = _container(name, x)
    return BREAKS
  if name == 'renamed':
    arrays['x'] = arrays.pop('X')
    return BREAKS
  keeps = {
      'channels_first': lambda: np.swapaxes(x, 1, 2),
      'float16': lambda: x.astype(np.float16),
      'float64': lambda: x.astype(np.float64),
      'big_endian': lambda: x.astype('>f4'),
      'soft_link': lambda: Link(x),
  }
  if name == 'nan':
    x[0, 5, 1] = np.nan
    expected['x'] = _x_as_read(x, spec.length)
    return KEEPS
  if name in keeps:
    arrays['X'] = keeps[name]()
    value = arrays['X'].value if isinstance(arrays['X'], Link) else arrays['X']
    expected['x'] = _x_as_read(value, spec.length)
    return KEEPS
  breaks = {
      'complex_iq': lambda: (x[..., 0] + 1j * x[..., 1]).astype(np.complex64),
      'complex': lambda: x.astype(rng.choice(['complex64', 'complex128'])),
      'int': lambda: (x * 100).astype(rng.choice(['int8', 'int16', 'int64', 'uint16'])),
      'bool': lambda: x > 0,
      'strings': lambda: np.full(len(x), b'iq'),
      'compound': lambda: np.ascontiguousarray(x).view([('i', '<f4'), ('q', '<f4')])[..., 0],
      'huge_float64': lambda: np.where(np.arange(x.size).reshape(x.shape) == 3, 1e300,
                                       x.astype(np.float64)),
      'shape': lambda: [x[..., 0], x[..., None], x[:, :-1], x.reshape(-1),
                        np.concatenate([x, x[:, :1]], axis=1)][int(rng.integers(5))],
  }
  arrays['X'] = breaks[name]()
  return BREAKS


X_MUTATIONS = ('none', 'channels_first', 'float16', 'float64', 'big_endian', 'soft_link', 'nan',
               'renamed', 'complex_iq', 'complex', 'int', 'bool', 'strings', 'compound',
               'huge_float64', 'shape') + CONTAINERS


def _mutate_y(name: str, arrays: dict, spec, rng) -> str:
  y = arrays['Y']  # (N, C) int64 one-hot
  labels = y.argmax(axis=1)
  row = int(rng.integers(len(y)))
  if name == 'none':
    return KEEPS
  if name in CONTAINERS:
    arrays['Y'] = _container(name, y)
    return BREAKS
  keeps = {
      'labels': lambda: labels.astype(rng.choice(['int8', 'int64', 'uint8', 'float32', '>i4'])),
      'label_column': lambda: labels.reshape(-1, 1),
      'bool_onehot': lambda: y.astype(bool),
      'float_onehot': lambda: y.astype(np.float32),
  }
  if name in keeps:
    arrays['Y'] = keeps[name]()
    return KEEPS
  y, labels = y.astype(np.float64), labels.astype(np.float64)
  if name == 'two_ones':
    y[row, (labels[row].astype(int) + 1) % spec.num_classes] = 1
  elif name == 'zero_row':
    y[row] = 0
  elif name == 'not_binary':
    y[row, int(labels[row])] = rng.choice([2, 0.5, -1, np.nan, np.inf])
  elif name == 'label_bad_value':
    labels[row] = rng.choice([spec.num_classes, -1, 0.5, np.nan, np.inf, -np.inf, 1e300])
    y = labels
  elif name == 'complex':
    y = labels.astype(np.complex64)
  elif name == 'strings':
    y = labels.astype(int).astype('S')
  elif name == 'shape':
    y = [np.concatenate([y, y[:, :1]], axis=1), y[..., None], y[:, 1:]][int(rng.integers(3))]
  else:
    raise AssertionError(name)
  arrays['Y'] = y
  return BREAKS


Y_MUTATIONS = ('none', 'labels', 'label_column', 'bool_onehot', 'float_onehot', 'two_ones',
               'zero_row', 'not_binary', 'label_bad_value', 'complex', 'strings',
               'shape') + CONTAINERS


def _mutate_z(name: str, arrays: dict, spec, rng) -> str:
  z = arrays['Z']  # (N, 1) int64
  row = int(rng.integers(len(z)))
  if name == 'none':
    return KEEPS
  if name in CONTAINERS:
    arrays['Z'] = _container(name, z)
    return BREAKS
  if name == 'flat':
    arrays['Z'] = z.reshape(-1)
    return KEEPS
  if name == 'dtype':
    arrays['Z'] = z.astype(rng.choice(['int8', 'int16', 'int32', 'float32', 'float64', '>i8']))
    return KEEPS
  z = z.astype(np.float64)
  if name == 'bad_value':
    z[row] = rng.choice([np.nan, np.inf, -np.inf, 1e300, -1e300, 0.5, spec.snrs[0] - 2,
                         spec.snrs[-1] + 2, spec.snrs[0] + 1])
  elif name == 'two_columns':
    z = np.concatenate([z, z], axis=1)
  elif name == 'bool':
    z = z > 0
  elif name == 'complex':
    z = z.astype(np.complex128)
  elif name == 'strings':
    z = z.astype(int).astype('S')
  else:
    raise AssertionError(name)
  arrays['Z'] = z
  return BREAKS


Z_MUTATIONS = ('none', 'flat', 'dtype', 'bad_value', 'two_columns', 'bool', 'complex',
               'strings') + CONTAINERS


def _mutate_classes(name: str, arrays: dict, spec, rng) -> str:
  """Changes the file's ``classes``; a permutation re-encodes the one-hot ``Y`` with it."""
  names = list(spec.names_in_file)
  if name == 'none':
    return KEEPS
  if name == 'absent':
    del arrays['classes']
    return KEEPS
  if name == 'unicode':
    arrays['classes'] = np.array(names)
    return KEEPS
  if name == 'permuted':
    order = rng.permutation(spec.num_classes)  # file column j holds class order[j]
    arrays['classes'] = np.array([names[i] for i in order], dtype='S')
    arrays['Y'] = arrays['Y'][:, order]
    return KEEPS
  bad = {
      'wrong_name': lambda: np.array(names[:-1] + ['NOPE'], dtype='S'),
      'one_short': lambda: np.array(names[:-1], dtype='S'),
      'duplicate': lambda: np.array(names[:-1] + names[:1], dtype='S'),
      'ints': lambda: np.arange(spec.num_classes),
      'scalar': lambda: np.array(names[0], dtype='S'),
      'two_d': lambda: np.array([names, names], dtype='S'),
      'not_utf8': lambda: np.array(names[:-1] + [b'\xff\xfe'], dtype='S'),
      'group': lambda: GROUP,
  }
  arrays['classes'] = bad[name]()
  return BREAKS


CLASSES_MUTATIONS = ('none', 'absent', 'unicode', 'permuted', 'wrong_name', 'one_short',
                     'duplicate', 'ints', 'scalar', 'two_d', 'not_utf8', 'group')


def _mutate_rows(name: str, arrays: dict, expected: dict, rng) -> str:
  """Changes the row count of one array, drops a whole class, or adds an unrelated key."""
  if name == 'none':
    return KEEPS
  if name == 'extra_key':
    arrays['extra'] = [np.zeros(3), np.float64(1), GROUP][int(rng.integers(3))]
    return KEEPS
  rows = [k for k in ('X', 'Y', 'Z')
          if isinstance(arrays.get(k), np.ndarray) and arrays[k].ndim >= 1]
  if len(rows) < 3:
    return KEEPS  # an array is already gone: the earlier mutation decides
  if name == 'drop_class':  # every row of one class, consistently from X, Y and Z
    keep = expected['y'] != rng.integers(int(expected['y'].max()) + 1)
    for k in rows:
      arrays[k] = arrays[k][keep]
    return BREAKS
  key = rows[int(rng.integers(3))]
  value = arrays[key]
  arrays[key] = value[:-1] if name == 'one_row_short' else np.concatenate([value, value[:1]])
  return BREAKS


ROWS_MUTATIONS = ('none', 'extra_key', 'drop_class', 'one_row_short', 'one_row_more')

XYZ_FILES = (('rml2018.01a', '.hdf5'), ('sig2019', '.hdf5'), ('sig2019', '.npz'))


@_fuzz_settings(400)
@given(file=st.sampled_from(XYZ_FILES), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_xyz_readers(file, data, seed):
  spec_name, suffix = file
  spec = specs.get_spec(spec_name)
  rng = np.random.default_rng(seed)
  cells = _xyz_cells(spec, rng)
  expected = {'x': np.concatenate([x for _, _, x in cells]),
              'y': np.array([c for c, _, _ in cells]),
              'snr': np.array([s for _, s, _ in cells])}
  # At most two of the five parts change, so valid variants stay common.
  parts = data.draw(st.sets(st.sampled_from(['classes', 'Y', 'X', 'Z', 'rows']), max_size=2))

  def pick(part, options):
    return data.draw(st.sampled_from(options)) if part in parts else 'none'
  mutations = {'classes': pick('classes', CLASSES_MUTATIONS), 'Y': pick('Y', Y_MUTATIONS),
               'X': pick('X', X_MUTATIONS), 'Z': pick('Z', Z_MUTATIONS),
               'rows': pick('rows', ROWS_MUTATIONS)}
  compressed, cut = data.draw(st.booleans()), data.draw(st.booleans())
  with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / f'{spec.name}{suffix}'
    formats.write_cells(path, spec, iter(cells), total=len(cells))
    verdict = KEEPS
    if set(mutations.values()) != {'none'} or compressed:
      arrays = _raw_arrays(path)
      verdict = _worst(
          _mutate_classes(mutations['classes'], arrays, spec, rng),
          _mutate_y(mutations['Y'], arrays, spec, rng),
          _mutate_x(mutations['X'], arrays, expected, spec, rng),
          _mutate_z(mutations['Z'], arrays, spec, rng),
          _mutate_rows(mutations['rows'], arrays, expected, rng))
      arrays = {k: v for k, v in arrays.items() if v is not None}
      (_write_npz if suffix == '.npz' else _write_h5)(path, arrays, compressed)
    if cut:
      _cut(path, rng)
      verdict = _worst(verdict, EITHER)
    _check(path, spec, expected, verdict)


def test_fuzz_mutations_are_all_named():
  """Every mutation name the strategies draw is one the mutators know (a typo would only
  surface when hypothesis happened to draw it)."""
  spec = specs.get_spec('sig2019')
  rng = np.random.default_rng(0)
  cells = _xyz_cells(spec, rng)

  def fresh():
    path = Path(tmp) / 'f.npz'
    formats.write_cells(path, spec, iter(cells), total=len(cells))
    return _raw_arrays(path)
  with tempfile.TemporaryDirectory() as tmp:
    for name in CLASSES_MUTATIONS:
      _mutate_classes(name, fresh(), spec, rng)
    for name in Y_MUTATIONS:
      _mutate_y(name, fresh(), spec, rng)
    expected = {'y': np.array([c for c, _, _ in cells])}
    for name in X_MUTATIONS:
      _mutate_x(name, fresh(), dict(expected), spec, rng)
    for name in Z_MUTATIONS:
      _mutate_z(name, fresh(), spec, rng)
    for name in ROWS_MUTATIONS:
      _mutate_rows(name, fresh(), expected, rng)
  for name in PICKLE_MUTATIONS:
    _pickle_mutation(name, _pickle_cells(specs.get_spec('rml2016.10a'), rng),
                     specs.get_spec('rml2016.10a'), rng)
