import chex
import jax
import numpy as np
import pytest

from amrjax import models
from amrjax.data import synth
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.train import (TrainConfig, TrainingDivergedError, WeightedCrossEntropy, evaluate,
                          fit, fit_recording, init_state, validation_metrics)
from amrjax.seeding import derive_seed
from amrjax.train.batchnorm import population_batch_stats
from amrjax.train.loop import RUNNING, accuracy_report, optimizer, train_step_fn
from amrjax.train.state import create_state


def _easy_pool(n_per_class=32, seed=0):
  rng = np.random.default_rng(seed)
  xs = [synth.synthesize(m, 20, 128, rng, count=n_per_class) for m in ('BPSK', 'FM')]
  y = np.repeat([0, 1], n_per_class)
  return SignalPool.from_arrays(np.concatenate(xs), y, np.full(len(y), 20), ('BPSK', 'FM'))


def test_fit_learns_an_easy_task_and_continues_from_a_state():
  pool = _easy_pool()
  model = models.get('cnn2d', 2, 128)
  state, history = fit(model, pool, TrainConfig(epochs=6, batch_size=16), seed=0)
  assert [h['epoch'] for h in history] == [1, 2, 3, 4, 5, 6]
  assert history[-1]['loss'] < history[0]['loss']
  assert evaluate(model, state.variables, pool).accuracy > 0.7  # chance: 0.5
  state, more = fit(model, pool, TrainConfig(epochs=1, batch_size=16), seed=1, state=state)
  assert more[0]['steps'] == 7 * 4  # 4 steps per epoch, continued from step 24


@pytest.mark.parametrize('name', ['cnn1d', 'lstm2'])
def test_initialisation_at_its_compiler_options_is_the_default_levels_bit_for_bit(name):
  """``init_state`` compiles at XLA optimisation level 1 (``INIT_COMPILER_OPTIONS``) for a
  faster compile; the variables must be those of XLA's default level (a BatchNorm model,
  and one with orthogonal recurrent kernels, which differ at level 0: this check fails
  there)."""
  model = models.get(name, 6, 128)
  state = init_state(model, length=128, learning_rate=1e-3, seed=3)
  tx = optimizer(1e-3)
  default = jax.jit(lambda key: create_state(model, tx, length=128, key=key))(
      jax.random.key(3))
  leaves, want = jax.tree.leaves(state), jax.tree.leaves(default)
  assert len(leaves) == len(want) > 0
  for got, expected in zip(leaves, want):
    np.testing.assert_array_equal(got, expected)


def test_padded_rows_do_not_change_the_loss():
  model = models.get('cnn2d', 2, 128)
  step = train_step_fn(model, 1e-3, 128)
  pool = _easy_pool(4)
  x, y = pool.signals(), pool.y
  mask = np.arange(8) < 5
  garbage = x.copy()
  garbage[5:] = 1e3
  losses = []
  for xs in (x, garbage):
    state = init_state(model, length=128, learning_rate=1e-3, seed=0)
    _, metrics = step(state, xs, y, mask, jax.random.key(0))
    losses.append(float(metrics['loss']))
  assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_nan_input_stops_training_with_the_epoch():
  pool = _easy_pool(4)
  x = pool.signals()
  x[3] = np.nan
  bad = SignalPool.from_arrays(x, pool.y, pool.snr, pool.classes)
  with pytest.raises(TrainingDivergedError, match='epoch 1 .*step 1'):
    fit(models.get('cnn2d', 2, 128), bad, TrainConfig(epochs=2, batch_size=8), seed=0)


def test_accuracy_report():
  x = np.zeros((6, 2, 128), np.float32)
  pool = SignalPool.from_arrays(x, [0, 0, 1, 1, 2, 2], [10, 20, 10, 20, 10, 20],
                                ('a', 'b', 'c'))
  report = accuracy_report(np.array([0, 1, 1, 1, 0, 2]), pool)
  assert report.accuracy == pytest.approx(4 / 6)
  assert report.per_class == {'a': 0.5, 'b': 1.0, 'c': 0.5}
  assert report.per_snr == {10: pytest.approx(2 / 3), 20: pytest.approx(2 / 3)}
  np.testing.assert_array_equal(report.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])


