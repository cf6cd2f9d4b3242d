import numpy as np
import pytest

from amrjax import models
from amrjax.errors import ConfigError
from amrjax.protocols import expansion
from amrjax.scoring import pools
from amrjax.selection import select
from amrjax.train import TrainConfig, fit, loop
from tests.helpers import random_pool

TRAIN = TrainConfig(epochs=1, batch_size=16)


@pytest.fixture(scope='module')
def sets():
  pool = random_pool(n=120, num_classes=4)
  target = pool.subset(np.arange(8))  # 2 per class
  return target, pool.drop_ids(target.ids)


@pytest.fixture(scope='module')
def model():
  return models.get('cnn2d', 4, 128)


def test_round_budgets():
  assert expansion.round_budgets(10, 3) == [4, 3, 3]
  assert expansion.round_budgets(9, 3) == [3, 3, 3]
  assert sum(expansion.round_budgets(1001, 7)) == 1001


def test_geometric_round_budgets_grow_the_target_set_by_one_factor():
  # 352 -> 1,760 in 4 rounds: factor 5^(1/4) = 1.4953 per round.
  parts = expansion.round_budgets(1408, 4, expansion.GEOMETRIC, start_size=352)
  assert parts == [174, 261, 390, 583] and sum(parts) == 1408
  sizes = 352 + np.cumsum(parts)
  np.testing.assert_allclose(sizes / np.r_[352, sizes[:-1]], 5 ** 0.25, rtol=2e-3)
  # Rounds that would round to nothing still move one sample; the budget is kept.
  assert expansion.round_budgets(5, 5, expansion.GEOMETRIC, start_size=1000) == [1] * 5
  assert expansion.round_budgets(10, 3, expansion.GEOMETRIC, start_size=1) == [1, 3, 6]
  with pytest.raises(ConfigError, match='size of the starting set'):
    expansion.round_budgets(10, 3, expansion.GEOMETRIC)
  with pytest.raises(ConfigError, match='unknown budget split'):
    expansion.ExpansionConfig(budget=10, budget_split='front')


def test_expand_follows_the_geometric_split(sets, model):
  target, aux = sets
  config = expansion.ExpansionConfig(budget=24, rounds=3, train=TRAIN,
                                     budget_split=expansion.GEOMETRIC)
  result = expansion.expand(model, target, aux, config, seed=0)
  expected = expansion.round_budgets(24, 3, expansion.GEOMETRIC, start_size=len(target))
  assert [len(r.selected_ids) for r in result.rounds] == expected == [5, 7, 12]


def test_budget_for_rate():
  assert expansion.budget_for_rate(0.04, 10_000) == 400
  assert expansion.budget_for_rate(0.04, 10_000, auxiliary_size=400) == 400
  for bad in (0.0, 1.5, -0.1):
    with pytest.raises(ConfigError, match=r'in \(0, 1\]'):
      expansion.budget_for_rate(bad, 100)
  with pytest.raises(ConfigError, match='budget 400 exceeds the 399 auxiliary samples'):
    expansion.budget_for_rate(0.04, 10_000, auxiliary_size=399)


def test_same_seed_same_selection_other_seed_another(sets, model):
  target, aux = sets
  config = expansion.ExpansionConfig(budget=12, rounds=2, train=TRAIN)
  a, again, b = (expansion.expand(model, target, aux, config, seed=seed).expanded.ids
                 for seed in (0, 0, 1))
  np.testing.assert_array_equal(a, again)
  assert not np.array_equal(np.sort(a), np.sort(b))


def test_imbalance_invariants(sets, model):
  target, aux = sets
  config = expansion.ExpansionConfig(budget=22, rounds=3, train=TRAIN)
  result = expansion.expand(model, target, aux, config, seed=0)
  picked = result.selected_ids
  assert [len(r.selected_ids) for r in result.rounds] == [8, 7, 7]
  assert len(picked) == 22 and len(np.unique(picked)) == 22  # budget met, no id twice
  assert np.isin(picked, aux.ids).all()
  np.testing.assert_array_equal(result.expanded.ids, np.union1d(target.ids, picked))
  np.testing.assert_array_equal(result.remaining.ids, np.setdiff1d(aux.ids, picked))
  assert result.rounds[-1].target_class_counts == result.expanded.class_counts().tolist()


