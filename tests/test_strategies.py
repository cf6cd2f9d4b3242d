import numpy as np
import pytest

from amrjax import models
from amrjax.errors import ConfigError
from amrjax.protocols import one_shot
from amrjax.seeding import derive_seed
from amrjax.selection import select, strategies
from amrjax.train import TrainConfig
from tests.helpers import random_pool

KNOWN_NEEDS = {'softmax', 'embedding', 'gradient', 'input_gradient', 'trajectory'}
FAST_OPTIONS = {'deepfool': {'max_iter': 3}}


def test_every_paper_baseline_is_registered_and_documented():
  expected = set(strategies.DUSE_BASELINES) | set(strategies.FOQUS_BASELINES) | {
      'duse', 'foqus', 'el2n'}
  assert expected <= set(strategies.names())
  assert len(set(strategies.DUSE_BASELINES)) == 8
  assert len(set(strategies.FOQUS_BASELINES)) == 10
  for name in strategies.names():
    s = strategies.get(name)
    assert s.needs <= KNOWN_NEEDS, name
    assert s.reference and s.label, name
    assert s.direction in (strategies.LARGEST, strategies.SMALLEST, strategies.GREEDY,
                           strategies.RANDOM, strategies.TIERED, strategies.ROUNDS)
    if s.direction in (strategies.LARGEST, strategies.SMALLEST, strategies.TIERED):
      assert s.score is not None, name
    if s.direction == strategies.GREEDY:
      assert s.greedy is not None, name
  assert strategies.get('Herd') is strategies.get('herding')
  with pytest.raises(ConfigError, match='unknown selection strategy'):
    strategies.get('coolest')


@pytest.fixture(scope='module')
def sets():
  pool = random_pool(n=72, num_classes=4, length=128, seed=1)
  start = pool.subset(np.arange(12))  # 12 samples, 3 per class
  aux = pool.drop_ids(start.ids)
  return models.get('cnn2d', 4, 128), start, aux


@pytest.fixture(scope='module')
def scorer(sets):
  """One scorer trained on D_T with every output any strategy needs."""
  model, start, aux = sets
  needs = frozenset().union(*(strategies.get(n).needs for n in strategies.names()))
  return one_shot.train_scorer(model, start, aux, needs=needs,
                               train=TrainConfig(epochs=2, batch_size=8), seed=0)


@pytest.mark.parametrize('name', sorted(
    set(strategies.DUSE_BASELINES) | set(strategies.FOQUS_BASELINES) | {'el2n', 'foqus'}))
def test_every_strategy_meets_budget_and_quotas(name, scorer):
  aux = scorer.pool
  options = FAST_OPTIONS.get(name)
  sel = one_shot.select_with(name, scorer, 10, seed=0, options=options)
  assert len(sel.positions) == 10 and len(np.unique(sel.positions)) == 10
  assert np.all(np.diff(sel.positions) > 0) and sel.positions.max() < len(aux)
  quotas = select.balanced_quotas(scorer.start.class_counts(), 8, aux.class_counts())
  sel = one_shot.select_with(name, scorer, 8, seed=0, quotas=quotas, options=options)
  np.testing.assert_array_equal(np.bincount(aux.y[sel.positions], minlength=4), quotas)


def test_duse_one_shot_meets_budget_and_balanced_quotas(sets):
  model, start, aux = sets
  train = TrainConfig(epochs=2, batch_size=8)
  quotas = select.balanced_quotas(start.class_counts(), 8, aux.class_counts())
  sel = one_shot.select_one_shot('duse', model, start, aux, 8, train=train, seed=0,
                                 quotas=quotas)
  np.testing.assert_array_equal(np.bincount(aux.y[sel.positions], minlength=4), quotas)
  assert len(sel.history) >= 2  # the scorer trained in every round


def test_coreset_mode_records_dynamics_on_the_pool_itself(sets):
  model, _, aux = sets
  sel = one_shot.select_one_shot('forgetting', model, aux, aux, 6,
                                 train=TrainConfig(epochs=3, batch_size=16), seed=0)
  assert sel.scores.shape == (len(aux),) and len(sel.history) == 3
  # Forgetting counts are at most T / 2 for learned samples and T for never-learned.
  assert sel.scores.max() <= 3 and sel.scores.min() >= 0


def test_selection_is_deterministic_for_a_seed(sets):
  model, start, aux = sets
  train = TrainConfig(epochs=2, batch_size=8)
  a = one_shot.select_one_shot('entropy', model, start, aux, 7, train=train, seed=4)
  b = one_shot.select_one_shot('entropy', model, start, aux, 7, train=train, seed=4)
  np.testing.assert_array_equal(a.positions, b.positions)


