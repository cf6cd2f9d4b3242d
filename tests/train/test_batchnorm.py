"""Population BatchNorm statistics and running-statistic offsets against NumPy."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import models
from amrjax.data.pool import iter_batches
from amrjax.errors import ConfigError
from amrjax.train.batchnorm import (batch_statistics_logits, has_batchnorm,
                                    population_batch_stats, running_stat_offsets)
from tests.helpers import random_pool


class _LinearThenNorm(nn.Module):
  """(B, 2, L) -> Dense 3 over the flattened signal -> BatchNorm (momentum 0.8) -> logits."""

  @nn.compact
  def __call__(self, x, *, train=False):
    h = nn.Dense(3)(x.reshape(x.shape[0], -1))
    return nn.BatchNorm(use_running_average=not train, momentum=0.8)(h)


def test_population_statistics_average_the_batch_statistics():
  pool = random_pool(n=40, length=8)
  model = _LinearThenNorm()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 2, 8)))
  # running statistics far from anything, which the result must not depend on
  variables = {'params': variables['params'],
               'batch_stats': jax.tree.map(lambda a: a + 7.0, variables['batch_stats'])}
  got = population_batch_stats(model, variables, pool, 8, batches=3, seed=5)
  kernel = np.asarray(variables['params']['Dense_0']['kernel'])
  bias = np.asarray(variables['params']['Dense_0']['bias'])
  means, variances = [], []
  for batch in list(iter_batches(pool, 8, rng=np.random.default_rng(5)))[:3]:
    h = batch.x.reshape(8, -1).astype(np.float64) @ kernel + bias
    means.append(h.mean(axis=0))
    variances.append(h.var(axis=0))
  np.testing.assert_allclose(got['BatchNorm_0']['mean'], np.mean(means, axis=0), rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(got['BatchNorm_0']['var'], np.mean(variances, axis=0), rtol=1e-4)


def test_population_statistics_of_a_pool_smaller_than_a_batch_use_padded_batches():
  pool = random_pool(n=5, length=8)
  model = _LinearThenNorm()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 2, 8)))
  got = population_batch_stats(model, variables, pool, 8, batches=2, seed=1)
  rng = np.random.default_rng(1)
  kernel = np.asarray(variables['params']['Dense_0']['kernel'])
  bias = np.asarray(variables['params']['Dense_0']['bias'])
  means = []
  for _ in range(2):  # one padded batch a pass: two passes
    (batch,) = iter_batches(pool, 8, rng=rng)
    means.append((batch.x.reshape(8, -1).astype(np.float64) @ kernel + bias).mean(axis=0))
  np.testing.assert_allclose(got['BatchNorm_0']['mean'], np.mean(means, axis=0), rtol=1e-4,
                             atol=1e-6)
  with pytest.raises(ConfigError, match='no BatchNorm'):
    population_batch_stats(model, {'params': variables['params']}, pool, 8)
  with pytest.raises(ConfigError, match='at least one batch'):
    population_batch_stats(model, variables, pool, 8, batches=0)


def test_running_stat_offsets_in_units_of_the_population_spread():
  population = {'bn': {'mean': np.array([0.0, 1.0]), 'var': np.array([4.0 - 1e-5, 1.0])}}
  running = {'bn': {'mean': np.array([3.0, 1.0]), 'var': np.array([4.0 - 1e-5, 0.25])}}
  out = running_stat_offsets(running, population)
  assert set(out) == {'bn'}
  assert out['bn']['mean_offset'] == pytest.approx(1.5)  # |3 - 0| / sqrt(4)
  assert out['bn']['var_ratio'] == pytest.approx((0.25 + 1e-5) / (1.0 + 1e-5))


def test_has_batchnorm():
  assert has_batchnorm(models.get('cnn1d', 4, 128), 128)
  assert not has_batchnorm(models.get('cnn2d', 4, 128), 128)


def test_batch_statistics_logits_normalise_each_whole_batch_by_its_own_statistics():
  pool = random_pool(n=20, length=8)
  model = _LinearThenNorm()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 2, 8)))
  x = jnp.asarray(pool.signals())
  got = batch_statistics_logits(model, variables, x, 8)
  assert got.shape == (16, 3)  # the partial last batch of 4 is left out
  kernel = np.asarray(variables['params']['Dense_0']['kernel'])
  bias = np.asarray(variables['params']['Dense_0']['bias'])
  for start in (0, 8):
    h = np.asarray(x[start:start + 8]).reshape(8, -1).astype(np.float64) @ kernel + bias
    expected = (h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + 1e-5)  # scale 1, bias 0 at init
    np.testing.assert_allclose(got[start:start + 8], expected, rtol=1e-3, atol=1e-4)
  with pytest.raises(ConfigError, match='no batch of 32'):
    batch_statistics_logits(model, variables, x, 32)
