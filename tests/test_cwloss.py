import jax
import numpy as np
import pytest

from amrjax import models
from amrjax.data import synth
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.protocols import cwloss
from amrjax.train import TrainConfig, evaluate, fit, init_state, predict_logits
from amrjax.train.loop import accuracy_report
from amrjax.train.losses import cross_entropy


def _reference_weights(logits, k):
  """Eq. 9-10 in NumPy: renormalised top-k probabilities, w = 1 - H_k / log k."""
  z = logits - logits.max(-1, keepdims=True)
  p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
  top = -np.sort(-p, axis=-1)[:, :k]
  q = top / top.sum(-1, keepdims=True)
  h = -np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0), axis=-1)
  return 1 - h / np.log(k)


@pytest.mark.parametrize('k', [2, 3, 4])
def test_weights_match_a_numpy_reference_of_eq_9_10(k):
  logits = np.random.default_rng(k).normal(0, 3, (64, 6)).astype(np.float32)
  w = cwloss.weights_from_logits(logits, k)
  assert w.shape == (64,) and w.dtype == np.float32
  assert np.all((w >= 0) & (w <= 1))
  np.testing.assert_allclose(w, _reference_weights(logits.astype(np.float64), k), atol=2e-6)


def test_flatter_softmax_outputs_get_lower_weights():
  logits = np.random.default_rng(0).normal(0, 2, (32, 5)).astype(np.float32)
  sharp, flat = (cwloss.weights_from_logits(logits * t, 3) for t in (2.0, 0.5))
  assert np.all(flat < sharp)
  # The ends of the range: top-k all equal -> 0; all top-k mass on one class -> 1.
  ends = cwloss.weights_from_logits(np.array([[1., 1., 1., -50.], [40., 0., 0., 0.]]), 3)
  np.testing.assert_allclose(ends, [0.0, 1.0], atol=1e-6)


def test_bad_k_and_logits_are_config_errors():
  logits = np.zeros((4, 3), np.float32)
  with pytest.raises(ConfigError, match='k >= 2'):
    cwloss.weights_from_logits(logits, 1)
  with pytest.raises(ConfigError, match='at least 4 classes'):
    cwloss.weights_from_logits(logits, 4)
  with pytest.raises(ConfigError, match=r'\(n, C\)'):
    cwloss.weights_from_logits(np.zeros(3), 2)


def test_snr_summary_is_the_mean_and_max_over_levels():
  # -2 dB: 0.2, 0 dB: 0.5, 2 dB: 0.9, 4 dB: 0.9 -> mean 2.5 / 4, max 0.9 first at 2 dB.
  summary = cwloss.snr_summary({'4': 0.9, '-2': 0.2, '0': 0.5, '2': 0.9})
  assert summary.average == pytest.approx(0.625)
  assert summary.maximum == pytest.approx(0.9)
  assert (summary.best_snr, summary.levels) == (2, 4)
  # Every level counts once, however many test vectors it has.
  x = np.zeros((5, 2, 8), np.float32)
  pool = SignalPool.from_arrays(x, [0, 0, 0, 0, 0], [-2, -2, -2, -2, 6], ('a', 'b'))
  per_snr = accuracy_report(np.array([0, 1, 1, 1, 0]), pool).per_snr
  assert cwloss.snr_summary(per_snr).average == pytest.approx((0.25 + 1.0) / 2)
  with pytest.raises(ConfigError, match='empty'):
    cwloss.snr_summary({})


LENGTH = 32  # short vectors keep the 2D-CNN's dense layer and its compile small


def _pool(n_per_class=12, seed=0):
  rng = np.random.default_rng(seed)
  xs = [synth.synthesize(m, 20, LENGTH, rng, count=n_per_class) for m in ('BPSK', 'FM')]
  y = np.repeat([0, 1], n_per_class)
  return SignalPool.from_arrays(np.concatenate(xs), y, np.full(len(y), 20), ('BPSK', 'FM'))


# No BatchNorm: zero gradients leave every variable as it is.
MODEL = models.get('cnn2d', 2, LENGTH)
CONFIG = TrainConfig(epochs=2, batch_size=8)


def _leaves(state):
  return [np.asarray(a) for a in jax.tree.leaves(state.params)]


