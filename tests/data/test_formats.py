import os
import pickle
import warnings
import zipfile

import h5py
import numpy as np
import pytest

from amrjax.data import formats, specs, synth
from amrjax.errors import DataFormatError

RML = specs.get_spec('rml2016.10a')


def _cells(spec, n=3, snrs=(-20, 0, 18), seed=0):
  rng = np.random.default_rng(seed)
  return {(name, snr): rng.standard_normal((n, 2, spec.length)).astype(np.float32)
          for name in spec.names_in_file for snr in snrs}


def test_python2_style_pickle_round_trip_gives_str_keys(tmp_path):
  cells = _cells(RML)
  path = formats.write_rml2016_pickle(tmp_path / 'RML2016.10a_dict.pkl', cells)
  raw = path.read_bytes()
  assert raw.startswith(b'\x80\x02}') and b'numpy.core.multiarray\n_reconstruct' in raw
  # What users do with the real file: plain pickle with latin1 gives str keys.
  with open(path, 'rb') as f:
    plain = pickle.load(f, encoding='latin1')
  assert ('QAM16', 18) in plain and isinstance(next(iter(plain))[0], str)
  np.testing.assert_array_equal(plain[('QAM16', 18)], cells[('QAM16', 18)])
  pool = formats.read_rml2016_pickle(path, RML)
  assert len(pool) == len(cells) * 3
  # ids follow (class index, SNR): class 0 is 8PSK, its SNR -20 block comes first.
  np.testing.assert_array_equal(pool.signals(np.arange(3)), cells[('8PSK', -20)])
  last = pool.subset(np.arange(len(pool) - 3, len(pool)))
  assert (last.y == RML.classes.index('WBFM')).all() and (last.snr == 18).all()
  np.testing.assert_array_equal(last.signals(), cells[('WBFM', 18)])


@pytest.mark.parametrize('protocol', [2, 4, 5])
def test_native_python3_pickles_are_read(tmp_path, protocol):
  cells = _cells(RML, n=2)
  path = tmp_path / 'native.pkl'
  path.write_bytes(pickle.dumps(cells, protocol=protocol))
  pool = formats.read_rml2016_pickle(path, RML)
  np.testing.assert_array_equal(pool.signals(np.arange(2)), cells[('8PSK', -20)])


class _Exploit:
  def __reduce__(self):
    return (os.system, ('touch pwned',))


def test_restricted_unpickler_refuses_code(tmp_path):
  path = tmp_path / 'evil.pkl'
  path.write_bytes(pickle.dumps({('BPSK', 0): _Exploit()}, protocol=2))
  cwd = os.getcwd()
  os.chdir(tmp_path)
  try:
    with pytest.raises(DataFormatError, match=r'asks for posix.system.*only NumPy arrays'):
      formats.read_rml2016_pickle(path, RML)
  finally:
    os.chdir(cwd)
  assert not (tmp_path / 'pwned').exists()


def test_restricted_unpickler_refuses_other_globals(tmp_path):
  path = tmp_path / 'evil.pkl'
  path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
  with pytest.raises(DataFormatError, match='builtins.eval'):
    formats.load_pickle(path)


def test_truncated_and_corrupt_pickles(tmp_path):
  good = formats.write_rml2016_pickle(tmp_path / 'good.pkl', _cells(RML, n=2))
  truncated = tmp_path / 'truncated.pkl'
  truncated.write_bytes(good.read_bytes()[:5000])
  with pytest.raises(DataFormatError, match='truncated or corrupt'):
    formats.read_rml2016_pickle(truncated, RML)
  garbage = tmp_path / 'garbage.pkl'
  garbage.write_bytes(np.random.default_rng(0).bytes(4096))
  with pytest.raises(DataFormatError):
    formats.read_rml2016_pickle(garbage, RML)


