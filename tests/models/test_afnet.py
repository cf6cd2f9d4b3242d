import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax.errors import ConfigError
from amrjax.models.afnet import (AFNet, AFUnit, FusionModule, fusion_parameter_count,
                                 lambda_softmax)
from tests.models import zoo_checks


def _count(params):
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def _shapes(model, length, batch=2):
  """Variable shapes without running (or compiling) the initialisers."""
  return jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                        jax.ShapeDtypeStruct((batch, 2, length), jnp.float32))


@pytest.fixture(scope='module')
def model_and_variables():
  # The parameters do not depend on L, so one initialisation serves every length. fit's
  # state at test_batchnorm_eval.py's settings (6 classes, L = 128): the initialisation and
  # the train steps below are the programs fit compiles there (the compilation cache).
  model = AFNet(6)
  return model, zoo_checks.fit_state(model, 128).variables


def test_lambda_softmax_temperature_form():
  z = jax.random.normal(jax.random.key(0), (3, 2, 7)) * 3  # (B, branches, C)
  for lam in (0.5, 1.0, 2.0):
    w = lambda_softmax(z, lam, axis=1, form='temperature')
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    assert (w >= 0).all()
  np.testing.assert_allclose(lambda_softmax(z, 1e-6, axis=1, form='temperature'), 0.5,
                             atol=1e-5)
  hard = jax.nn.one_hot(jnp.argmax(z, axis=1), 2, axis=1)
  np.testing.assert_allclose(lambda_softmax(z, 1e4, axis=1, form='temperature'), hard,
                             atol=1e-4)
  # lambda = 1 is the vanilla softmax, per channel over the branch axis.
  np.testing.assert_allclose(lambda_softmax(z, 1.0, axis=1, form='temperature'),
                             np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), rtol=1e-5)


def test_lambda_softmax_scale_form():
  z = jax.random.normal(jax.random.key(1), (3, 2, 7))
  soft = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
  np.testing.assert_allclose(lambda_softmax(z, 1.0, axis=1), soft, rtol=1e-5)
  w = lambda_softmax(z, 2.0, axis=1)
  np.testing.assert_allclose(w, 2 * soft, rtol=1e-5)
  np.testing.assert_allclose(w.sum(axis=1), 2.0, rtol=1e-6)
  # Equal logits with lambda = 2: unit weights, ResNet's x + F(x).
  np.testing.assert_allclose(lambda_softmax(jnp.zeros((1, 2, 4)), 2.0, axis=1), 1.0)
  with pytest.raises(ConfigError, match='lambda_form'):
    lambda_softmax(z, 1.0, form='sharpen')


@pytest.mark.parametrize('channels,reduction', [(48, 16), (64, 16), (32, 8)])
def test_fusion_module_parameter_count_is_3c2_over_r(channels, reduction):
  maps = [jax.ShapeDtypeStruct((2, 10, channels), jnp.float32)] * 2
  shapes = jax.eval_shape(FusionModule(reduction=reduction).init, jax.random.key(0), maps)
  assert _count(shapes['params']) == 3 * channels**2 // reduction
  assert fusion_parameter_count(channels, reduction) == 3 * channels**2 // reduction


def test_fusion_module_weights_maps_per_channel():
  rng = np.random.default_rng(0)
  u1, u2 = (rng.standard_normal((2, 6, 16)).astype(np.float32) for _ in range(2))
  squeeze = rng.standard_normal((16, 4)).astype(np.float32)
  excite = rng.standard_normal((4, 32)).astype(np.float32)
  z = (np.maximum((u1 + u2).mean(axis=1) @ squeeze, 0) @ excite).reshape(2, 2, 16)
  for form in ('temperature', 'scale'):
    module = FusionModule(lam=2.0, reduction=4, lambda_form=form)

    def fuse(excite, module=module):
      return module.apply({'params': {'squeeze': {'kernel': squeeze},
                                      'excite': {'kernel': excite}}}, [u1, u2])

    # Equal logits (the zero initial excite FC): 1/2 each, or lambda/2 in the scale form.
    equal = 1.0 if form == 'scale' else 0.5
    np.testing.assert_allclose(fuse(np.zeros_like(excite)), equal * (u1 + u2), rtol=1e-5)
    # Otherwise the output is w_1 U_1 + w_2 U_2 with per-channel weights from Eq. 4.
    w = np.asarray(lambda_softmax(jnp.asarray(z), 2.0, axis=1, form=form))
    np.testing.assert_allclose(fuse(excite), w[:, None, 0] * u1 + w[:, None, 1] * u2,
                               rtol=1e-4, atol=1e-5)


