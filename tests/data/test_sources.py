import builtins
import errno
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amrjax.data import formats, sources, specs
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError, DataFormatError
from tests.helpers import write_rml2016_without_cells


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


def test_a_missing_cell_is_recorded_and_noticed(tmp_path):
  path = write_rml2016_without_cells(tmp_path, {('QPSK', 4), ('8PSK', -20)})
  notes = []
  data = sources.load('rml2016.10a', data_dir=tmp_path, notify=notes.append)
  assert data.missing_cells == (('8PSK', -20), ('QPSK', 4))
  assert len(data.pool) == 218
  assert notes == [f'amrjax: {path}: 2 of 220 (class, SNR) cells hold '
                   'no vectors: 8PSK at -20 dB, QPSK at 4 dB']


def test_complete_files_have_no_missing_cells(tmp_path, tiny_spec):
  data = sources.load(tiny_spec.name, data_dir=tmp_path, cache_dir=tmp_path / 'c',
                      synthetic_per_cell=1, notify=lambda _: None)
  assert data.missing_cells == ()


def test_dropping_nonfinite_vectors_updates_missing_cells(tiny_spec):
  x = np.ones((12, 2, 128), np.float32)
  x[5, 0, 0] = np.nan  # the only vector of (QPSK, 14)
  y, snr = np.repeat(np.arange(4), 3), np.tile([0, 12, 14], 4)
  pool = SignalPool.from_arrays(x, y, snr, tiny_spec.classes)
  notes = []
  data = sources.check_finite(sources.Dataset(tiny_spec, pool, {'path': 't.hdf5'}),
                              drop=True, notify=notes.append)
  assert data.missing_cells == (('QPSK', 14),)
  assert notes[-1] == ('amrjax: t.hdf5: 1 of 12 (class, SNR) cells hold no vectors after '
                       '--drop_nonfinite: QPSK at 14 dB')


def test_too_little_free_space_is_refused_before_writing(tmp_path, tiny_spec, monkeypatch):
  usage = shutil.disk_usage(tmp_path)
  monkeypatch.setattr(shutil, 'disk_usage', lambda _: usage._replace(free=1000))
  with pytest.raises(ConfigError, match=r'cannot generate the synthetic stand-in .*tiny-test'
                     r'.hdf5: it needs about 1.\d+ MB and .* has 1 kB free; free some space or '
                     r'point --cache_dir'):
    sources.load(tiny_spec.name, data_dir=tmp_path, cache_dir=tmp_path / 'c')
  assert not [p for p in (tmp_path / 'c').rglob('*') if p.is_file()]


class _FullDisk(io.FileIO):
  """A file whose disk fills up after ``room`` bytes: writes then fail with ENOSPC."""

  room = 60_000

  def write(self, data):
    if self.tell() + len(data) > self.room:
      raise OSError(errno.ENOSPC, 'No space left on device')
    return super().write(data)


@pytest.mark.parametrize('spec_name', ['tiny-test', 'rml2016.10a'])
def test_a_full_disk_while_writing_is_one_line_and_leaves_no_file(tmp_path, tiny_spec,
                                                                   monkeypatch, spec_name):
  real_open = open

  def full_disk_open(file, mode='r', *args, **kwargs):
    if 'w' in mode and 'synthetic' in str(file):
      return _FullDisk(file, mode.replace('b', '').replace('+', '') + '+')
    return real_open(file, mode, *args, **kwargs)
  monkeypatch.setattr(builtins, 'open', full_disk_open)
  with pytest.raises(ConfigError, match=r'could not write the synthetic stand-in .* \(\[Errno '
                     rf'{errno.ENOSPC}\] No space left on device\); it needs about .* MB: free '
                     'some space or point --cache_dir'):
    sources.load(spec_name, data_dir=tmp_path, cache_dir=tmp_path / 'c',
                 synthetic_per_cell=20, notify=lambda _: None)
  monkeypatch.undo()
  assert not [p for p in (tmp_path / 'c').rglob('*') if p.is_file()]
  data = sources.load(spec_name, data_dir=tmp_path, cache_dir=tmp_path / 'c',
                      synthetic_per_cell=20, notify=lambda _: None)  # regenerated, complete
  assert len(data.pool) == 20 * data.spec.num_classes * len(data.spec.snrs)


_FILE_SIZE_LIMIT = '''
import resource, signal, sys
from amrjax.data import sources, specs
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
specs.register(specs.DatasetSpec(
    name='tiny-test', classes=('BPSK', 'QPSK', '16QAM', 'FM'), length=128, snrs=(0, 12, 14),
    count_per_cell=400, train_fraction=0.75, file_names=('tiny-test.hdf5',),
    file_format=specs.XYZ_HDF5, normalisation=specs.UNIT_POWER))
try:
  sources.load('tiny-test', data_dir=sys.argv[1], cache_dir=sys.argv[1])
except sources.ConfigError as e:
  print(f'error: {e}', file=sys.stderr)
  sys.exit(2)
'''


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='RLIMIT_FSIZE and SIGXFSZ')
def test_hdf5_write_failure_is_an_error_not_a_segfault(tmp_path):
  # A real failed write inside HDF5 (the file size limit stands in for a full disk): HDF5
  # used to fail to flush and the process died with SIGSEGV at exit (status 139).
  done = subprocess.run([sys.executable, '-c', _FILE_SIZE_LIMIT, str(tmp_path)],
                        capture_output=True, text=True, timeout=120,
                        cwd=Path(__file__).parents[2])
  assert done.returncode == 2, done.stderr[-2000:]
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: could not write the synthetic '
                                                 'stand-in'), done.stderr
  assert 'File too large' in lines[0] and 'it needs about 6.16 MB' in lines[0]
  assert not [p for p in tmp_path.rglob('*') if p.is_file()]
