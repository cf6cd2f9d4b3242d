import numpy as np
import pytest

from amrjax.data.pool import ArrayStore, SignalPool, iter_batches
from amrjax.errors import ConfigError
from tests.helpers import random_pool


def test_batches_have_fixed_shape_and_mask_the_padding():
  pool = random_pool(n=10)
  batches = list(iter_batches(pool, 4, rng=np.random.default_rng(0)))
  assert len(batches) == 3
  assert all(b.x.shape == (4, 2, 128) and b.y.shape == (4,) for b in batches)
  assert [int(b.mask.sum()) for b in batches] == [4, 4, 2]
  real = np.concatenate([b.positions[b.mask] for b in batches])
  assert sorted(real.tolist()) == list(range(10))  # every member exactly once
  last = batches[-1]
  np.testing.assert_array_equal(last.x, pool.signals(last.positions))
  np.testing.assert_array_equal(last.y, pool.y[last.positions])


def test_subset_take_drop_union_keep_ids_sorted():
  pool = random_pool(n=12)
  a = pool.subset(np.array([5, 1, 3]))
  np.testing.assert_array_equal(a.ids, [1, 3, 5])
  b = pool.take_ids(np.array([7, 2]))
  np.testing.assert_array_equal(b.ids, [2, 7])
  joined = a.union(b)
  np.testing.assert_array_equal(joined.ids, [1, 2, 3, 5, 7])
  np.testing.assert_array_equal(joined.signals(), pool.signals(np.array([1, 2, 3, 5, 7])))
  np.testing.assert_array_equal(joined.drop_ids(np.array([3])).ids, [1, 2, 5, 7])
  with pytest.raises(ConfigError, match='share sample ids'):
    a.union(a)
  with pytest.raises(ConfigError, match='not in this pool'):
    a.take_ids(np.array([4]))


def test_in_memory_copy_reads_the_same_signals():
  pool = random_pool(n=20).subset(np.arange(3, 17, 2))
  mem = pool.in_memory()
  assert isinstance(mem.store, ArrayStore) and mem.store.x.shape[0] == len(pool)
  np.testing.assert_array_equal(mem.signals(), pool.signals())
  np.testing.assert_array_equal(mem.subset(np.array([2])).signals(), pool.signals()[2:3])


def test_class_counts_and_validation():
  pool = random_pool(n=10, num_classes=3)
  np.testing.assert_array_equal(pool.class_counts(), [4, 3, 3])
  with pytest.raises(ConfigError, match=r'\(N, 2, L\)'):
    SignalPool.from_arrays(np.zeros((3, 128, 2)), np.zeros(3), np.zeros(3), ('a', 'b'))
