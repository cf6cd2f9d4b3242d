"""The SKD loss against a NumPy reference (two and three terms), its minimum and
temperature scaling, ``distill`` on a tiny pool with and without the feature term, the
parameter count and the inference timing."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import models
from amrjax.errors import ConfigError
from amrjax.models import parameter_count
from amrjax.protocols.distill import (DistillationLoss, HintedStudent, InferenceTime, distill,
                            feature_distance, inference_time, soft_target_loss)
from amrjax.scoring import pools
from amrjax.train import TrainConfig, fit, init_state, predict_logits
from amrjax.train.losses import cross_entropy
from tests.helpers import random_pool


def _logits(seed, shape=(6, 5), scale=3.0):
  return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _reference(student, teacher, labels, hard, soft, temperature):
  """Hinton et al.'s loss in float64 NumPy, written out independently."""
  s, t = student.astype(np.float64), teacher.astype(np.float64)

  def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))

  ce = -log_softmax(s)[np.arange(len(labels)), labels]
  log_p, log_q = log_softmax(t / temperature), log_softmax(s / temperature)
  kl = (np.exp(log_p) * (log_p - log_q)).sum(-1)
  return hard * ce + soft * temperature**2 * kl


def test_matches_a_numpy_reference():
  student, teacher = _logits(0), _logits(1)
  labels = np.array([0, 1, 2, 3, 4, 0])
  for hard, soft, temperature in ((0.1, 0.9, 4.0), (0.3, 0.7, 2.5), (1.0, 1.0, 1.0)):
    loss = jax.jit(DistillationLoss(hard, soft, temperature))(student, labels, teacher)
    assert loss.shape == (6,)
    np.testing.assert_allclose(loss, _reference(student, teacher, labels, hard, soft,
                                                temperature), rtol=2e-5, atol=1e-6)


def _unit_distance_reference(s, t):
  s, t = s.astype(np.float64), t.astype(np.float64)
  cos = (s * t).sum(-1) / np.linalg.norm(s, axis=-1) / np.linalg.norm(t, axis=-1)
  return 2 - 2 * cos


def test_three_terms_match_a_numpy_reference():
  student, teacher = _logits(0), _logits(1)
  hint, teacher_h = _logits(7, (6, 3)), _logits(8, (6, 3))
  labels = np.array([0, 1, 2, 3, 4, 0])
  np.testing.assert_allclose(feature_distance(hint, teacher_h),
                             _unit_distance_reference(hint, teacher_h), rtol=1e-5, atol=1e-6)
  loss = DistillationLoss(0.2, 0.5, 3.0, feature_weight=0.7)
  assert loss.reads_features and not DistillationLoss().reads_features
  extra = np.concatenate([teacher, teacher_h], axis=-1)  # logits, then embeddings
  got = jax.jit(loss)(student, labels, extra, hint)
  want = (_reference(student, teacher, labels, 0.2, 0.5, 3.0)
          + 0.7 * _unit_distance_reference(hint, teacher_h))
  np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
  # Only the feature term: zero where the projected student points along the teacher.
  only = DistillationLoss(0.0, 0.0, 1.0, feature_weight=1.0)
  np.testing.assert_allclose(only(student, labels, extra, 2.5 * teacher_h), 0.0, atol=1e-6)
  with pytest.raises(ConfigError, match='HintedStudent'):
    loss(student, labels, teacher, None)
  with pytest.raises(ConfigError, match='do not match'):
    loss(student, labels, teacher, hint)  # embeddings missing from the teacher outputs


def test_without_the_soft_term_it_is_cross_entropy():
  student, teacher = _logits(2), _logits(3)
  labels = np.array([4, 3, 2, 1, 0, 1])
  loss = DistillationLoss(hard_weight=1.0, soft_weight=0.0)(student, labels, teacher)
  np.testing.assert_allclose(loss, cross_entropy(student, labels), rtol=1e-6)


def test_soft_term_is_smallest_where_the_student_copies_the_teacher():
  teacher = _logits(4)
  labels = np.zeros(6, np.int32)
  loss = DistillationLoss(hard_weight=0.0, soft_weight=1.0, temperature=3.0)
  total = lambda s: jnp.sum(loss(s, labels, teacher))
  assert float(total(teacher)) == pytest.approx(0.0, abs=1e-5)
  np.testing.assert_allclose(jax.grad(total)(teacher), 0.0, atol=1e-6)
  # A constant shift per row leaves the softmax, hence the loss, unchanged.
  assert float(total(teacher + 2.0)) == pytest.approx(0.0, abs=1e-5)
  for seed in range(5):
    perturbed = teacher + 0.3 * _logits(10 + seed, scale=1.0)
    assert float(total(perturbed)) > 1e-4
    assert np.all(np.asarray(loss(perturbed, labels, teacher)) >= -1e-6)  # KL >= 0


