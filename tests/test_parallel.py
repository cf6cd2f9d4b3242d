import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import parallel
from amrjax.errors import ConfigError
from amrjax.selection import select
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


def test_pmap_and_sharded_jit_equal_single_device():
  pool = random_pool(n=53)
  fn = jax.jit(_energy)
  one = parallel.map_pool(fn, {'scale': 3.0}, pool, batch_size=16, mesh=parallel.data_mesh(1))
  sharded = parallel.map_pool(fn, {'scale': 3.0}, pool, batch_size=16)
  pmapped = parallel.map_pool_pmap(fn, {'scale': 3.0}, pool, batch_size=16)
  np.testing.assert_allclose(sharded, one, rtol=1e-6)
  np.testing.assert_allclose(pmapped, one, rtol=1e-6)


def test_labels_are_passed_in_pool_order():
  pool = random_pool(n=21, num_classes=5)

  def label_plus_first(variables, x, y):
    return y + x[:, 0, 0] * 0

  fn = jax.jit(label_plus_first)
  np.testing.assert_array_equal(
      parallel.map_pool(fn, {}, pool, batch_size=8, with_labels=True), pool.y)
  np.testing.assert_array_equal(
      parallel.map_pool_pmap(fn, {}, pool, batch_size=8, with_labels=True), pool.y)


def test_hdf5_pool_is_read_in_batches_and_matches_memory(tmp_path):
  from amrjax.data import formats, specs, synth
  spec = specs.get_spec('rml2018.01a')
  path = tmp_path / spec.file_name
  cells = list(synth.iter_cells(spec, count_per_cell=1, seed=0))
  formats.write_cells(path, spec, iter(cells), sum(len(x) for _, _, x in cells))
  lazy = formats.read_dataset(path, spec).subset(np.arange(0, 600, 7))
  assert isinstance(lazy.store, formats.H5Store)
  fn = jax.jit(_energy)
  np.testing.assert_allclose(
      parallel.map_pool(fn, {'scale': 1.0}, lazy, batch_size=16),
      parallel.map_pool(fn, {'scale': 1.0}, lazy.in_memory(), batch_size=16), rtol=1e-6)


def test_prefetched_keeps_order_and_reraises_reader_errors():
  assert list(parallel.prefetched(iter(range(50)), depth=3)) == list(range(50))
  assert list(parallel.prefetched(iter(range(5)), depth=0)) == list(range(5))

  def broken():
    yield 1
    raise OSError('disk went away')

  with pytest.raises(OSError, match='disk went away'):
    list(parallel.prefetched(broken(), depth=2))
  # Abandoning the iterator early does not hang.
  it = parallel.prefetched(iter(range(1000)), depth=2)
  assert next(it) == 0
  it.close()


def test_model_scorers_agree_across_single_sharded_and_pmap():
  from amrjax import models, scoring
  from amrjax.train import init_state
  model = models.get('cnn2d', 4, 128)
  variables = init_state(model, length=128, learning_rate=1e-3, seed=0).variables
  pool = random_pool(n=27, num_classes=4)
  for fn, labels in ((scoring.softmax_scorer(model, scoring.entropy), False),
                     (scoring.gradients.grand_scorer(model), True)):
    one = parallel.map_pool(fn, variables, pool, batch_size=16, mesh=parallel.data_mesh(1),
                            with_labels=labels)
    eight = parallel.map_pool(fn, variables, pool, batch_size=16, with_labels=labels)
    pmapped = parallel.map_pool_pmap(fn, variables, pool, batch_size=16, with_labels=labels)
    np.testing.assert_allclose(eight, one, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(pmapped, one, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize('largest', [False, True])
def test_top_k_pool_equals_top_k_over_map_pool(largest):
  pool = random_pool(n=90).subset(np.arange(3, 90, 2))  # ids 3, 5, ..., 89
  fn = jax.jit(lambda v, x: jnp.round(x[:, 0, 0] * 4))  # coarse scores: many ties
  scores = parallel.map_pool(fn, {}, pool, batch_size=8)
  ids, top = parallel.top_k_pool(fn, {}, pool, 11, largest=largest, batch_size=8)
  want = select.top_k(scores, 11, largest=largest)
  np.testing.assert_array_equal(ids, pool.ids[want])
  np.testing.assert_array_equal(top, scores[want])


def test_top_k_pool_refuses_bad_k_and_non_scalar_scores():
  pool = random_pool(n=10)
  with pytest.raises(ConfigError, match='cannot select 11 of 10'):
    parallel.top_k_pool(jax.jit(_energy), {'scale': 1.0}, pool, 11, largest=False)
  with pytest.raises(ConfigError, match='one score per sample'):
    parallel.top_k_pool(jax.jit(lambda v, x: x[:, 0, :2]), {}, pool, 2, largest=False,
                        batch_size=8)


def test_for_each_batch_hands_over_positions_in_pool_order():
  pool = random_pool(n=29)
  seen = []
  parallel.for_each_batch(jax.jit(lambda v, x: x[:, 0, 0]), {}, pool,
                          lambda pos, out: seen.append((pos, out)), batch_size=8)
  assert [len(p) for p, _ in seen] == [8, 8, 8, 5]
  np.testing.assert_array_equal(np.concatenate([p for p, _ in seen]), np.arange(29))
  np.testing.assert_array_equal(np.concatenate([o for _, o in seen]),
                                pool.signals()[:, 0, 0])


def test_data_mesh_refuses_more_devices_than_there_are():
  with pytest.raises(ConfigError, match='asked for 9 devices, this process has 8'):
    parallel.data_mesh(9)
