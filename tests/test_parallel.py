import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import parallel
from amrjax.errors import ConfigError
from tests.helpers import random_pool


def _energy(variables, x):
  return jnp.sum(x**2, axis=(1, 2)) * variables['scale']


@pytest.mark.parametrize('n', [1, 37, 64, 100])
def test_map_pool_handles_any_pool_size(n):
  pool = random_pool(n=n)
  out = parallel.map_pool(jax.jit(_energy), {'scale': 2.0}, pool, batch_size=16)
  np.testing.assert_allclose(out, 2 * (pool.signals()**2).sum(axis=(1, 2)), rtol=1e-5)


def test_map_pool_compiles_once_whatever_the_pool_size():
  @jax.jit
  @chex.assert_max_traces(n=1)
  def fn(variables, x):
    return _energy(variables, x)

  for n in (5, 40, 123):
    parallel.map_pool(fn, {'scale': 1.0}, random_pool(n=n, seed=n), batch_size=32)


def test_sharded_equals_single_device():
  pool = random_pool(n=50)
  fn = jax.jit(_energy)
  eight = parallel.map_pool(fn, {'scale': 1.0}, pool, batch_size=12)  # rounded up to 16
  one = parallel.map_pool(fn, {'scale': 1.0}, pool, batch_size=12,
                          mesh=parallel.data_mesh(1))
  np.testing.assert_allclose(eight, one, rtol=1e-6)
  assert parallel.data_mesh().size == 8
  assert parallel.round_up_batch(12, parallel.data_mesh()) == 16


def test_map_pool_returns_pytrees():
  pool = random_pool(n=10)
  out = parallel.map_pool(jax.jit(lambda v, x: {'a': x[:, 0, 0], 'b': x[:, :, :3]}), {},
                          pool, batch_size=4)
  assert out['a'].shape == (10,) and out['b'].shape == (10, 2, 3)


def test_empty_pool_is_an_error():
  with pytest.raises(ConfigError, match='empty pool'):
    parallel.map_pool(jax.jit(_energy), {'scale': 1.0}, random_pool(n=4).subset([]))