def test_weights_of_ones_reproduce_cross_entropy_training_exactly():
  pool = _pool()
  plain, plain_history = fit(MODEL, pool, CONFIG, seed=1)
  weighted, weighted_history = cwloss.train_stage_two(MODEL, pool, np.ones(len(pool)),
                                                      CONFIG, seed=1)
  for a, b in zip(_leaves(plain), _leaves(weighted)):
    np.testing.assert_array_equal(a, b)
  assert [h['loss'] for h in plain_history] == [h['loss'] for h in weighted_history]


def test_zero_weights_train_nothing_and_a_zero_weighted_class_is_not_learned():
  pool = _pool()
  start = init_state(MODEL, length=LENGTH, learning_rate=1e-3, seed=2)
  frozen, _ = cwloss.train_stage_two(MODEL, pool, np.zeros(len(pool)), CONFIG, seed=2)
  for a, b in zip(_leaves(start), _leaves(frozen)):
    np.testing.assert_array_equal(a, b)
  # Only class 1 (FM) carries weight: its loss falls, class 0's is never optimised and rises.
  only_fm = (pool.y == 1).astype(np.float32)
  state, _ = cwloss.train_stage_two(MODEL, pool, only_fm, TrainConfig(epochs=3, batch_size=8),
                                    seed=2)
  def class_losses(variables):
    ce = np.asarray(cross_entropy(predict_logits(MODEL, variables, pool), pool.y))
    return ce[pool.y == 0].mean(), ce[pool.y == 1].mean()
  (bpsk0, fm0), (bpsk1, fm1) = class_losses(start.variables), class_losses(state.variables)
  assert fm1 < fm0 and bpsk1 > bpsk0
  assert evaluate(MODEL, state.variables, pool).per_class == {'BPSK': 0.0, 'FM': 1.0}


def test_bad_weights_are_config_errors():
  pool = _pool(2)
  with pytest.raises(ConfigError, match=r'shape \(4,\)'):
    cwloss.train_stage_two(MODEL, pool, np.ones(3), CONFIG, seed=0)
  with pytest.raises(ConfigError, match='non-negative'):
    cwloss.train_stage_two(MODEL, pool, -np.ones(4), CONFIG, seed=0)


def test_two_stages_score_with_the_stage_one_model_or_take_given_weights():
  pool = _pool()
  config = TrainConfig(epochs=1, batch_size=8)
  result = cwloss.train_two_stage(MODEL, pool, config, seed=3, k=2)
  expected = cwloss.confidence_weights(MODEL, result.stage_one.variables, pool, 2)
  np.testing.assert_allclose(result.weights, expected, rtol=1e-6)
  np.testing.assert_allclose(
      expected,
      cwloss.weights_from_logits(predict_logits(MODEL, result.stage_one.variables, pool), 2))
  assert len(result.stage_one_history) == len(result.stage_two_history) == 1
  assert int(result.stage_two.step) == int(result.stage_one.step) == 3  # from scratch

  # Weights from another model (AFNet's Table II): used as given, stage two from scratch.
  given = np.linspace(0, 1, len(pool)).astype(np.float32)
  seen = []
  warm = cwloss.train_two_stage(MODEL, pool, config, seed=3, weights=given, warm_start=True,
                                on_epoch=lambda stage, m: seen.append(stage))
  assert warm.weights is not None and np.array_equal(warm.weights, given)
  assert seen == ['stage_one', 'stage_two']
  # Warm start continues from stage one, which stays usable (it was not donated).
  assert int(warm.stage_two.step) == 6 and int(warm.stage_one.step) == 3
  for a, b in zip(_leaves(warm.stage_one), _leaves(result.stage_one)):
    np.testing.assert_array_equal(a, b)

  # Stage one trained before (AFNet's Table I: one stage one, a stage two per k): the same
  # stage two, stage one not trained again, from scratch and warm.
  for warm_start, want in ((False, result), (True, warm)):
    seen = []
    again = cwloss.train_two_stage(
        MODEL, pool, config, seed=3, weights=want.weights, warm_start=warm_start,
        stage_one=result.stage_one, on_epoch=lambda stage, m: seen.append(stage))
    assert seen == ['stage_two'] and again.stage_one_history == []
    for a, b in zip(_leaves(again.stage_two), _leaves(want.stage_two)):
      np.testing.assert_array_equal(a, b)