def test_fit_recording_matches_fit_and_counts_every_presentation():
  pool = _easy_pool(20)  # 40 samples, batch 16: the last batch of each epoch is padded
  model = models.get('cnn2d', 2, 128)
  config = TrainConfig(epochs=3, batch_size=16)
  seen = []
  state, history, dyn = fit_recording(model, pool, config, seed=3, on_epoch=seen.append)
  ref_state, ref_history = fit(model, pool, config, seed=3)
  # Recording changes nothing about the training itself.
  assert [h['loss'] for h in history] == pytest.approx([h['loss'] for h in ref_history])
  np.testing.assert_allclose(jax.tree.leaves(state.params)[0],
                             jax.tree.leaves(ref_state.params)[0], rtol=1e-6)
  np.testing.assert_array_equal(dyn.presentations, np.full(len(pool), 3))
  # Correct presentations summed over samples = the epochs' accuracies times n.
  total = sum(round(h['accuracy'] * len(pool)) for h in history)
  assert int(dyn.correct.sum()) == total
  np.testing.assert_allclose(float(dyn.loss_sum.sum()),
                             sum(h['loss'] for h in history) * len(pool), rtol=1e-4)
  assert len(seen) == 3


def test_weighted_objective_with_unit_weights_trains_exactly_as_cross_entropy():
  pool = _easy_pool(8)
  model = models.get('cnn2d', 2, 128)
  config = TrainConfig(epochs=2, batch_size=8)
  plain, plain_history = fit(model, pool, config, seed=0)
  weighted, weighted_history = fit(model, pool, config, seed=0,
                                   objective=WeightedCrossEntropy(),
                                   targets=np.ones(len(pool), np.float32))
  assert [h['loss'] for h in weighted_history] == pytest.approx(
      [h['loss'] for h in plain_history], rel=1e-6)
  for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(weighted.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_zero_weights_remove_samples_from_the_objective():
  model = models.get('cnn2d', 2, 128)
  step = train_step_fn(model, 1e-3, 128, objective=WeightedCrossEntropy())
  pool = _easy_pool(4)
  x, y = pool.signals(), pool.y
  weights = (y == 0).astype(np.float32)  # the FM rows count for nothing
  garbage = x.copy()
  garbage[y == 1] = 1e3
  results = []
  for xs in (x, garbage):
    state = init_state(model, length=128, learning_rate=1e-3, seed=0)
    results.append(step(state, xs, y, np.ones(8, bool), jax.random.key(0), weights))
  (clean, clean_metrics), (noisy, noisy_metrics) = results
  assert float(clean_metrics['loss']) == pytest.approx(float(noisy_metrics['loss']), rel=1e-6)
  for a, b in zip(jax.tree.leaves(clean.params), jax.tree.leaves(noisy.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_targets_must_have_a_row_per_sample():
  pool = _easy_pool(4)
  model = models.get('cnn2d', 2, 128)
  with pytest.raises(ConfigError, match='one row per training sample'):
    fit(model, pool, TrainConfig(epochs=1, batch_size=8), seed=0,
        objective=WeightedCrossEntropy(), targets=np.ones(3))
  with pytest.raises(ConfigError, match='NaN'):
    fit(model, pool, TrainConfig(epochs=1, batch_size=8), seed=0,
        objective=WeightedCrossEntropy(), targets=np.full(len(pool), np.nan))


def test_cosine_schedule_decays_the_step_to_zero():
  tx = optimizer(0.01, 'cosine', 10)
  params = {'w': np.ones(3, np.float32)}
  grads = {'w': np.ones(3, np.float32)}
  state = tx.init(params)
  sizes = []
  for _ in range(11):
    updates, state = tx.update(grads, state, params)
    sizes.append(float(np.abs(updates['w']).max()))
  assert sizes[0] == pytest.approx(0.01, rel=1e-3)  # Adam's first step has size lr
  assert sizes[10] == 0.0 and sizes[5] < sizes[1]
  with pytest.raises(ConfigError, match='schedule'):
    TrainConfig(schedule='linear')


def test_fit_with_the_cosine_schedule_from_a_fresh_state_only():
  pool = _easy_pool(4)
  model = models.get('cnn2d', 2, 128)
  config = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-2, schedule='cosine')
  state, history = fit(model, pool, config, seed=0)
  assert [h['steps'] for h in history] == [1, 2] and np.isfinite(history[-1]['loss'])
  constant, constant_history = fit(
      model, pool, TrainConfig(epochs=2, batch_size=8, learning_rate=1e-2), seed=0)
  # One step an epoch: the first steps are equal (full rate), so are both epochs' losses
  # (measured before each update); the second cosine step is at half the rate.
  assert [h['loss'] for h in history] == pytest.approx(
      [h['loss'] for h in constant_history], rel=1e-5)
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(constant.params),
                                                   jax.tree.leaves(state.params)))
  with pytest.raises(ConfigError, match='fresh state'):
    fit(model, pool, config, seed=0, state=state)


