import numpy as np
import pytest

from amrjax.data import formats, sources, specs
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError, DataFormatError


def test_synthetic_stand_in_is_generated_once_and_reused(tmp_path, tiny_spec):
  notes = []
  a = sources.load(tiny_spec.name, data_dir=tmp_path / 'data', cache_dir=tmp_path / 'cache',
                   notify=notes.append)
  assert a.origin['kind'] == 'synthetic' and len(a.pool) == 4 * 3 * 40
  assert any('generated' in n for n in notes)
  assert any('using the synthetic stand-in' in n and 'tiny-test.hdf5' in n for n in notes)
  notes.clear()
  b = sources.load(tiny_spec.name, data_dir=tmp_path / 'data', cache_dir=tmp_path / 'cache',
                   notify=notes.append)
  assert not any(n.startswith('amrjax: generated') for n in notes)
  assert len(notes) == 1 and 'cached at' in notes[0]
  np.testing.assert_array_equal(a.pool.signals(np.arange(5)), b.pool.signals(np.arange(5)))


def test_real_file_wins(tmp_path, tiny_spec):
  data_dir = tmp_path / 'data'
  synthetic = sources.load(tiny_spec.name, data_dir=data_dir, cache_dir=tmp_path / 'c',
                           synthetic_per_cell=2, notify=lambda _: None)
  data_dir.mkdir()
  (data_dir / tiny_spec.file_name).write_bytes(open(synthetic.origin['path'], 'rb').read())
  real = sources.load(tiny_spec.name, data_dir=data_dir, cache_dir=tmp_path / 'c')
  assert real.origin['kind'] == 'real' and len(real.pool) == 4 * 3 * 2


def test_corrupt_real_file_is_an_error_not_a_fallback(tmp_path):
  spec = specs.get_spec('rml2016.10a')
  (tmp_path / spec.file_name).write_bytes(b'\x80\x02}(U\x04BPSK')
  with pytest.raises(DataFormatError, match='truncated or corrupt'):
    sources.load('rml2016.10a', data_dir=tmp_path, cache_dir=tmp_path / 'c')


def test_no_real_file_and_no_synthetic_allowed(tmp_path, tiny_spec):
  with pytest.raises(ConfigError, match='no tiny-test file'):
    sources.load(tiny_spec.name, data_dir=tmp_path, allow_synthetic=False)


def test_rml2016_stand_in_is_a_real_format_pickle(tmp_path):
  ds = sources.load('rml2016.10a', data_dir=tmp_path, cache_dir=tmp_path / 'c',
                    synthetic_per_cell=2, notify=lambda _: None)
  assert ds.origin['path'].endswith('RML2016.10a_dict.pkl')
  data = formats.load_pickle(ds.origin['path'])
  assert ('QAM64', 18) in data and data[('QAM64', 18)].shape == (2, 2, 128)


def test_check_finite_refuses_or_drops_nonfinite_vectors_with_the_count():
  x = np.random.default_rng(0).standard_normal((30, 2, 16)).astype(np.float32)
  x[4, 0, 2], x[17, 1, 0] = np.nan, -np.inf
  pool = SignalPool.from_arrays(x, np.arange(30) % 3, np.zeros(30), ('a', 'b', 'c'))
  data = sources.Dataset(specs.get_spec('rml2016.10a'), pool, {'kind': 'real', 'path': 'f.pkl'})
  np.testing.assert_array_equal(sources.nonfinite_positions(pool, chunk=7), [4, 17])
  with pytest.raises(DataFormatError, match=r'f.pkl: 2 of 30 vectors hold NaN or infinite '
                     r'values \(first sample ids: \[4, 17\]\); fix the file, or pass '
                     '--drop_nonfinite'):
    sources.check_finite(data)
  kept = sources.check_finite(data, drop=True, notify=lambda _: None)
  assert len(kept.pool) == 28 and kept.origin['nonfinite_dropped'] == 2
  assert 4 not in kept.pool.ids and 17 not in kept.pool.ids
  assert sources.check_finite(kept).origin['nonfinite_dropped'] == 0
