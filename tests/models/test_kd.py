from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax.errors import ConfigError
from amrjax.models.kd import KDCNN, InvertedResidual, KDMobileNet, make_divisible
from tests.models import zoo_checks



def _param_count(model, length):
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, 2, length)))
  return zoo_checks.count(shapes['params'])


# Each model is initialised once and each program compiled once per shape; the 'rbg' key
# only changes the random bits (same initialisers) and compiles faster than threefry.
_CACHE = {}


# fit's state at test_batchnorm_eval.py's settings (6 classes, L = 128): the initialisation
# and the train steps below are the programs fit compiles there (the compilation cache).
@pytest.fixture(scope='module', params=['kdcnn', 'kdmobilenet'])
def student(request):
  model = KDCNN(6) if request.param == 'kdcnn' else KDMobileNet(6)
  return model, zoo_checks.fit_state(model, 128)


def _forward(model):
  """Jitted eval-mode (logits, embed, head(embed))."""
  if ('forward', model) not in _CACHE:
    _CACHE['forward', model] = jax.jit(lambda v, x: (
        model.apply(v, x, train=False), model.apply(v, x, method='embed'),
        model.apply(v, x, method=lambda m, x: m.head(m.embed(x)))))
  return _CACHE['forward', model]




def test_kdcnn_parameter_count_matches_its_spec():
  def expected(classes):
    convs = 7 * 2 * 32 + 5 * 32 * 32 + 3 * 32 * 64 + 3 * 64 * 64  # no bias before BN
    bns = 2 * (32 + 32 + 64 + 64)
    return convs + bns + (64 * 64 + 64) + (64 * classes + classes)
  for length, classes in ((128, 11), (1024, 24)):
    assert _param_count(KDCNN(classes), length) == expected(classes)
  assert expected(11) == 29_259


def _mobilenet_expected(classes, alpha=1.0):
  def ch(c):
    return make_divisible(c * alpha)

  def block(cin, cout, t):
    hidden = cin * t
    expand = cin * hidden + 2 * hidden if t != 1 else 0
    return expand + (3 * hidden + 2 * hidden) + (hidden * cout + 2 * cout)

  total = 3 * 2 * ch(16) + 2 * ch(16)
  cin = ch(16)
  for t, c, n in ((1, 16, 1), (4, 24, 2), (4, 32, 2), (4, 48, 1), (4, 64, 1)):
    for _ in range(n):
      total += block(cin, ch(c), t)
      cin = ch(c)
  return total + (cin * 128 + 2 * 128) + (128 * classes + classes)


def test_kdmobilenet_parameter_count_matches_its_spec():
  for length, classes in ((128, 11), (1024, 24)):
    assert _param_count(KDMobileNet(classes), length) == _mobilenet_expected(classes)
  assert _mobilenet_expected(11) == 68_219
  assert _param_count(KDMobileNet(11, width=0.5), 128) == _mobilenet_expected(11, 0.5)


def test_students_are_far_smaller_than_clst():
  from amrjax.models.clst import ClST
  clst = _param_count(ClST(11), 128)
  assert 5 * _param_count(KDMobileNet(11), 128) < clst
  assert 10 * _param_count(KDCNN(11), 128) < clst


def test_make_divisible():
  assert [make_divisible(v) for v in (16, 12, 8, 4, 24 * 0.75, 32 * 1.4)] == [16, 16, 8, 8, 24,
                                                                             48]
  assert make_divisible(20) == 24 and make_divisible(19) == 24 and make_divisible(11) == 16


@pytest.mark.parametrize('length', [128, 512, 1024])
def test_forward_shapes_and_embedding(student, length):
  model, variables = student[0], student[1].variables
  logits, emb, head_of_embed = _forward(model)(variables, zoo_checks.signal(2, length))
  assert logits.shape == (2, 6) and np.isfinite(logits).all()
  assert emb.shape == (2, 64 if isinstance(model, KDCNN) else 128)
  np.testing.assert_allclose(head_of_embed, logits, rtol=1e-6, atol=1e-6)


def test_width_multiplier_scales_the_channels():
  x = zoo_checks.signal(2, 64)
  for alpha, last in ((0.5, 128), (1.5, 192)):
    model = KDMobileNet(4, width=alpha)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)  # shapes only
    assert jax.eval_shape(partial(model.apply, method='embed'), variables, x).shape == (2, last)
    stem = variables['params']['features']['Conv_0']['kernel']
    assert stem.shape == (3, 2, make_divisible(16 * alpha))
  with pytest.raises(ConfigError, match='width multiplier must be positive'):
    jax.eval_shape(KDMobileNet(4, width=0.0).init, jax.random.key(0), x)


def test_inverted_residual_strides_and_skip():
  x = zoo_checks.normal(2, 11, 8, seed=0)
  down = InvertedResidual(16, 4, stride=2)
  variables = jax.eval_shape(down.init, jax.random.key(1), x)  # shapes only
  assert jax.eval_shape(down.apply, variables, x).shape == (2, 6, 16)
  dw = variables['params']['Conv_1']['kernel']
  assert dw.shape == (3, 1, 32)  # depthwise over the 4x expanded channels
  same = InvertedResidual(8, 4, stride=1)
  variables = jax.jit(same.init)(jax.random.key(1, impl='rbg'), x)
  # With the projection's BatchNorm zeroed the branch is 0 and the skip returns the input.
  params = dict(variables['params'])
  params['BatchNorm_2'] = jax.tree.map(jnp.zeros_like, params['BatchNorm_2'])
  out = jax.jit(same.apply)({**variables, 'params': params}, x)
  np.testing.assert_allclose(out, x, atol=1e-6)


def test_train_mode_differs_from_eval_and_batchnorm_updates(student):
  model, state = student  # dropout before the head: another key, another loss
  zoo_checks.train_step_against_eval(model, state)


def test_a_few_steps_lower_the_loss(student):
  model, state = student
  losses = zoo_checks.training_losses(model, state.variables, 128, steps=8,
                                      rows=zoo_checks.BATCH)
  assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_short_signals_raise(student):
  model, variables = student[0], student[1].variables
  shortest = 8 if isinstance(model, KDCNN) else 16
  apply = lambda x: jax.eval_shape(model.apply, variables, x)  # traces, compiles nothing
  assert apply(zoo_checks.signal(2, shortest)).shape == (2, 6)
  name = 'KDCNN' if isinstance(model, KDCNN) else 'KDMobileNet'
  with pytest.raises(ConfigError,
                     match=f'{name} needs signals of at least {shortest} samples, got 4'):
    apply(zoo_checks.signal(2, 4))