def test_the_teacher_gets_no_gradient():
  student, teacher = _logits(5), _logits(6)
  grad = jax.grad(lambda t: jnp.sum(soft_target_loss(student, t, 2.0)))(teacher)
  np.testing.assert_array_equal(grad, 0.0)


def test_temperature_scaling():
  student, teacher = _logits(7), _logits(8)
  # KL at temperature T of logits z equals KL at T = 1 of z / T; the T^2 factor on top.
  for temperature in (0.5, 2.0, 8.0):
    np.testing.assert_allclose(
        soft_target_loss(student * temperature, teacher * temperature, temperature),
        temperature**2 * soft_target_loss(student, teacher, 1.0), rtol=1e-4, atol=1e-6)
  # Hinton et al. Sec. 2.1: for T much larger than the logits the T^2-scaled gradient
  # approaches (z_s - z_t) / C for zero-mean logits, independent of T.
  s = student - student.mean(-1, keepdims=True)
  t = teacher - teacher.mean(-1, keepdims=True)
  grad = jax.grad(lambda z: jnp.sum(soft_target_loss(z, t, 1000.0)))(s)
  np.testing.assert_allclose(grad, (s - t) / s.shape[-1], rtol=2e-2, atol=2e-3)


def test_a_saturated_teacher_gives_a_finite_loss_and_gradient():
  teacher = np.array([[1e4, 0.0, -1e4]], np.float32)  # softmax is exactly one-hot
  student = np.array([[0.5, 0.2, -0.1]], np.float32)
  loss = DistillationLoss(0.0, 1.0, 1.0)
  value, grad = jax.value_and_grad(lambda s: jnp.sum(loss(s, np.array([0]), teacher)))(
      student)
  assert np.isfinite(value) and np.all(np.isfinite(grad))
  log_q0 = student[0, 0] - np.log(np.exp(student[0]).sum())
  assert float(value) == pytest.approx(-log_q0, rel=1e-5)  # KL to a one-hot = CE


def test_settings_are_checked_and_hashable():
  assert DistillationLoss() == DistillationLoss(0.1, 0.9, 4.0)
  assert hash(DistillationLoss()) == hash(DistillationLoss(0.1, 0.9, 4.0))
  with pytest.raises(ConfigError, match='non-negative'):
    DistillationLoss(hard_weight=-1.0)
  with pytest.raises(ConfigError, match='non-negative'):
    DistillationLoss(feature_weight=-0.5)
  with pytest.raises(ConfigError, match='all 0'):
    DistillationLoss(0.0, 0.0)
  with pytest.raises(ConfigError, match='temperature must be positive'):
    DistillationLoss(temperature=0.0)
  student = _logits(9)
  with pytest.raises(ConfigError, match='needs the teacher logits'):
    DistillationLoss()(student, np.zeros(6, np.int32), None)
  with pytest.raises(ConfigError, match='do not match'):
    DistillationLoss()(student, np.zeros(6, np.int32), student[:, :3])


class _LinearTeacher(nn.Module):
  """A fixed random linear map of the raw signal: logits unrelated to the labels."""

  num_classes: int

  @nn.compact
  def __call__(self, x, *, train=False):
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.3))(
        x.reshape(x.shape[0], -1))


class _MLPStudent(nn.Module):
  """A small MLP: compiles in a second, where a registry model takes several on the CPU."""

  num_classes: int

  @nn.compact
  def __call__(self, x, *, train=False):
    h = nn.relu(nn.Dense(32)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes)(h)


def _kl_to(teacher_logits, student_logits):
  return float(np.mean(soft_target_loss(jnp.asarray(student_logits),
                                        jnp.asarray(teacher_logits), 1.0)))


def test_distilling_moves_the_student_toward_the_teacher():
  pool = random_pool(n=64, num_classes=4, length=32, seed=0)
  teacher = _LinearTeacher(4)
  teacher_vars = teacher.init(jax.random.key(1), jnp.zeros((1, 2, 32)))
  target = predict_logits(teacher, teacher_vars, pool)
  student = _MLPStudent(4)
  config = TrainConfig(epochs=8, batch_size=16, learning_rate=3e-3)
  start = init_state(student, length=32, learning_rate=3e-3, seed=0)
  kl_start = _kl_to(target, predict_logits(student, start.variables, pool))

  loss = DistillationLoss(hard_weight=0.0, soft_weight=1.0, temperature=1.0)
  distilled, history = distill(teacher, teacher_vars, student, pool, config, seed=0,
                               loss=loss)
  alone, _ = fit(student, pool, config, seed=0)
  kl_distilled = _kl_to(target, predict_logits(student, distilled.variables, pool))
  kl_alone = _kl_to(target, predict_logits(student, alone.variables, pool))
  assert len(history) == 8 and history[-1]['loss'] < history[0]['loss']
  assert kl_distilled < 0.5 * kl_start and kl_distilled < 0.5 * kl_alone
  agree = lambda state: np.mean(np.argmax(predict_logits(student, state.variables, pool), -1)
                                == np.argmax(target, -1))
  assert agree(distilled) > agree(alone) and agree(distilled) > 0.6


