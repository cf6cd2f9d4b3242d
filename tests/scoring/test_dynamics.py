import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax.scoring import dynamics
from amrjax.selection import select

# Hand-worked correctness sequences (one presentation per epoch, T = 6):
SEQUENCES = np.array([
    [0, 1, 0, 1, 0, 1],  # forgotten twice, never wrong twice in a row
    [1, 1, 1, 1, 1, 1],  # unforgettable
    [0, 0, 0, 0, 0, 0],  # never learned: 5 persistent errors
    [0, 0, 1, 1, 0, 0],  # forgotten once; persistent: t=2 and t=6 -> 2
    [1, 0, 0, 1, 1, 0],  # forgotten twice; persistent once
], bool)
FORGET = [2, 0, 0, 1, 2]
PERSIST = [0, 0, 5, 2, 1]


def _record(sequences, losses, batch_size=2, seed=0):
  """Feeds sequences (n, T) through `update` in shuffled, padded batches, epoch by epoch."""
  n, t = sequences.shape
  state = dynamics.init(n)
  rng = np.random.default_rng(seed)
  step = jax.jit(dynamics.update)
  for epoch in range(t):
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
      pos = order[start:start + batch_size]
      real = len(pos)
      pos = np.concatenate([pos, order[:batch_size - real]])  # padded like iter_batches
      mask = np.arange(batch_size) < real
      state = step(state, jnp.asarray(pos), jnp.asarray(sequences[pos, epoch]),
                   jnp.asarray(losses[pos, epoch]), jnp.asarray(mask))
  return state


def test_counts_match_hand_worked_sequences():
  losses = np.linspace(0.1, 3.0, SEQUENCES.size, dtype=np.float32).reshape(SEQUENCES.shape)
  state = _record(SEQUENCES, losses)
  np.testing.assert_array_equal(state.presentations, [6] * 5)
  np.testing.assert_array_equal(state.forgetting, FORGET)
  np.testing.assert_array_equal(state.persistent, PERSIST)
  np.testing.assert_array_equal(state.correct, SEQUENCES.sum(1))
  np.testing.assert_allclose(state.loss_sum, losses.sum(1), rtol=1e-6)
  np.testing.assert_array_equal(state.last_correct, SEQUENCES[:, -1])


def test_forgetting_scores_never_learned_value():
  state = _record(SEQUENCES, np.ones(SEQUENCES.shape, np.float32))
  # Toneva: never-learned samples score T (= 6), above every forgettable sample.
  np.testing.assert_array_equal(dynamics.forgetting_counts(state), [2, 0, 6, 1, 2])
  np.testing.assert_array_equal(dynamics.forgetting_counts(state, never_learned=np.inf),
                                [2, 0, np.inf, 1, 2])
  # DeepCore's choice, available but explicit: tied with the unforgettable sample.
  np.testing.assert_array_equal(dynamics.forgetting_counts(state, never_learned=0),
                                [2, 0, 0, 1, 2])
  assert select.top_k(np.asarray(dynamics.forgetting_counts(state)), 1,
                      largest=True).tolist() == [2]


def test_foqus_score_matches_equations_4_to_8():
  rng = np.random.default_rng(1)
  seq = rng.random((30, 7)) < 0.6
  losses = rng.random((30, 7)).astype(np.float32) * 2
  state = _record(seq, losses, batch_size=4)
  t = seq.shape[1]
  prev, cur = seq[:, :-1], seq[:, 1:]
  forget = np.sum(prev & ~cur, 1)
  persist = np.sum(~prev & ~cur, 1)
  quality = seq.sum(1) / t - 0.1 * losses.sum(1) / t
  expected = forget / (t - 1) + persist / (t - 1) + quality
  np.testing.assert_array_equal(dynamics.persistent_error_counts(state), persist)
  np.testing.assert_allclose(dynamics.foqus_quality(state, beta=0.1), quality, rtol=1e-5)
  np.testing.assert_allclose(dynamics.foqus_score(state, beta=0.1), expected, rtol=1e-5)
  # The Table V ablation: any subset of the three terms, each term as in the reference.
  terms = {'forgetting': forget / (t - 1), 'persistent': persist / (t - 1),
           'quality': quality}
  for subset in [('forgetting',), ('quality',), ('persistent', 'quality'),
                 ('forgetting', 'persistent')]:
    np.testing.assert_allclose(dynamics.foqus_score(state, beta=0.1, components=subset),
                               sum(terms[c] for c in subset), rtol=1e-5, atol=1e-7)
  with pytest.raises(ValueError, match='subset'):
    dynamics.foqus_score(state, components=('forgetting', 'margin'))


def test_foqus_score_is_nan_without_two_presentations():
  state = _record(SEQUENCES[:, :1], np.ones((5, 1), np.float32))
  assert np.isnan(np.asarray(dynamics.foqus_score(state))).all()
  with pytest.raises(Exception, match='NaN'):
    select.top_k(np.asarray(dynamics.foqus_score(state)), 2, largest=True)


def test_padded_rows_are_dropped():
  state = dynamics.init(3)
  state = dynamics.update(state, jnp.array([0, 1, 0]), jnp.array([True, False, True]),
                          jnp.array([1.0, 2.0, 1.0]), jnp.array([True, True, False]))
  np.testing.assert_array_equal(state.presentations, [1, 1, 0])
  np.testing.assert_array_equal(state.last_correct, [1, 0, -1])
