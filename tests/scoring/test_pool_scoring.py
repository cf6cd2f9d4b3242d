"""The pool-level entry points of amrjax.scoring: score_pool, select_from_pool, dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import models, scoring
from amrjax.scoring import pools
from amrjax.errors import ConfigError
from tests.helpers import random_pool


@pytest.fixture(scope='module')
def scorer():
  model = models.get('cnn1d', 4, 128)  # a Glorot head: margins differ from sample to sample
  return model, model.init(jax.random.key(0), jnp.zeros((1, 2, 128)), train=False)


def _numpy_margin(model, variables, pool):
  logits = np.asarray(model.apply(variables, jnp.asarray(pool.signals()), train=False),
                      np.float64)
  p = np.exp(logits - logits.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  top2 = np.sort(p, axis=1)[:, -2:]
  return top2[:, 1] - top2[:, 0]


def test_select_from_pool_takes_the_smallest_margins(scorer):
  model, variables = scorer
  pool = random_pool(n=75).subset(np.arange(0, 75, 3))
  margins = _numpy_margin(model, variables, pool)
  np.testing.assert_allclose(pools.score_pool(model, variables, pool, batch_size=16),
                             margins, atol=1e-5)
  ids, top = pools.select_from_pool(model, variables, pool, 6, batch_size=16)
  np.testing.assert_array_equal(ids, pool.ids[np.argsort(margins)[:6]])
  np.testing.assert_allclose(top, np.sort(margins)[:6], atol=1e-5)
  largest, _ = pools.select_from_pool(model, variables, pool, 6, largest=True,
                                        batch_size=16)
  np.testing.assert_array_equal(largest, pool.ids[np.argsort(-margins)[:6]])


def test_bfloat16_forward_pass_stays_near_float32(scorer):
  model, variables = scorer
  pool = random_pool(n=40)
  f32 = pools.score_pool(model, variables, pool, scoring.entropy, batch_size=16)
  bf16 = pools.score_pool(model, variables, pool, scoring.entropy, batch_size=16,
                            compute_dtype='bfloat16')
  assert bf16.dtype == np.float32
  np.testing.assert_allclose(bf16, f32, atol=0.05)
  assert not np.array_equal(bf16, f32)  # it did run in bfloat16


def test_labelled_softmax_scorer_gives_el2n(scorer):
  model, variables = scorer
  pool = random_pool(n=12)
  fn = scoring.labelled_softmax_scorer(model, scoring.el2n)
  got = fn(variables, jnp.asarray(pool.signals()), jnp.asarray(pool.y))
  logits = np.asarray(model.apply(variables, jnp.asarray(pool.signals()), train=False))
  p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  want = np.linalg.norm(p - np.eye(4)[pool.y], axis=1)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_unknown_compute_dtype_is_refused(scorer):
  model, variables = scorer
  with pytest.raises(ConfigError, match='compute dtype must be one of float32, bfloat16'):
    pools.score_pool(model, variables, random_pool(n=4), compute_dtype='float16')