def test_balance_setting_gives_equal_class_counts(sets, model):
  target, aux = sets
  config = expansion.ExpansionConfig(budget=24, rounds=2, setting='balance', train=TRAIN)
  result = expansion.expand(model, target, aux, config, seed=0)
  assert result.expanded.class_counts().tolist() == [8, 8, 8, 8]
  for record in result.rounds:
    counts = np.asarray(record.target_class_counts)
    assert counts.max() - counts.min() <= 1


def test_balance_rounds_move_exactly_the_quotas_computed_once(sets, model, monkeypatch):
  target, aux = sets
  config = expansion.ExpansionConfig(budget=24, rounds=3, setting='balance', train=TRAIN)
  once = expansion.class_quotas(target, aux, 24, 'balance')
  assert once.tolist() == [6, 6, 6, 6]
  assert expansion.class_quotas(target, aux, 24, 'imbalance') is None
  # Given the quotas, expand computes none of its own and moves exactly them.
  calls = []
  monkeypatch.setattr(expansion, 'class_quotas', lambda *a: calls.append(a))
  given = np.array([9, 3, 6, 6])  # not balanced: honoured all the same
  result = expansion.expand(model, target, aux, config, seed=0, quotas=given)
  assert calls == []
  assert np.sum([r.selected_class_counts for r in result.rounds], axis=0).tolist() == [9, 3, 6, 6]
  # Each round water-fills its share within what is left: the rounds stay as balanced as
  # the quotas allow (class 1 is capped at 3, so it falls behind from the second round).
  assert [r.selected_class_counts for r in result.rounds] == [[2, 2, 2, 2], [3, 1, 2, 2],
                                                              [4, 0, 2, 2]]


def test_bad_quotas_are_refused(sets, model):
  target, aux = sets
  balance = expansion.ExpansionConfig(budget=8, rounds=1, setting='balance', train=TRAIN)
  for bad, why in (([2, 2, 2], '4 counts'), ([3, 3, 3, 3], 'summing to the budget 8'),
                   ([9, -1, 0, 0], 'within')):
    with pytest.raises(ConfigError, match=why):
      expansion.expand(model, target, aux, balance, seed=0, quotas=np.array(bad))
  imbalance = expansion.ExpansionConfig(budget=8, rounds=1, train=TRAIN)
  with pytest.raises(ConfigError, match="apply to the 'balance' setting"):
    expansion.expand(model, target, aux, imbalance, seed=0, quotas=np.array([2, 2, 2, 2]))


def test_one_shot_is_one_round_of_the_smallest_margins(sets, model):
  target, aux = sets
  config = expansion.ExpansionConfig(budget=10, rounds=1, train=TRAIN)
  result = expansion.expand(model, target, aux, config, seed=7)
  assert len(result.rounds) == 1 and len(result.rounds[0].selected_ids) == 10
  # Recompute independently: train the round-1 scorer, take the 10 smallest margins.
  state, _ = fit(model, target, TRAIN, seed=7)  # round 1 trains with the seed itself
  u = pools.score_pool(model, state.variables, aux)
  expected = np.sort(aux.ids[select.top_k(u, 10, largest=False)])
  np.testing.assert_array_equal(np.sort(result.selected_ids), expected)
  assert result.rounds[0].selected_margin['max'] <= np.sort(u)[10] + 1e-7


def test_bad_configs(sets, model):
  target, aux = sets
  with pytest.raises(ConfigError, match='budget 500 exceeds the 112 auxiliary'):
    expansion.expand(model, target, aux, expansion.ExpansionConfig(budget=500, train=TRAIN),
                     seed=0)
  with pytest.raises(ConfigError, match='unknown setting'):
    expansion.ExpansionConfig(budget=5, setting='greedy')
  with pytest.raises(ConfigError, match='use fewer rounds'):
    expansion.ExpansionConfig(budget=2, rounds=3)
  with pytest.raises(ConfigError, match='share sample ids'):
    expansion.expand(model, target, target, expansion.ExpansionConfig(budget=1, rounds=1),
                     seed=0)


