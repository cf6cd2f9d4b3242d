import numpy as np
import pytest

from amrjax.data import specs, splits, synth
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from tests.helpers import random_pool

SPEC = specs.get_spec('rml2016.10a')


@pytest.fixture(scope='module')
def dataset():
  x, y, snr = synth.generate(SPEC, count_per_cell=50)
  return SignalPool.from_arrays(x, y, snr, SPEC.classes)


def test_split_invariants(dataset):
  s = splits.make_splits(dataset, train_fraction=0.8, target_seed=3)
  assert (s.train.snr > 10).all() and (s.test.snr > 10).all()
  assert len(s.train) + len(s.test) == 11 * 4 * 50  # SNR 12, 14, 16, 18
  assert not np.intersect1d(s.train.ids, s.test.ids).size
  assert not np.intersect1d(s.target.ids, s.auxiliary.ids).size
  np.testing.assert_array_equal(np.union1d(s.target.ids, s.auxiliary.ids), s.train.ids)
  # 8:2 inside every (class, SNR) cell.
  for c in range(11):
    for snr in (12, 14, 16, 18):
      assert ((s.train.y == c) & (s.train.snr == snr)).sum() == 40
  # D_T: round(1 % of train), class-balanced.
  assert len(s.target) == round(0.01 * len(s.train))
  counts = s.target.class_counts()
  assert counts.max() - counts.min() <= 1


def test_seeds_change_the_target_not_the_test_set(dataset):
  a = splits.make_splits(dataset, train_fraction=0.8, target_seed=0)
  b = splits.make_splits(dataset, train_fraction=0.8, target_seed=1)
  np.testing.assert_array_equal(a.test.ids, b.test.ids)
  assert not np.array_equal(a.target.ids, b.target.ids)
  c = splits.make_splits(dataset, train_fraction=0.8, target_seed=0)
  np.testing.assert_array_equal(a.target.ids, c.target.ids)


def test_check_catches_overlap(dataset):
  s = splits.make_splits(dataset, train_fraction=0.8)
  broken = splits.Splits(s.train, s.test.union(s.target), s.target, s.auxiliary)
  with pytest.raises(RuntimeError, match='share'):
    broken.check()


def test_max_per_cell_and_in_memory(dataset):
  s = splits.make_splits(dataset, train_fraction=0.8, max_per_cell=10, target_fraction=0.05)
  assert len(s.train) + len(s.test) == 11 * 4 * 10
  m = s.in_memory()
  np.testing.assert_array_equal(m.auxiliary.signals(), s.auxiliary.signals())
  assert m.target.store is m.test.store


def test_bad_settings(dataset):
  with pytest.raises(ConfigError, match='no vectors have SNR > 40'):
    splits.make_splits(dataset, train_fraction=0.8, min_snr=40)
  with pytest.raises(ConfigError, match='fewer than one per class'):
    splits.make_splits(dataset, train_fraction=0.8, max_per_cell=5)
  # A (class, SNR) cell whose split leaves one side empty is refused, before any training,
  # with the cell named (2 vectors: round(1.6) = 2 to train, none to test).
  with pytest.raises(ConfigError, match=r'cell\(s\) are too small for a 80% / 20% train / '
                     r'test split: \(\w+, 12 dB: 2 vector\(s\), no test\)'):
    splits.make_splits(dataset, train_fraction=0.8, max_per_cell=2)
  keep = np.ones(len(dataset), bool)
  keep[np.flatnonzero((dataset.y == 0) & (dataset.snr == 12))[1:]] = False  # one vector left
  with pytest.raises(ConfigError, match=r'1 \(class, SNR\) cell\(s\).*1 vector\(s\), no test'):
    splits.make_splits(dataset.subset(keep), train_fraction=0.8)
  with pytest.raises(ConfigError, match='train fraction'):
    splits.make_splits(dataset, train_fraction=1.0)
  one_class_low = dataset.subset(~((dataset.y == 3) & (dataset.snr > 0)))
  with pytest.raises(ConfigError, match='BPSK have no vectors with SNR > 10'):
    splits.make_splits(one_class_low, train_fraction=0.8)


def test_afnet_validation_is_carved_from_train_in_every_cell():
  pool = random_pool(n=240, num_classes=4, snrs=(-10, 0, 10))  # 12 cells of 20
  parts_of = splits.train_validation_test(pool, train_fraction=0.8, validation_fraction=0.25)
  assert parts_of.summary() == {'train': 144, 'validation': 48, 'test': 48}
  parts = (parts_of.train, parts_of.validation, parts_of.test)
  all_ids = np.concatenate([p.ids for p in parts])
  assert len(np.unique(all_ids)) == len(pool)
  for part, per_cell in zip(parts, (12, 4, 4)):
    cells = np.unique(np.stack([part.y, part.snr]), axis=1, return_counts=True)[1]
    assert len(cells) == 12 and np.all(cells == per_cell)
  with pytest.raises(ConfigError, match=r'too small for a 90% / 10% train / validation split'):
    splits.train_validation_test(random_pool(n=24, num_classes=4), train_fraction=0.5,
                                 validation_fraction=0.1)


def test_clst_few_shot_split_is_stratified_and_disjoint():
  pool = random_pool(n=600, num_classes=4, snrs=(0, 10, 20))  # 12 cells of 50
  split = splits.few_shot_split(pool, 0.2, seed=0)
  assert split.summary() == {'train': 120, 'validation': 240, 'test': 240}
  for part in (split.train, split.validation, split.test):
    cells = np.unique(np.stack([part.y, part.snr]), axis=1, return_counts=True)[1]
    assert len(cells) == 12 and len(set(cells.tolist())) == 1  # equal per cell
  joined = np.concatenate([split.train.ids, split.validation.ids, split.test.ids])
  assert np.array_equal(np.sort(joined), pool.ids)
  capped = splits.few_shot_split(pool, 0.2, seed=0, eval_per_cell=3, min_snr=5)
  assert capped.summary() == {'train': 80, 'validation': 24, 'test': 24}
  other = splits.few_shot_split(pool, 0.2, seed=1)
  assert not np.array_equal(other.train.ids, split.train.ids)
  with pytest.raises(ConfigError, match='leaves no training vector'):
    splits.few_shot_split(pool, 0.005, seed=0)