def test_bad_options_and_budgets_are_one_line_errors(sets):
  model, start, aux = sets
  train = TrainConfig(epochs=1, batch_size=8)
  with pytest.raises(ConfigError, match='no option'):
    one_shot.select_one_shot('margin', model, start, aux, 3, train=train, seed=0,
                             options={'k': 3})
  with pytest.raises(ConfigError, match='cannot select'):
    one_shot.select_one_shot('uniform', model, start, aux, len(aux) + 1, train=train,
                             seed=0)
  with pytest.raises(ConfigError, match='quotas sum'):
    one_shot.select_one_shot('uniform', model, start, aux, 5, train=train, seed=0,
                             quotas=np.array([1, 1, 1, 1]))


def _context(log_probs, labels, embedding=None):
  pool = random_pool(n=len(labels), num_classes=log_probs.shape[1], seed=0)
  pool = pool.__class__(pool.store, pool.ids, np.asarray(labels, np.int32), pool.snr,
                        pool.classes)
  out = {'log_probs': np.log(log_probs).astype(np.float32)}
  if embedding is not None:
    out['embedding'] = embedding.astype(np.float32)
  return strategies.Context(None, None, pool, pool, True, out, {}, None,
                            {'k': 1}, 16)


@pytest.mark.parametrize('name', ['least_confidence', 'entropy', 'margin', 'el2n'])
def test_strategy_direction_keeps_the_uncertain_sample(name):
  probs = np.array([[0.9, 0.05, 0.05],   # confident, right
                    [0.4, 0.35, 0.25]])  # uncertain
  s = strategies.get(name)
  scores = s.score(_context(probs, [0, 0]))
  picked = select.top_k(scores, 1, largest=s.direction == strategies.LARGEST)
  assert picked.tolist() == [1]


def test_duse_without_active_learning_equals_the_margin_baseline(sets):
  # REFERENCE: "w/o active learning" = one round with the whole budget = Margin.
  model, start, aux = sets
  train = TrainConfig(epochs=2, batch_size=8)
  margin = one_shot.select_one_shot('margin', model, start, aux, 9, train=train, seed=11)
  duse = one_shot.select_one_shot('duse', model, start, aux, 9, train=train, seed=11,
                                  options={'rounds': 1})
  np.testing.assert_array_equal(margin.positions, duse.positions)


def test_tied_scores_are_not_taken_in_file_order(sets):
  # Forgetting counts tie massively; file order groups classes, so position tie-breaking
  # would take the first classes. The strategy layer breaks ties with its seeded rng.
  _, _, aux = sets
  ctx = _context(np.full((len(aux), 4), 0.25), aux.y)
  s = strategies.Strategy('flat', 'Flat', frozenset(), strategies.LARGEST,
                          score=lambda c: np.zeros(len(c.pool.y)))
  rng = np.random.default_rng(0)
  picked = select.top_k(s.score(ctx), 12, largest=True, tie_rng=rng)
  assert sorted(picked.tolist()) != list(range(12))
  again = select.top_k(s.score(ctx), 12, largest=True, tie_rng=np.random.default_rng(0))
  np.testing.assert_array_equal(picked, again)


def test_grand_runs_average_the_norms_of_independent_scorers(sets):
  """DUSE Eq. 15's expectation over runs: runs=2 scores the mean of two scorers' GraNd."""
  model, start, aux = sets
  train = TrainConfig(epochs=1, batch_size=8)
  both = one_shot.train_scorer(model, start, aux, needs={'gradient'}, train=train, seed=3,
                               runs=2)
  assert len(both.other_variables) == 1
  first = one_shot.select_with('grand', both, 5, seed=0).scores
  averaged = one_shot.select_with('grand', both, 5, seed=0, options={'runs': 2}).scores
  second_alone = one_shot.train_scorer(model, start, aux, needs={'gradient'}, train=train,
                                       seed=derive_seed(3, 'scorer-run', 1))
  second = one_shot.select_with('grand', second_alone, 5, seed=0).scores
  assert not np.allclose(first, second)  # two initialisations, two different scorers
  np.testing.assert_allclose(averaged, (first + second) / 2, rtol=1e-5)
  alone = one_shot.select_one_shot('grand', model, start, aux, 5, train=train, seed=3,
                                        options={'runs': 2})
  np.testing.assert_allclose(alone.scores, averaged, rtol=1e-5)
  with pytest.raises(ConfigError, match='only 1 were trained'):
    one_shot.select_with('grand', second_alone, 5, seed=0, options={'runs': 2})
  with pytest.raises(ConfigError, match='at least 1'):
    one_shot.select_one_shot('grand', model, start, aux, 5, train=train, seed=0,
                             options={'runs': 0})
  with pytest.raises(ConfigError, match='last_layer'):
    one_shot.select_one_shot('grand', model, start, aux, 5, train=train, seed=0,
                             options={'runs': 2, 'last_layer': True})