class _MLPTeacherWithEmbedding(nn.Module):
  """A fixed teacher with the registry interface: ``embed`` and a ``head``."""

  num_classes: int

  def setup(self):
    self.body = nn.Dense(6, kernel_init=nn.initializers.normal(0.3))
    self.head = nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.3))

  def embed(self, x, *, train=False):
    return jnp.tanh(self.body(x.reshape(x.shape[0], -1)))

  def __call__(self, x, *, train=False):
    return self.head(self.embed(x))


class _StudentWithClassify(nn.Module):
  num_classes: int

  def setup(self):
    self.body = nn.Dense(16)
    self.head = nn.Dense(self.num_classes)

  def embed(self, x, *, train=False):
    return nn.relu(self.body(x.reshape(x.shape[0], -1)))

  def classify(self, h, *, train=False):
    return self.head(h)

  def __call__(self, x, *, train=False):
    return self.classify(self.embed(x))


def test_the_feature_term_aligns_the_projected_student_with_the_teacher():
  pool = random_pool(n=64, num_classes=4, length=32, seed=0)
  teacher = _MLPTeacherWithEmbedding(4)
  teacher_vars = teacher.init(jax.random.key(1), jnp.zeros((1, 2, 32)))
  teacher_h = pools.embeddings(teacher, teacher_vars, pool)
  student = _StudentWithClassify(4)
  config = TrainConfig(epochs=10, batch_size=16, learning_rate=3e-3)
  loss = DistillationLoss(0.0, 0.0, 1.0, feature_weight=1.0)  # the feature term alone

  def distance(state_params):
    hinted = HintedStudent(student, 6)
    _, sown = hinted.apply({'params': state_params}, pool.signals(), train=True,
                           mutable=['intermediates'])
    return float(np.mean(_unit_distance_reference(
        np.asarray(sown['intermediates']['features'][0]), teacher_h)))

  start = HintedStudent(student, 6).init(jax.random.key(0), jnp.zeros((1, 2, 32)))
  state, history = distill(teacher, teacher_vars, student, pool, config, seed=0, loss=loss)
  # The bare student comes back: its parameters and logits are the plain model's.
  assert set(state.params) == {'body', 'head'} and state.opt_state is None
  assert predict_logits(student, state.variables, pool).shape == (64, 4)
  assert history[-1]['loss'] < 0.5 * history[0]['loss']
  # Re-wrap the trained student with the hint to read its projection back: it has moved
  # toward the teacher's embedding (the hint itself is not returned, so train it again
  # from the same seed: fit is deterministic).
  targets = np.concatenate([pools.pool_outputs(teacher, teacher_vars, pool)['log_probs'],
                            teacher_h], axis=-1)
  wrapped, _ = fit(HintedStudent(student, 6), pool, config, seed=0, objective=loss,
                   targets=targets)
  np.testing.assert_allclose(wrapped.params['student']['head']['kernel'],
                             state.params['head']['kernel'])
  assert distance(wrapped.params) < 0.5 * distance(start['params'])


def test_the_feature_term_needs_a_student_with_classify():
  pool = random_pool(n=16, num_classes=4, length=32, seed=0)
  teacher = _MLPTeacherWithEmbedding(4)
  teacher_vars = teacher.init(jax.random.key(1), jnp.zeros((1, 2, 32)))
  with pytest.raises(ConfigError, match='classify'):
    distill(teacher, teacher_vars, _MLPStudent(4), pool, TrainConfig(1, 8, 1e-3), seed=0,
            loss=DistillationLoss(feature_weight=1.0))


def test_parameter_count_and_inference_time():
  model = models.get('kd_cnn', 11, 128)
  state = init_state(model, length=128, learning_rate=1e-3, seed=0)
  assert parameter_count(state.variables) == 29_259  # the count documented in kd.py
  assert parameter_count(state.params) == 29_259
  timing = inference_time(model, state.variables, length=128, batch_size=8, repeats=3)
  assert isinstance(timing, InferenceTime)
  assert timing.batch_size == 8 and len(timing.batch_seconds) == 3
  assert timing.microseconds_per_sample == pytest.approx(
      sorted(timing.batch_seconds)[1] / 8 * 1e6)
  assert timing.microseconds_per_sample > 0 and 'cpu' in timing.device.lower()
  with pytest.raises(ConfigError, match='at least 1'):
    inference_time(model, state.variables, length=128, repeats=0)
