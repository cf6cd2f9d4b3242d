"""The FoQuS coreset protocol: method specs, budgets, one shared scorer, exact tier shares."""

import numpy as np
import pytest

from amrjax import models
from amrjax.errors import ConfigError
from amrjax.protocols import coreset, one_shot
from amrjax.scoring import dynamics
from amrjax.selection import select
from amrjax.train import TrainConfig
from tests.helpers import random_pool


def test_method_specs_are_canonical():
  assert coreset.parse_method('k-center').name == 'kcenter'
  assert coreset.parse_method('Herd').label == 'Herding'
  pair = coreset.parse_method('foqus: quality + forgetting')
  assert pair.name == 'foqus:forgetting+quality'  # the paper's term order
  assert pair.options == {'components': ('forgetting', 'quality')}
  assert coreset.parse_method('foqus:persistent+quality+forgetting').name == 'foqus'
  with pytest.raises(ConfigError, match='only FoQuS takes score components'):
    coreset.parse_method('margin:quality')
  with pytest.raises(ConfigError, match='distinct names'):
    coreset.parse_method('foqus:quality+margin')
  with pytest.raises(ConfigError, match='not a coreset method'):
    coreset.parse_method('duse')
  assert len(coreset.CORESET_METHODS) == 11 and coreset.CORESET_METHODS[-1] == 'foqus'


def test_ablation_is_table_v():
  methods = coreset.ablation_methods()
  assert methods == ('foqus:forgetting', 'foqus:persistent', 'foqus:quality',
                     'foqus:forgetting+persistent', 'foqus:forgetting+quality',
                     'foqus:persistent+quality', 'foqus')


def test_budget_and_quotas():
  assert coreset.coreset_budget(0.05, 1000, 10) == 50
  with pytest.raises(ConfigError, match='fewer than one per class'):
    coreset.coreset_budget(0.01, 500, 11)
  with pytest.raises(ConfigError,
                     match=r'coreset rate must be in \(0, 1\], got .*; write 4 % as 0.04'):
    coreset.coreset_budget(5, 500, 11)
  pool = random_pool(n=40, num_classes=4)
  np.testing.assert_array_equal(coreset.class_quotas(pool, 10), [3, 3, 2, 2])


@pytest.fixture(scope='module')
def selected():
  train = random_pool(n=96, num_classes=4, length=128, seed=3)
  model = models.get('cnn2d', 4, 128)
  methods = list(coreset.CORESET_METHODS) + ['foqus:quality', 'foqus:forgetting+persistent']
  seen = []
  scorer, selections = coreset.select_coresets(
      model, train, methods, (0.25, 0.5), train_config=TrainConfig(epochs=3, batch_size=16),
      seed=5, on_selected=lambda m, r, s: seen.append((m.name, r)))
  return train, model, scorer, selections, seen


def test_every_method_and_rate_gets_an_exact_class_balanced_coreset(selected):
  train, _, scorer, selections, seen = selected
  assert len(selections) == 13 * 2 and set(seen) == set(selections)
  for (method, rate), selection in selections.items():
    budget = round(rate * len(train))
    positions = selection.positions
    assert len(np.unique(positions)) == len(positions) == budget, method
    np.testing.assert_array_equal(np.bincount(train.y[positions], minlength=4),
                                  [budget // 4] * 4, err_msg=method)
  # One scorer for all of them: trained once, T = 3 presentations recorded per sample.
  assert len(scorer.history) == 3
  np.testing.assert_array_equal(scorer.trajectory.presentations, 3)
  assert {'softmax', 'embedding', 'gradient', 'trajectory'} <= scorer.needs


def test_foqus_draws_the_tier_shares_exactly_within_each_class(selected):
  train, _, scorer, selections, _ = selected
  scores = np.asarray(dynamics.foqus_score(scorer.trajectory, 0.1), np.float64)
  for rate in (0.25, 0.5):
    chosen = np.zeros(len(train), bool)
    chosen[selections[('foqus', rate)].positions] = True
    quota = round(rate * len(train)) // 4
    expected = select._largest_remainder(np.asarray(select.DEFAULT_TIER_SHARES) * quota)
    for c in range(4):
      members = np.flatnonzero(train.y == c)
      ranked = members[select.top_k(scores[members], len(members), largest=True)]
      tiers = np.array_split(ranked, 3)
      np.testing.assert_array_equal([chosen[t].sum() for t in tiers], expected)


def test_ablation_scores_select_by_their_own_terms(selected):
  train, _, scorer, selections, _ = selected
  quality = np.asarray(dynamics.foqus_components(scorer.trajectory)['quality'])
  both = selections[('foqus:quality', 0.5)].scores
  np.testing.assert_allclose(both, quality, rtol=1e-6)
  assert not np.allclose(selections[('foqus:forgetting+persistent', 0.5)].scores, quality)


def test_shared_scorer_selects_as_the_one_shot_protocol_does(selected):
  train, model, _, selections, _ = selected
  budget = round(0.25 * len(train))
  alone = one_shot.select_one_shot(
      'margin', model, train, train, budget, train=TrainConfig(epochs=3, batch_size=16),
      seed=5, quotas=coreset.class_quotas(train, budget))
  np.testing.assert_array_equal(alone.positions, selections[('margin', 0.25)].positions)


def test_selection_directions_on_two_samples():
  """Margin keeps the smaller p1 - p2, Least confidence the lower max p, per class."""
  train = random_pool(n=4, num_classes=2)
  log_probs = np.log(np.array([[0.9, 0.1], [0.6, 0.4], [0.45, 0.55], [0.2, 0.8]]))
  scorer = one_shot.TrainedScorer(None, None, train, train, True, frozenset({'softmax'}),
                                  {'log_probs': log_probs}, {}, None, [], 0.0)
  quotas = np.array([1, 1])  # rows 0, 2 are class 0; rows 1, 3 class 1
  margin = one_shot.select_with('margin', scorer, 2, seed=0, quotas=quotas)
  np.testing.assert_array_equal(margin.positions, [1, 2])
  confidence = one_shot.select_with('least_confidence', scorer, 2, seed=0, quotas=quotas)
  np.testing.assert_array_equal(confidence.positions, [1, 2])


def test_missing_scorer_outputs_are_an_error():
  train = random_pool(n=8, num_classes=2)
  scorer = one_shot.TrainedScorer(None, None, train, train, True, frozenset({'softmax'}),
                                  {'log_probs': np.zeros((8, 2))}, {}, None, [], 0.0)
  with pytest.raises(ConfigError, match='needs trajectory from the scorer'):
    one_shot.select_with('foqus', scorer, 4, seed=0)
  with pytest.raises(ConfigError, match='retrains its scorer over rounds'):
    one_shot.select_with('duse', scorer, 4, seed=0)


def test_uniform_alone_trains_nothing():
  train = random_pool(n=20, num_classes=2)
  scorer, selections = coreset.select_coresets(
      None, train, ['uniform'], (0.5,), train_config=TrainConfig(epochs=2), seed=0)
  assert scorer is None
  np.testing.assert_array_equal(np.bincount(train.y[selections[('uniform', 0.5)].positions]),
                                [5, 5])
  with pytest.raises(ConfigError, match='need a selection model'):
    coreset.select_coresets(None, train, ['margin'], (0.5,), train_config=TrainConfig(),
                            seed=0)
