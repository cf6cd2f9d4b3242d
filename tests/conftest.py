"""Test setup: eight fake CPU devices, set before JAX starts, so sharded code is exercised."""

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import jax  # noqa: E402  (after XLA_FLAGS on purpose)
import numpy as np  # noqa: E402
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

