import os
import pickle

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
