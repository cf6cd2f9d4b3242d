import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import models
from amrjax.errors import ConfigError
from amrjax.models.signet import SigNet, s2m, s2m_side
from tests.models import zoo_checks
from tests.models.zoo_checks import count, shapes, training_losses


def _s2m_reference(x):
  """Loop form of S2M: entry (r, c) = x[c % 2, r * n / 2 + c // 2] while it exists, else 0."""
  batch, _, length = x.shape
  n = s2m_side(length)
  out = np.zeros((batch, n, n), x.dtype)
  for r in range(n):
    for c in range(n):
      t = r * n // 2 + c // 2
      if t < length:
        out[:, r, c] = x[:, c % 2, t]
  return out


@pytest.mark.parametrize('length,side', [(128, 16), (512, 32), (1024, 46), (256, 24),
                                         (1, 2), (2, 2), (3, 4), (8, 4), (9, 6)])
def test_side_is_the_smallest_even_square_that_holds_2l_values(length, side):
  assert s2m_side(length) == side
  assert side % 2 == 0 and side**2 >= 2 * length and (side - 2)**2 < 2 * length


@pytest.mark.parametrize('length', [128, 1024, 37])
def test_s2m_matches_the_loop_reference_and_loses_nothing(length):
  rng = np.random.default_rng(length)
  x = rng.standard_normal((3, 2, length)).astype(np.float32)
  got = np.asarray(jax.jit(s2m)(jnp.asarray(x)))
  np.testing.assert_array_equal(got, _s2m_reference(x))
  n = s2m_side(length)
  flat = got.reshape(3, -1)
  np.testing.assert_array_equal(flat[:, 2 * length:], 0.0)  # zero padding at the end
  # Even columns hold I, odd columns Q, on every row.
  np.testing.assert_array_equal(flat[:, 0:2 * length:2], x[:, 0])
  np.testing.assert_array_equal(flat[:, 1:2 * length:2], x[:, 1])
  assert got.shape == (3, n, n)


def test_s2m_refuses_bad_shapes():
  with pytest.raises(ConfigError, match=r'\(B, 2, L\)'):
    s2m(jnp.zeros((2, 3, 16)))
  with pytest.raises(ConfigError, match='at least 1 sample'):
    s2m_side(0)


@pytest.mark.parametrize('length,classes', [(128, 11), (1024, 24)])
def test_parameter_count_does_not_depend_on_the_length(length, classes):
  variables = shapes(models.get('signet', classes, length), length)
  assert count(variables['params']) == 694_752 + 129 * classes
  assert count(variables['batch_stats']) == 2_240


def test_stage_layout():
  params = shapes(SigNet(5), 128)['params']['body']
  assert params['Conv_0']['kernel'].shape == (3, 3, 1, 32)
  blocks = sorted(k for k in params if k.startswith('_BasicBlock'))
  assert len(blocks) == 6
  widths = [params[b]['Conv_1']['kernel'].shape[-1] for b in
            sorted(blocks, key=lambda k: int(k.split('_')[-1]))]
  assert widths == [32, 32, 64, 64, 128, 128]
  shortcuts = [b for b in blocks if 'Conv_2' in params[b]]
  assert sorted(shortcuts) == ['_BasicBlock_2', '_BasicBlock_4']  # where the shape changes


@pytest.fixture(scope='module')
def signet():
  """fit's state at test_batchnorm_eval.py's settings (6 classes, L = 128), as variables: the
  initialisation and the train steps below are the programs fit compiles there (the
  compilation cache)."""
  model = SigNet(6)
  return model, zoo_checks.fit_state(model, 128).variables


@pytest.mark.parametrize('length', [128, 1024])
def test_forward_and_embedding_with_the_same_weights_at_any_length(signet, length):
  model, variables = signet
  x = jax.random.normal(jax.random.key(1), (2, 2, length))
  logits = model.apply(variables, x)
  assert logits.shape == (2, 6) and np.isfinite(logits).all()
  emb = model.apply(variables, x, method='embed')
  assert emb.shape == (2, 128) and float(jnp.min(emb)) >= 0.0  # mean of ReLU maps
  head = variables['params']['head']
  np.testing.assert_allclose(logits, emb @ head['kernel'] + head['bias'], rtol=1e-5, atol=1e-5)


def test_batchnorm_uses_batch_statistics_in_training_and_updates_them(signet):
  model, variables = signet
  x = jax.random.normal(jax.random.key(1), (2, 2, 128)) * 3 + 1
  eval_out = model.apply(variables, x, train=False)
  train_out, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert not np.allclose(eval_out, train_out)
  before = jax.tree.leaves(variables['batch_stats'])
  after = jax.tree.leaves(updates['batch_stats'])
  assert all(a.shape == b.shape for a, b in zip(before, after))
  assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_a_few_steps_lower_the_loss(signet):
  losses = training_losses(*signet, 128, rows=zoo_checks.BATCH)
  assert losses[-1] < losses[0]