def test_pickle_with_wrong_content(tmp_path):
  path = tmp_path / 'x.pkl'
  path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
  with pytest.raises(DataFormatError, match='expected a pickled dict'):
    formats.read_rml2016_pickle(path, RML)
  path.write_bytes(pickle.dumps({('QAM1024', 0): np.zeros((1, 2, 128), np.float32)}))
  with pytest.raises(DataFormatError, match="'QAM1024' is not a rml2016.10a class"):
    formats.read_rml2016_pickle(path, RML)
  path.write_bytes(pickle.dumps({('BPSK', 0): np.zeros((1, 128, 2), np.float32)}))
  with pytest.raises(DataFormatError, match=r'should be float \(n, 2, 128\)'):
    formats.read_rml2016_pickle(path, RML)
  path.write_bytes(pickle.dumps({(b'BPSK', 0): np.zeros((1, 2, 128), np.float32)}))
  with pytest.raises(DataFormatError, match='is not \\(modulation, snr\\)'):
    formats.read_rml2016_pickle(path, RML)
  cells = _cells(RML, n=1)
  del cells[('WBFM', -20)], cells[('WBFM', 0)], cells[('WBFM', 18)]
  path.write_bytes(pickle.dumps(cells))
  with pytest.raises(DataFormatError, match='no vectors of class.*WBFM'):
    formats.read_rml2016_pickle(path, RML)


def _write_xyz(spec, path, count=2):
  cells = list(synth.iter_cells(spec, count_per_cell=count, seed=0))
  total = sum(len(x) for _, _, x in cells)
  formats.write_cells(path, spec, iter(cells), total)
  return cells


