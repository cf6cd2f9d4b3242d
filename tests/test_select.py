import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from amrjax.errors import ConfigError
from amrjax.selection import select


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


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.data())
def test_balanced_quotas_in_steps_end_where_one_step_would(data):
  """DUSE's rounds rest on this: water-filling K_1, then K_2, ... (the supply shrinking by
  what was taken) gives the quotas of K_1 + K_2 + ... at once, and every step equals the
  step taken within what is left of those total quotas (``expansion.select_uncertain``)."""
  classes = data.draw(st.integers(1, 6))
  counts = st.lists(st.integers(0, 8), min_size=classes, max_size=classes)
  current, available = np.array(data.draw(counts)), np.array(data.draw(counts))
  steps = data.draw(st.lists(st.integers(1, 10), max_size=5))
  steps = [k for k in np.diff(np.minimum(np.cumsum([0] + steps), available.sum()))
           if k > 0]
  total = select.balanced_quotas(current, int(sum(steps)), available)
  moved = np.zeros_like(current)
  for k in steps:
    step = select.balanced_quotas(current + moved, int(k), available - moved)
    np.testing.assert_array_equal(
        step, select.balanced_quotas(current + moved, int(k), total - moved))
    moved += step
  np.testing.assert_array_equal(moved, total)


def test_class_balanced_selections():
  labels = np.array([0, 1, 0, 1, 0, 1])
  scores = np.array([0.3, 0.2, 0.1, 0.9, 0.2, 0.5])
  picks = select.class_balanced_top_k(scores, labels, np.array([2, 1]), largest=False)
  assert picks.tolist() == [1, 2, 4]
  rng = np.random.default_rng(0)
  picks = select.class_balanced_uniform(labels, np.array([1, 2]), rng)
  assert np.bincount(labels[picks], minlength=2).tolist() == [1, 2]


def test_proportional_quotas_sum_exactly_with_largest_remainder():
  q = select.proportional_quotas(np.array([50, 30, 20]), 7)  # exact 3.5, 2.1, 1.4
  assert q.tolist() == [4, 2, 1] and q.sum() == 7
  q = select.proportional_quotas(np.array([10, 10, 10]), 10)  # equal remainders -> low index
  assert q.tolist() == [4, 3, 3]
  rng = np.random.default_rng(0)
  for _ in range(50):
    counts = rng.integers(0, 40, 6)
    budget = int(rng.integers(0, counts.sum() + 1))
    q = select.proportional_quotas(counts, budget)
    assert q.sum() == budget and (q <= counts).all() and (q >= 0).all()
  with pytest.raises(ConfigError, match='cannot select'):
    select.proportional_quotas(np.array([1, 2]), 4)


def test_per_class_refuses_a_pick_outside_the_class():
  labels = np.array([0, 1, 0, 1])
  with pytest.raises(RuntimeError, match='outside the class'):
    select.per_class(labels, np.array([1, 1]), lambda members, q: np.array([1])[:q])


def test_tiered_draws_each_tiers_share():
  scores = np.arange(90, dtype=float)  # tiers: 60..89 (top), 30..59, 0..29
  picks = select.tiered(scores, 30, np.random.default_rng(0), shares=(0.5, 0.3, 0.2))
  assert len(picks) == 30 and len(np.unique(picks)) == 30
  assert np.sum(picks >= 60) == 15
  assert np.sum((picks >= 30) & (picks < 60)) == 9
  assert np.sum(picks < 30) == 6
  # All from the top tier = top-k when the share covers the tier exactly.
  top = select.tiered(scores, 30, np.random.default_rng(1), shares=(1.0, 0.0, 0.0))
  assert top.tolist() == list(range(60, 90))


def test_tiered_moves_a_short_tiers_shortfall_and_validates_shares():
  scores = np.arange(9, dtype=float)  # tiers of 3
  picks = select.tiered(scores, 6, np.random.default_rng(0), shares=(1.0, 0.0, 0.0))
  assert len(picks) == 6 and set(range(6, 9)) <= set(picks.tolist())
  with pytest.raises(ConfigError, match='sum to 1'):
    select.tiered(scores, 3, np.random.default_rng(0), shares=(0.5, 0.2))


@pytest.mark.parametrize('largest', [False, True])
@pytest.mark.parametrize('k, chunk', [(0, 4), (1, 4), (7, 4), (7, 100), (40, 16), (97, 8)])
def test_streaming_top_k_equals_top_k_over_everything(largest, k, chunk):
  rng = np.random.default_rng(k + chunk)
  scores = rng.integers(0, 6, 97).astype(np.float32)  # many ties
  ids = np.sort(rng.choice(10_000, 97, replace=False))
  stream = select.StreamingTopK(k, largest=largest, chunk=chunk)
  for part in np.array_split(np.arange(97), 13):
    stream.add(scores[part], ids[part])
  got_ids, got_scores = stream.result()
  want = select.top_k(scores, k, largest=largest)
  np.testing.assert_array_equal(got_ids, ids[want])
  np.testing.assert_array_equal(got_scores, scores[want])
  assert stream.seen == 97


def test_streaming_top_k_direction_on_two_samples():
  for largest, best in ((False, 11), (True, 10)):
    stream = select.StreamingTopK(1, largest=largest)
    stream.add(np.array([0.9, 0.1]), np.array([10, 11]))
    assert stream.result()[0].tolist() == [best]


def test_streaming_top_k_refuses_bad_input():
  with pytest.raises(ConfigError, match='k must be >= 0'):
    select.StreamingTopK(-1, largest=False)
  stream = select.StreamingTopK(3, largest=False)
  with pytest.raises(ConfigError, match='NaN'):
    stream.add(np.array([np.nan]), np.array([0]))
  with pytest.raises(ConfigError, match='2 ids for 1 scores'):
    stream.add(np.array([0.5]), np.array([0, 1]))
  stream.add(np.array([0.5, 0.2]), np.array([0, 1]))
  with pytest.raises(ConfigError, match='cannot select 3 of 2'):
    stream.result()
