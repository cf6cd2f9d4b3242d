import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from amrjax.errors import ConfigError
from amrjax.scoring import geometry
from tests.xla_env import xla_flags

N, D, C, BUDGET = 50, 8, 6, 10


def _data(seed=0, n=N):
  rng = np.random.default_rng(seed)
  emb = rng.standard_normal((n, D)).astype(np.float32)
  log_probs = np.asarray(jax.nn.log_softmax(rng.standard_normal((n, C)) * 2, axis=-1))
  mask = np.zeros(n, bool)
  mask[rng.choice(n, 7, replace=False)] = True
  return emb, log_probs, mask


def _np_sym_kl(log_p, log_q):
  p, q = np.exp(log_p), np.exp(log_q)
  return np.sum(special.rel_entr(p, q) + special.rel_entr(q, p), axis=-1)


def _np_herding(x, budget, mask=None):
  x = x.astype(np.float64)
  selected = np.zeros(len(x), bool) if mask is None else mask.copy()
  mu = x.mean(0)
  picks = []
  for _ in range(budget):
    target = (selected.sum() + 1) * mu - x[selected].sum(0)
    dist = np.linalg.norm(target - x, axis=1)
    dist[selected] = np.inf
    j = int(np.argmin(dist))
    picks.append(j)
    selected[j] = True
  return picks


def _np_farthest_first(x, budget, dist_fn, mask=None, first=0):
  x = x.astype(np.float64)
  n = len(x)
  selected = np.zeros(n, bool) if mask is None else mask.copy()
  picks = []
  if selected.any():
    min_dist = np.array([min(dist_fn(x[i], x[c]) for c in np.flatnonzero(selected))
                         for i in range(n)])
  else:
    picks.append(first)
    selected[first] = True
    min_dist = np.array([dist_fn(x[i], x[first]) for i in range(n)])
  while len(picks) < budget:
    j = int(np.argmax(np.where(selected, -np.inf, min_dist)))
    picks.append(j)
    selected[j] = True
    min_dist = np.minimum(min_dist, [dist_fn(x[i], x[j]) for i in range(n)])
  return picks


def _euclid(a, b):
  return float(np.linalg.norm(a - b))


def _np_cal(qe, ql, re, rl, k, exclude_self):
  qe, re = qe.astype(np.float64), re.astype(np.float64)
  scores = []
  for i in range(len(qe)):
    dist = np.linalg.norm(re - qe[i], axis=1)
    if exclude_self:
      dist[i] = np.inf
    nbr = np.argsort(dist, kind='stable')[:k]
    scores.append(np.mean(_np_sym_kl(ql[i].astype(np.float64), rl[nbr].astype(np.float64))))
  return np.array(scores)


@pytest.mark.parametrize('use_mask', [False, True])
def test_herding_matches_numpy_greedy(use_mask):
  emb, _, mask = _data(1)
  mask = mask if use_mask else None
  got = geometry.herding(emb, BUDGET, initial_mask=mask)
  assert got.dtype == jnp.int32
  assert got.tolist() == _np_herding(emb, BUDGET, mask)


@pytest.mark.parametrize('use_mask,first', [(False, None), (False, 13), (True, None)])
def test_k_center_greedy_matches_numpy_greedy(use_mask, first):
  emb, _, mask = _data(2)
  mask = mask if use_mask else None
  got = geometry.k_center_greedy(emb, BUDGET, initial_mask=mask, first=first)
  assert got.dtype == jnp.int32
  assert got.tolist() == _np_farthest_first(emb, BUDGET, _euclid, mask, first or 0)
  if mask is not None:
    assert not mask[np.asarray(got)].any()


@pytest.mark.parametrize('use_mask', [False, True])
def test_contextual_diversity_matches_numpy_greedy(use_mask):
  _, log_probs, mask = _data(3)
  mask = mask if use_mask else None
  got = geometry.contextual_diversity(log_probs, BUDGET, initial_mask=mask)
  assert got.tolist() == _np_farthest_first(log_probs, BUDGET, _np_sym_kl, mask)


@pytest.mark.parametrize('exclude_self', [False, True])
def test_cal_matches_brute_force_knn(exclude_self):
  emb, log_probs, _ = _data(4)
  got = geometry.cal(emb, log_probs, emb, log_probs, k=10, exclude_self=exclude_self)
  assert got.shape == (N,) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, _np_cal(emb, log_probs, emb, log_probs, 10, exclude_self),
                             rtol=1e-5, atol=1e-7)


def test_cal_with_a_separate_reference_set():
  q_emb, q_lp, _ = _data(5, n=23)
  r_emb, r_lp, _ = _data(6, n=41)
  got = geometry.cal(q_emb, q_lp, r_emb, r_lp, k=4, chunk_size=5)
  np.testing.assert_allclose(got, _np_cal(q_emb, q_lp, r_emb, r_lp, 4, False), rtol=1e-5,
                             atol=1e-7)


