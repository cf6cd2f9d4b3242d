"""Test setup, before JAX starts: eight fake CPU devices, so sharded code is exercised, and
one compute thread per test process, XLA's and OpenMP's/BLAS's (``tests/xla_env.py``)."""

import os
import pathlib

from tests.xla_env import xla_flags

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + xla_flags(devices=8)).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# scikit-learn's t-SNE (OpenMP) and NumPy's BLAS start a thread per core; beside the other
# xdist worker, their spinning threads made a 1 s t-SNE take 20 s.
for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
  os.environ.setdefault(_var, '1')
# One persistent compilation cache for the whole session: both xdist workers and the driver
# subprocesses the experiment tests start (they inherit the environment) compile many of the
# same programs, and each is compiled once. It lives under .pytest_cache (git-ignored, absent
# from a clean clone); the size limit turns on JAX's file lock, so concurrent readers and
# writers do not see half-written entries. Set JAX_COMPILATION_CACHE_DIR to move it.
os.environ.setdefault(
    'JAX_COMPILATION_CACHE_DIR',
    str(pathlib.Path(__file__).resolve().parent.parent / '.pytest_cache' / 'jax-compilation-cache'))
os.environ.setdefault('JAX_COMPILATION_CACHE_MAX_SIZE', str(2 ** 30))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')

import jax  # noqa: E402  (after XLA_FLAGS on purpose)
import pytest  # noqa: E402

from amrjax.data import specs  # noqa: E402


@pytest.fixture(scope='session', autouse=True)
def _eight_devices():
  assert jax.device_count() == 8, 'tests expect 8 fake CPU devices'


@pytest.fixture
def tiny_spec():
  """A small registered spec (4 classes, L = 128, 3 SNRs) for fast end-to-end tests."""
  return specs.register(specs.DatasetSpec(
      name='tiny-test', classes=('BPSK', 'QPSK', '16QAM', 'FM'), length=128,
      snrs=(0, 12, 14), count_per_cell=40, train_fraction=0.75,
      file_names=('tiny-test.hdf5',), file_format=specs.XYZ_HDF5,
      normalisation=specs.UNIT_POWER))