def test_af_unit_keeps_shape_and_counts_parameters():
  x = jax.ShapeDtypeStruct((2, 32, 48), jnp.float32)
  shapes = jax.eval_shape(functools.partial(AFUnit().init, train=False), jax.random.key(0), x)
  out = jax.eval_shape(functools.partial(AFUnit().apply, train=False), shapes, x)
  assert out.shape == (2, 32, 48)
  branch = 3 * (48 // 4) * 48 + 2 * 48  # grouped conv kernel + BatchNorm scale and bias
  assert _count(shapes['params']) == 2 * branch + 2 * fusion_parameter_count(48, 16)
  with pytest.raises(ConfigError, match='divisible by groups'):
    jax.eval_shape(AFUnit(groups=5).init, jax.random.key(0), x)


def _expected_afnet_parameters(classes, *, filters=48, units=9, kernel=3, groups=4,
                               reduction=16, stem_kernel=3):
  stem = 2 * stem_kernel * filters + 2 * filters
  branch = kernel * (filters // groups) * filters + 2 * filters
  fusion = 3 * filters**2 // reduction
  return stem + units * (2 * branch + 2 * fusion) + (filters + 1) * classes


@pytest.mark.parametrize('length,classes', [(128, 11), (1024, 24)])
def test_parameter_count_matches_closed_form(length, classes):
  assert _count(_shapes(AFNet(classes), length)['params']) == _expected_afnet_parameters(
      classes)
  assert _expected_afnet_parameters(11) == 41_531
  assert _expected_afnet_parameters(24) == 42_168


def test_forward_shapes_and_embedding(model_and_variables):
  model, variables = model_and_variables
  x = jax.random.normal(jax.random.key(1), (2, 2, 128))
  logits = model.apply(variables, x, train=False)
  assert logits.shape == (2, 6) and np.isfinite(logits).all()
  emb = model.apply(variables, x, method='embed')
  assert emb.shape == (2, 48)
  via_head = model.apply(variables, x, method=lambda m, x: m.head(m.embed(x)))
  np.testing.assert_allclose(logits, via_head, rtol=1e-6, atol=1e-6)
  # Every fusion module starts from equal branch weights.
  excites = [u[f]['excite']['kernel'] for name, u in variables['params'].items()
             if name.startswith('units_') for f in ('branch_fusion', 'skip_fusion')]
  assert len(excites) == 18 and not any(np.any(k) for k in excites)


@pytest.mark.parametrize('length', [512, 1024])
def test_forward_at_longer_signals(model_and_variables, length):
  model, variables = model_and_variables
  x = jax.random.normal(jax.random.key(1), (2, 2, length))
  logits = model.apply(variables, x)
  emb = model.apply(variables, x, method='embed')
  assert logits.shape == (2, 6) and np.isfinite(logits).all()
  assert emb.shape == (2, 48) and np.isfinite(emb).all()


def test_batchnorm_train_differs_from_eval_and_updates(model_and_variables):
  model, variables = model_and_variables
  x = jax.random.normal(jax.random.key(1), (2, 2, 128)) * 3 + 1
  eval_out = model.apply(variables, x, train=False)
  np.testing.assert_array_equal(eval_out, model.apply(variables, x, train=False))
  train_out, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert not np.allclose(eval_out, train_out)
  before = jax.tree.leaves(variables['batch_stats'])
  after = jax.tree.leaves(updates['batch_stats'])
  assert len(before) == len(after) == 2 * (1 + 2 * 9)  # mean, var: stem + 2 branches x 9
  assert all(not np.allclose(a, b) for a, b in zip(before, after))


def test_a_few_steps_lower_the_loss(model_and_variables):
  losses = zoo_checks.training_losses(*model_and_variables, 128, steps=8,
                                      rows=zoo_checks.BATCH)
  assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_short_signals_and_bad_settings():
  with pytest.raises(ConfigError, match='at least 4 samples'):
    _shapes(AFNet(3), 3)
  _shapes(AFNet(3), 4)  # the shortest signal the two pools allow
  with pytest.raises(ConfigError, match='lambda_form'):
    _shapes(AFNet(3, lambda_form='sharp'), 128)
  with pytest.raises(ConfigError, match=r'shape \(B, 2, L\)'):
    jax.eval_shape(AFNet(3).init, jax.random.key(0), jnp.zeros((2, 3, 128)))