def test_early_stopping_returns_the_best_validation_epoch():
  pool = _easy_pool(16)
  model = models.get('cnn2d', 2, 128)
  # Validation labels are flipped: the better the model learns, the worse it validates.
  flipped = SignalPool.from_arrays(pool.signals(), 1 - pool.y, pool.snr, pool.classes)
  config = TrainConfig(epochs=12, batch_size=8, patience=2)
  state, history = fit(model, pool, config, seed=0, validation=flipped)
  val = [h['val_loss'] for h in history]
  best = int(np.argmin(val))
  assert len(history) == best + 1 + 2  # stopped `patience` epochs after the best
  assert len(history) < 12
  loss, accuracy = validation_metrics(model, state.variables, flipped)
  assert loss == pytest.approx(val[best], rel=1e-5)
  assert accuracy == pytest.approx(history[best]['val_accuracy'])
  with pytest.raises(ConfigError, match='validation pool'):
    fit(model, pool, config, seed=0)


def test_fit_leaves_population_batchnorm_statistics_of_the_final_parameters():
  pool = _easy_pool(24)
  model = models.get('kd_cnn', 2, 128)
  running, _ = fit(model, pool, TrainConfig(epochs=2, batch_size=16,
                                            batchnorm_statistics=RUNNING), seed=3)
  default, _ = fit(model, pool, TrainConfig(epochs=2, batch_size=16), seed=3)
  chex.assert_trees_all_equal(default.params, running.params)  # training is the same
  expected = population_batch_stats(model, running.variables, pool, 16,
                                    seed=derive_seed(3, 'batchnorm'))
  chex.assert_trees_all_close(default.batch_stats, expected, rtol=1e-6, atol=1e-9)
  assert not np.allclose(default.batch_stats['features']['BatchNorm_0']['mean'],
                         running.batch_stats['features']['BatchNorm_0']['mean'])
  with pytest.raises(ConfigError, match='unknown BatchNorm statistics'):
    TrainConfig(batchnorm_statistics='batch')


def test_early_stopping_validates_and_keeps_population_statistics():
  pool = _easy_pool(16)
  model = models.get('kd_cnn', 2, 128)
  flipped = SignalPool.from_arrays(pool.signals(), 1 - pool.y, pool.snr, pool.classes)
  state, history = fit(model, pool, TrainConfig(epochs=6, batch_size=8, patience=1), seed=0,
                       validation=flipped)
  best = int(np.argmin([h['val_loss'] for h in history]))
  loss, _ = validation_metrics(model, state.variables, flipped)
  assert loss == pytest.approx(history[best]['val_loss'], rel=1e-5)
  again = population_batch_stats(model, state.variables, pool, 8,
                                 seed=derive_seed(0, 'batchnorm'))
  chex.assert_trees_all_close(state.batch_stats, again, rtol=1e-6, atol=1e-9)
