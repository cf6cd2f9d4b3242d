import numpy as np
import pytest

from amrjax import select
from amrjax.errors import ConfigError


def test_direction_on_two_samples():
  scores = np.array([0.9, 0.1])
  assert select.top_k(scores, 1, largest=False).tolist() == [1]
  assert select.top_k(scores, 1, largest=True).tolist() == [0]


def test_ties_break_by_position_whatever_the_partition():
  scores = np.array([0.5, 0.2, 0.5, 0.2, 0.5, 0.9])
  assert select.top_k(scores, 3, largest=False).tolist() == [1, 3, 0]
  assert select.top_k(scores, 4, largest=True).tolist() == [5, 0, 2, 4]
  rng = np.random.default_rng(0)
  many = rng.integers(0, 5, size=1000).astype(float)
  got = select.top_k(many, 137, largest=False)
  expected = np.lexsort((np.arange(1000), many))[:137]
  np.testing.assert_array_equal(got, expected)


def test_top_k_refuses_nan_and_bad_k():
  with pytest.raises(ConfigError, match='NaN'):
    select.top_k(np.array([0.1, np.nan]), 1, largest=False)
  with pytest.raises(ConfigError, match='cannot select 3 of 2'):
    select.top_k(np.array([0.1, 0.2]), 3, largest=False)


def test_equal_shares_largest_remainder():
  np.testing.assert_array_equal(select.equal_shares(10, 4), [3, 3, 2, 2])
  np.testing.assert_array_equal(select.equal_shares(12, 4), [3, 3, 3, 3])
  assert select.equal_shares(7, 3, available=np.array([1, 10, 10])).tolist() == [1, 3, 3]


def test_balanced_quotas_fill_the_lowest_classes_first():
  q = select.balanced_quotas(np.array([5, 2, 3]), 4, np.array([10, 10, 10]))
  assert q.sum() == 4 and (np.array([5, 2, 3]) + q).tolist() == [5, 5, 4]
  q = select.balanced_quotas(np.array([5, 2, 3]), 3, np.array([10, 0, 10]))
  assert q.tolist() == [1, 0, 2]
  with pytest.raises(ConfigError, match='exceeds the 3 samples'):
    select.balanced_quotas(np.array([0, 0]), 4, np.array([1, 2]))


@pytest.mark.parametrize('seed', range(5))
def test_balanced_quotas_properties(seed):
  rng = np.random.default_rng(seed)
  current = rng.integers(0, 20, size=7)
  available = rng.integers(0, 30, size=7)
  add = int(rng.integers(0, available.sum() + 1))
  q = select.balanced_quotas(current, add, available)
  assert q.sum() == add and (q >= 0).all() and (q <= available).all()
  final = current + q
  # No class that could still take more sits two or more below another that was raised.
  raised = q > 0
  open_ = q < available
  if raised.any() and open_.any():
    assert final[open_].min() >= final[raised].max() - 1


def test_class_balanced_selections():
  labels = np.array([0, 1, 0, 1, 0, 1])
  scores = np.array([0.3, 0.2, 0.1, 0.9, 0.2, 0.5])
  picks = select.class_balanced_top_k(scores, labels, np.array([2, 1]), largest=False)
  assert picks.tolist() == [1, 2, 4]
  rng = np.random.default_rng(0)
  picks = select.class_balanced_uniform(labels, np.array([1, 2]), rng)
  assert np.bincount(labels[picks], minlength=2).tolist() == [1, 2]