def test_a_diverged_round_names_the_round(monkeypatch):
  from amrjax.train import TrainingDivergedError
  calls = []

  def diverging_fit(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise TrainingDivergedError('training diverged in epoch 3 (by step 12): loss nan')
    return real_fit(*args, **kwargs)

  real_fit = expansion.fit
  monkeypatch.setattr(expansion, 'fit', diverging_fit)
  pool = random_pool(n=60, num_classes=4)
  target, aux = pool.subset(np.arange(12)), pool.subset(np.arange(12, 60))
  model = models.get('cnn1d', 4, 128)
  config = expansion.ExpansionConfig(budget=6, rounds=3,
                                     train=TrainConfig(epochs=1, batch_size=16))
  with pytest.raises(TrainingDivergedError,
                     match=r'^DUSE round 2 of 3: training diverged in epoch 3 \(by step 12\)'):
    expansion.expand(model, target, aux, config, seed=0)


def test_round_checkpoints_resume_to_the_uninterrupted_result(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(loop, 'CHECKPOINT_INTERVAL_SECONDS', 0.0)  # every epoch
  pool = random_pool(n=60, num_classes=4, seed=3)
  target, aux = pool.subset(np.arange(0, 60, 5)), pool.subset(np.setdiff1d(np.arange(60),
                                                                           np.arange(0, 60, 5)))
  model = models.get('cnn1d', 4, 128)
  config = expansion.ExpansionConfig(budget=9, rounds=3,
                                     train=TrainConfig(epochs=2, batch_size=16))
  whole = expansion.expand(model, target, aux, config, seed=4)

  class Interrupted(Exception):
    pass

  epochs_seen = []

  def stop_in_round_two(metrics):
    epochs_seen.append(metrics['epoch'])
    if len(epochs_seen) == 4:  # round 2's second epoch (reported before it would be saved)
      raise Interrupted
  with pytest.raises(Interrupted):
    expansion.expand(model, target, aux, config, seed=4, checkpoints=tmp_path / 'ck',
                     on_epoch=stop_in_round_two)
  # Round 1 complete; round 2's training saved its first epoch.
  assert sorted(p.name for p in (tmp_path / 'ck').iterdir()) == [
      'round-1', 'round-1.json', 'round-2-epochs']
  rounds_run, epochs_run = [], []
  resumed = expansion.expand(model, target, aux, config, seed=4, checkpoints=tmp_path / 'ck',
                             on_round=lambda r: rounds_run.append(r.round),
                             on_epoch=lambda m: epochs_run.append(m['epoch']))
  assert rounds_run == [2, 3] and epochs_run == [2, 1, 2]
  for a, b in zip(whole.rounds, resumed.rounds, strict=True):
    np.testing.assert_array_equal(a.selected_ids, b.selected_ids)
    assert a.selected_margin == b.selected_margin and a.train_loss == b.train_loss
  np.testing.assert_array_equal(whole.expanded.ids, resumed.expanded.ids)
  # Only the latest round is kept, and no round's epoch checkpoints.
  assert sorted(p.name for p in (tmp_path / 'ck').iterdir()) == ['round-3', 'round-3.json']
  other = expansion.ExpansionConfig(budget=6, rounds=3, train=config.train)
  with pytest.raises(ConfigError, match='belong to another expansion'):
    expansion.expand(model, target, aux, other, seed=4, checkpoints=tmp_path / 'ck')
  # A cut-off round record: reported in one line, and the expansion is redone from round 1.
  record = tmp_path / 'ck' / 'round-3.json'
  record.write_text(record.read_text()[:25])
  rounds_run.clear()
  capsys.readouterr()
  redone = expansion.expand(model, target, aux, config, seed=4, checkpoints=tmp_path / 'ck',
                            on_round=lambda r: rounds_run.append(r.round))
  lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith('warning')]
  assert len(lines) == 1 and lines[0].startswith(f'warning: damaged checkpoint: {record} ')
  assert rounds_run == [1, 2, 3]
  np.testing.assert_array_equal(whole.expanded.ids, redone.expanded.ids)