def test_symmetric_kl_matches_scipy_and_is_symmetric():
  rng = np.random.default_rng(7)
  lp = np.asarray(jax.nn.log_softmax(rng.standard_normal((4, 9, C)) * 3, axis=-1))
  lq = np.asarray(jax.nn.log_softmax(rng.standard_normal((4, 9, C)) * 3, axis=-1))
  got = geometry.symmetric_kl(lp, lq)
  assert got.shape == (4, 9)
  np.testing.assert_allclose(got, _np_sym_kl(lp.astype(np.float64), lq.astype(np.float64)),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(geometry.symmetric_kl(lq, lp), got, rtol=1e-6)
  np.testing.assert_array_equal(geometry.symmetric_kl(lp, lp), np.zeros((4, 9)))
  zero_class = jnp.log(jnp.array([0.5, 0.5, 0.0]))  # log 0 = -inf on both sides: no NaN
  assert float(geometry.symmetric_kl(zero_class, zero_class)) == 0.0


def test_herding_direction_two_candidates():
  # Row 0 is already selected; mu = 11/3, so the target for the next row is 2 mu - 0 = 22/3.
  emb = np.array([[0.0], [1.0], [10.0]], np.float32)
  mask = np.array([True, False, False])
  got = geometry.herding(emb, 1, initial_mask=mask).tolist()
  assert got == [2]  # running mean 5 is 4/3 from mu; picking row 1 gives 1/2, 19/6 away
  dist = np.abs(2 * emb[:, 0].mean() - emb[0, 0] - emb[1:, 0])
  assert 1 + int(np.argmax(dist)) == 1  # DeepCore's argmax takes the other row


def test_k_center_direction_two_candidates():
  emb = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0]], np.float32)
  assert geometry.k_center_greedy(emb, 1, initial_mask=np.array([True, False, False])
                                  ).tolist() == [2]
  assert geometry.k_center_greedy(emb, 2).tolist() == [0, 2]
  log_probs = jnp.log(jnp.array([[0.8, 0.2], [0.75, 0.25], [0.1, 0.9]]))
  assert geometry.contextual_diversity(log_probs, 2).tolist() == [0, 2]


def test_cal_direction_contrastive_sample_scores_higher():
  emb = np.array([[0.0], [0.1], [5.0], [5.1]], np.float32)
  log_probs = jnp.log(jnp.array([[0.9, 0.1], [0.1, 0.9],    # close, disagreeing: contrastive
                                 [0.9, 0.1], [0.85, 0.15]]))  # close, agreeing
  s = np.asarray(geometry.cal(emb, log_probs, emb, log_probs, k=1, exclude_self=True))
  assert s[0] > s[2] and s[1] > s[3]


def test_results_do_not_depend_on_chunk_size():
  emb, log_probs, mask = _data(8)
  for fn, x, masks in ((geometry.herding, emb, (None, mask)),
                       (geometry.k_center_greedy, emb, (None, mask)),
                       (geometry.contextual_diversity, log_probs, (mask,))):
    for m in masks:
      a = fn(x, BUDGET, initial_mask=m, chunk_size=7)
      b = fn(x, BUDGET, initial_mask=m, chunk_size=64)
      np.testing.assert_array_equal(a, b)
  a = geometry.cal(emb, log_probs, emb, log_probs, exclude_self=True, chunk_size=7)
  b = geometry.cal(emb, log_probs, emb, log_probs, exclude_self=True, chunk_size=64)
  np.testing.assert_allclose(a, b, rtol=1e-6)


def test_no_repeats_and_budget_met_even_on_duplicate_rows():
  emb = np.zeros((12, 3), np.float32)
  log_probs = jnp.full((12, 4), -jnp.log(4.0))
  mask = np.zeros(12, bool)
  mask[[2, 5]] = True
  for fn, x in ((geometry.herding, emb), (geometry.k_center_greedy, emb),
                (geometry.contextual_diversity, log_probs)):
    assert sorted(fn(x, 12, chunk_size=5).tolist()) == list(range(12))
    rest = np.asarray(fn(x, 10, initial_mask=mask, chunk_size=5))
    assert len(set(rest.tolist())) == 10 and not mask[rest].any()
  assert geometry.herding(emb, 0).shape == (0,)


def test_bad_arguments_raise_config_error():
  emb, log_probs, mask = _data(10)
  with pytest.raises(ConfigError, match='budget'):
    geometry.herding(emb, N - 6, initial_mask=mask)
  with pytest.raises(ConfigError, match='2-D'):
    geometry.k_center_greedy(emb[0], 1)
  with pytest.raises(ConfigError, match='initial_mask'):
    geometry.k_center_greedy(emb, 1, initial_mask=mask.astype(int))
  with pytest.raises(ConfigError, match='first'):
    geometry.contextual_diversity(log_probs, 1, initial_mask=mask, first=3)
  with pytest.raises(ConfigError, match='first'):
    geometry.k_center_greedy(emb, 1, first=N)
  with pytest.raises(ConfigError, match='k = 50'):
    geometry.cal(emb, log_probs, emb, log_probs, k=N, exclude_self=True)
  with pytest.raises(ConfigError, match='exclude_self'):
    geometry.cal(emb, log_probs, emb[:-1], log_probs[:-1], exclude_self=True)
  with pytest.raises(ConfigError, match='chunk_size'):
    geometry.herding(emb, 1, chunk_size=0)


def test_k_center_greedy_memory_stays_linear_in_pool_size():
  # 200,000 x 256 float32 is 200 MB; one N x N float32 matrix would be 160 GB.
  script = textwrap.dedent("""
      import numpy as np
      from amrjax.scoring import geometry
      emb = np.random.default_rng(0).standard_normal((200_000, 256), dtype=np.float32)
      picks = np.asarray(geometry.k_center_greedy(emb, 20))
      assert len(set(picks.tolist())) == 20, picks
      # VmHWM: this process's peak RSS. (ru_maxrss would carry the forking pytest
      # process's peak across exec.)
      status = open('/proc/self/status').read().split('VmHWM:')[1]
      print(int(status.split()[0]))
  """)
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=xla_flags())
  out = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True,
                       timeout=60, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  peak_kib = int(out.stdout.split()[-1])
  assert peak_kib < 2 * 1024 * 1024, f'peak RSS {peak_kib / 1024:.0f} MiB'