def test_rml2018_hdf5_layout_and_lazy_reads(tmp_path):
  spec = specs.get_spec('rml2018.01a')
  path = tmp_path / spec.file_name
  cells = _write_xyz(spec, path, count=2)
  with h5py.File(path, 'r') as f:
    assert f['X'].shape == (24 * 26 * 2, 1024, 2) and f['X'].dtype == np.float32
    assert f['Y'].shape == (24 * 26 * 2, 24) and f['Z'].shape == (24 * 26 * 2, 1)
    # Rows are ordered by class (true one-hot order), then SNR ascending.
    assert f['Y'][0].argmax() == 0 and f['Y'][-1].argmax() == 23
    assert f['Z'][0, 0] == -20 and f['Z'][51, 0] == 30
  pool = formats.read_dataset(path, spec)
  assert isinstance(pool.store, formats.H5Store)
  assert pool.classes[pool.y[-1]] == 'OQPSK' and pool.classes[pool.y[0]] == 'OOK'
  ids = np.array([1240, 3, 700, 4])  # unsorted, scattered
  expected = np.concatenate([cells[i // 2][2][i % 2][None] for i in ids])
  np.testing.assert_array_equal(pool.store.read(ids), expected)
  dense = np.arange(100, 180)
  np.testing.assert_array_equal(
      pool.store.read(dense), np.concatenate([cells[i // 2][2][i % 2][None] for i in dense]))


def test_xyz_reader_refuses_bad_files(tmp_path):
  spec = specs.get_spec('rml2018.01a')
  path = tmp_path / 'bad.hdf5'
  with h5py.File(path, 'w') as f:
    f['X'] = np.zeros((4, 1024, 2), np.float32)
    f['Y'] = np.eye(24)[:4]
  with pytest.raises(DataFormatError, match='no dataset.*Z'):
    formats.read_dataset(path, spec)
  with h5py.File(path, 'w') as f:
    f['X'] = np.zeros((4, 512, 2), np.float32)
    f['Y'] = np.eye(24)[:4]
    f['Z'] = np.zeros((4, 1))
  with pytest.raises(DataFormatError, match=r'X has shape \(4, 512, 2\)'):
    formats.read_dataset(path, spec)
  with h5py.File(path, 'w') as f:
    f['X'] = np.zeros((4, 1024, 2), np.float32)
    f['Y'] = np.ones((4, 24))
    f['Z'] = np.zeros((4, 1))
  with pytest.raises(DataFormatError, match='Y is not one-hot'):
    formats.read_dataset(path, spec)
  truncated = tmp_path / 'truncated.hdf5'
  _write_xyz(spec, tmp_path / 'ok.hdf5', count=1)
  truncated.write_bytes((tmp_path / 'ok.hdf5').read_bytes()[:20000])
  with pytest.raises(DataFormatError, match='not a readable HDF5 file|truncated or corrupt'):
    pool = formats.read_dataset(truncated, spec)
    pool.signals()
  empty = tmp_path / 'empty.hdf5'
  empty.write_bytes(b'')
  with pytest.raises(DataFormatError, match='is empty'):
    formats.read_dataset(empty, spec)


def test_sig2019_hdf5_and_npz_round_trip(tmp_path):
  spec = specs.get_spec('sig2019')
  h5 = tmp_path / 'sig2019-12.hdf5'
  cells = _write_xyz(spec, h5, count=1)
  npz = tmp_path / 'sig2019-12.npz'
  _write_xyz(spec, npz, count=1)
  a, b = formats.read_dataset(h5, spec), formats.read_dataset(npz, spec)
  np.testing.assert_array_equal(a.signals(), b.signals())
  np.testing.assert_array_equal(a.y, b.y)
  np.testing.assert_array_equal(a.snr, b.snr)
  np.testing.assert_array_equal(a.signals(np.array([0])), cells[0][2])


def test_npz_with_integer_labels_and_its_own_class_order(tmp_path):
  spec = specs.get_spec('sig2019')
  x = np.random.default_rng(0).standard_normal((3, 512, 2)).astype(np.float32)
  order = list(reversed(spec.classes))  # the file names its classes in another order
  path = tmp_path / 'sig.npz'
  labels = np.array(list(range(12)) * 1)[:3]
  np.savez(path, X=np.concatenate([x, np.zeros((9, 512, 2), np.float32)]),
           Y=np.arange(12), Z=np.full(12, 10), classes=np.array(order))
  pool = formats.read_dataset(path, spec)
  assert [pool.classes[c] for c in pool.y] == order
  np.testing.assert_array_equal(pool.signals(np.arange(3)), np.swapaxes(x, 1, 2))
  del labels


def test_npz_refuses_object_arrays(tmp_path):
  path = tmp_path / 'obj.npz'
  np.savez(path, X=np.array([object()], dtype=object), Y=np.zeros(1), Z=np.zeros(1))
  with pytest.raises(DataFormatError, match='not a readable .npz file'):
    formats.read_dataset(path, specs.get_spec('sig2019'))


def test_missing_file():
  with pytest.raises(DataFormatError, match='does not exist'):
    formats.read_dataset('/nonexistent/file.pkl', RML)


# --- issue 19: every bad file is a one-line DataFormatError, nothing wrong is accepted ----

R18 = specs.get_spec('rml2018.01a')
SIG = specs.get_spec('sig2019')


def _xyz_arrays(spec, n=None, seed=0):
  """Valid X (n, L, 2) float32, one-hot Y (n, C) and Z (n, 1) with every class present."""
  n = spec.num_classes if n is None else n
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, spec.length, 2)).astype(np.float32)
  y = np.eye(spec.num_classes, dtype=np.int64)[np.arange(n) % spec.num_classes]
  z = np.asarray(spec.snrs)[np.arange(n) % len(spec.snrs)].reshape(-1, 1)
  return {'X': x, 'Y': y, 'Z': z}


def _write_h5(path, arrays):
  with h5py.File(path, 'w') as f:
    for key, value in arrays.items():
      if isinstance(value, str) and value == 'group':
        f.create_group(key)
      else:
        f[key] = value
  return path


def _write_any(path, arrays):
  if path.suffix == '.npz':
    np.savez(path, **arrays)
    return path
  return _write_h5(path, arrays)


def _no_reading(monkeypatch):
  """Makes reading Y or Z fail the test: the shape checks must come first."""
  def fail(*args, **kwargs):
    raise AssertionError('Y or Z was read before the row counts were checked')
  monkeypatch.setattr(formats, '_labels_from_y', fail)
  monkeypatch.setattr(formats, '_snrs_from_z', fail)


@pytest.mark.parametrize('suffix,spec', [('.hdf5', R18), ('.npz', SIG)])
@pytest.mark.parametrize('short', ['X', 'Y', 'Z'])
def test_xyz_arrays_with_different_row_counts_are_refused_before_reading(
    tmp_path, monkeypatch, suffix, spec, short):
  arrays = _xyz_arrays(spec)
  arrays[short] = arrays[short][:-1]
  path = _write_any(tmp_path / f'f{suffix}', arrays)
  counts = {k: len(v) for k, v in arrays.items()}
  _no_reading(monkeypatch)
  with pytest.raises(DataFormatError, match=(
      f'X has {counts["X"]} rows, Y {counts["Y"]} and Z {counts["Z"]}; each vector needs '
      'one row in all three')):
    formats.read_dataset(path, spec)


def test_y_with_more_rows_than_x_is_refused(tmp_path):
  arrays = _xyz_arrays(R18)
  arrays['Y'] = np.concatenate([arrays['Y'], arrays['Y'][:3]])
  with pytest.raises(DataFormatError, match='X has 24 rows, Y 27 and Z 24'):
    formats.read_dataset(_write_h5(tmp_path / 'f.hdf5', arrays), R18)


@pytest.mark.parametrize('suffix,spec', [('.hdf5', R18), ('.npz', SIG)])
def test_complex_x_is_refused_without_a_complex_warning(tmp_path, suffix, spec):
  arrays = _xyz_arrays(spec)
  arrays['X'] = (arrays['X'][..., 0] + 1j * arrays['X'][..., 1]).astype(np.complex64)
  path = _write_any(tmp_path / f'f{suffix}', arrays)
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    with pytest.raises(DataFormatError, match=r'X is complex \(complex64\); store I and Q as '
                       rf'a real float32 array \(N, {spec.length}, 2\)'):
      formats.read_dataset(path, spec)


def test_complex_pickle_cell_is_refused(tmp_path):
  cells = _cells(RML, n=1)
  cells[('BPSK', 0)] = cells[('BPSK', -20)].astype(np.complex64)
  path = tmp_path / 'c.pkl'
  path.write_bytes(pickle.dumps(cells))
  with pytest.raises(DataFormatError, match=r"entry \('BPSK', 0\) is complex \(complex64\); "
                     r'store I and Q as real rows, float32 \(n, 2, 128\)'):
    formats.read_rml2016_pickle(path, RML)


@pytest.mark.parametrize('key', ['X', 'Y', 'Z'])
def test_hdf5_groups_and_scalars_are_refused_naming_the_key(tmp_path, key):
  arrays = _xyz_arrays(R18)
  arrays[key] = 'group'
  path = _write_h5(tmp_path / 'g.hdf5', arrays)
  with pytest.raises(DataFormatError, match=rf'g.hdf5: {key} is an HDF5 group, not a dataset'):
    formats.read_dataset(path, R18)
  arrays[key] = np.float32(1.0)
  path = _write_h5(tmp_path / 's.hdf5', arrays)
  with pytest.raises(DataFormatError, match=rf's.hdf5: {key} is a scalar \(float32\)'):
    formats.read_dataset(path, R18)


def test_non_finite_and_huge_snrs_are_reported_without_warnings(tmp_path):
  arrays = _xyz_arrays(R18)
  arrays['Z'] = arrays['Z'].astype(np.float64)
  arrays['Z'][[2, 7]] = np.nan
  arrays['Z'][9] = np.inf
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    with pytest.raises(DataFormatError, match=r'Z holds non-finite SNR values \(NaN or '
                       r'infinite\) in 3 row\(s\), first \[2, 7, 9\]'):
      formats.read_dataset(_write_h5(tmp_path / 'nan.hdf5', arrays), R18)
    arrays['Z'] = _xyz_arrays(R18)['Z'].astype(np.float64)
    arrays['Z'][5] = 1e300
    with pytest.raises(DataFormatError, match=r'SNRs 1e\+300 dB are off the rml2018.01a grid '
                       r'-20..30 dB \(1 row\(s\), first \[5\]\)'):
      formats.read_dataset(_write_h5(tmp_path / 'big.hdf5', arrays), R18)
    arrays['Z'][5] = 4.5
    with pytest.raises(DataFormatError, match=r'Z holds non-integer SNRs in 1 row\(s\), '
                       r'first \[5\] \(e.g. 4.5 dB\)'):
      formats.read_dataset(_write_h5(tmp_path / 'half.hdf5', arrays), R18)


def test_labels_and_classes_are_checked(tmp_path):
  arrays = _xyz_arrays(SIG)
  arrays['Y'] = np.arange(12, dtype=np.float64)
  arrays['Y'][3] = np.nan
  with pytest.raises(DataFormatError, match=r'Y holds non-integer labels in 1 row\(s\), '
                     r'first \[3\]'):
    formats.read_dataset(_write_any(tmp_path / 'a.npz', arrays), SIG)
  arrays['Y'][3] = 1e300
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    with pytest.raises(DataFormatError, match=r'Y has labels outside 0..11 in 1 row'):
      formats.read_dataset(_write_any(tmp_path / 'b.npz', arrays), SIG)
  arrays['Y'] = np.arange(12)
  arrays['classes'] = np.array(SIG.classes[:-1])
  with pytest.raises(DataFormatError, match='its classes .* are not the sig2019 classes'):
    formats.read_dataset(_write_any(tmp_path / 'c.npz', arrays), SIG)
  arrays['classes'] = np.arange(12)
  with pytest.raises(DataFormatError, match=r'classes is int64 \(12,\); expected the class '
                     'names'):
    formats.read_dataset(_write_any(tmp_path / 'd.npz', arrays), SIG)


def test_float64_x_beyond_float32_is_refused_not_made_infinite(tmp_path):
  for suffix in ('.npz', '.hdf5'):
    arrays = _xyz_arrays(SIG)
    arrays['X'] = arrays['X'].astype(np.float64)
    arrays['X'][4, 10, 1] = -1e300
    path = _write_any(tmp_path / f'f{suffix}', arrays)
    with warnings.catch_warnings():
      warnings.simplefilter('error')
      with pytest.raises(DataFormatError, match=r'X holds values beyond the float32 range '
                         r'\(up to 1e\+300\); amrjax works in float32'):
        formats.read_dataset(path, SIG).signals()


def test_npz_holding_one_npy_array_or_raw_members(tmp_path):
  path = tmp_path / 'one.npz'
  with open(path, 'wb') as f:
    np.save(f, np.zeros(3))
  with pytest.raises(DataFormatError, match='holds a single .npy array, not an .npz archive'):
    formats.read_dataset(path, SIG)
  path = tmp_path / 'raw.npz'
  arrays = _xyz_arrays(SIG)
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('X', b'not an array')
    for key in ('Y', 'Z'):
      with z.open(f'{key}.npy', 'w') as member:
        np.save(member, arrays[key])
  with pytest.raises(DataFormatError, match='raw.npz: X is a bytes, not an array'):
    formats.read_dataset(path, SIG)


def test_pickle_with_a_missing_cell_is_read_without_it(tmp_path):
  cells = _cells(RML, n=2)
  del cells[('QPSK', 0)]
  path = formats.write_rml2016_pickle(tmp_path / 'm.pkl', cells)
  pool = formats.read_rml2016_pickle(path, RML)
  assert len(pool) == 2 * len(cells)
  qpsk = RML.classes.index('QPSK')
  assert not ((pool.y == qpsk) & (pool.snr == 0)).any()
  cells[('QPSK', 0)] = np.zeros((0, 2, 128), np.float32)  # an empty entry is missing too
  path.write_bytes(pickle.dumps(cells))
  assert len(formats.read_rml2016_pickle(path, RML)) == 2 * (len(cells) - 1)


def test_pickle_keys_with_bool_snr_and_values_that_are_not_arrays(tmp_path):
  path = tmp_path / 'k.pkl'
  cells = _cells(RML, n=1, snrs=(0,))
  path.write_bytes(pickle.dumps({('BPSK', False): cells.pop(('BPSK', 0)), **cells}))
  with pytest.raises(DataFormatError, match=r"key \('BPSK', False\) is not \(modulation, snr\)"):
    formats.read_rml2016_pickle(path, RML)
  path.write_bytes(pickle.dumps({('BPSK', 0): [[1.0] * 128] * 2, **cells}))
  with pytest.raises(DataFormatError, match=r"entry \('BPSK', 0\) is a list, not an array"):
    formats.read_rml2016_pickle(path, RML)


def test_unreadable_file_is_a_data_format_error(tmp_path):
  if os.geteuid() == 0:
    pytest.skip('root reads every file')
  path = formats.write_rml2016_pickle(tmp_path / 'p.pkl', _cells(RML, n=1))
  path.chmod(0)
  with pytest.raises(DataFormatError, match='cannot be opened .*check its permissions'):
    formats.read_dataset(path, RML)


def test_hdf5_rows_never_written_are_refused(tmp_path):
  arrays = _xyz_arrays(R18)
  path = tmp_path / 'partial.hdf5'
  with h5py.File(path, 'w') as f:
    f.create_dataset('X', arrays['X'].shape, np.float32, chunks=(4, 1024, 2))[:20] = (
        arrays['X'][:20])
    f['Y'], f['Z'] = arrays['Y'], arrays['Z']
  with pytest.raises(DataFormatError, match=r'X \(24, 1024, 2\) is only partly written \(5 of '
                     r'its 6 chunks\); the file is incomplete'):
    formats.read_dataset(path, R18)
  with h5py.File(path, 'w') as f:
    f['X'], f['Z'] = arrays['X'], arrays['Z']
    f.create_dataset('Y', (24,), np.int64)  # labels that would all read as class 0
  with pytest.raises(DataFormatError, match=r'Y \(24,\) was never written \(no storage\)'):
    formats.read_dataset(path, R18)
