"""DUSE (Lu et al. 2025, Algorithm 2): expand a target set with uncertain auxiliary samples.

For r = 1..R: train the scorer on D_T for E epochs (Eq. 8), score every sample of D_A with
the margin u = p*_1 - p*_2 (Eq. 7), move the K_r samples with the smallest u from D_A to
D_T (Eq. 10-11). How the total budget K is split over the rounds the paper does not say
("until the total budget is reached"); ``budget_split`` chooses (:func:`round_budgets`):
``'even'`` (K/R per round) or ``'geometric'`` (D_T grows by the same factor every round,
so the early rounds, scored by a model trained on few samples, move fewer).

Settings (DUSE Sec. IV-E):
- ``'imbalance'``: the K_r smallest margins overall, whatever their classes;
- ``'balance'``: per class, the smallest margins of that class, with per-class quotas that
  keep the expanded set's class counts equal (water-filling; ties to the lower class).
  The quotas of the whole budget are computed once (:func:`class_quotas`) and every round
  water-fills its K_r within what is left of them; since water-filling in steps ends where
  one step would, the rounds move exactly those quotas, and the one-shot baselines and
  random expansion, given the same quotas, select the same class counts.

``rounds=1`` is DUSE without active learning (Table IV), i.e. the one-shot Margin baseline.
The number of rounds is not given in the paper; it is a parameter (default 5).

The scorer keeps training across rounds (``warm_start=True``): Algorithm 2 trains the same
f(.; theta) in every round and never re-initialises it. ``warm_start=False`` retrains from
scratch each round.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np

from amrjax import progress, scoring
from amrjax.scoring import pools
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.seeding import derive_seed
from amrjax.selection import select
from amrjax.train import TrainConfig, TrainState, diverged_where, fit, init_state
from amrjax.train.checkpoint import RoundCheckpoints

IMBALANCE = 'imbalance'
BALANCE = 'balance'
SETTINGS = (IMBALANCE, BALANCE)
EVEN, GEOMETRIC = 'even', 'geometric'
BUDGET_SPLITS = (EVEN, GEOMETRIC)


@dataclasses.dataclass(frozen=True)
class ExpansionConfig:
  """DUSE settings.

  Attributes:
    budget: K, the total number of samples moved from D_A to D_T.
    rounds: R, active-learning rounds (1 = one-shot).
    setting: ``'imbalance'`` or ``'balance'``.
    train: how the scorer trains each round (DUSE: 20 epochs, lr 1e-3, batch 128).
    warm_start: keep training the same scorer across rounds (Algorithm 2).
    budget_split: ``'even'`` or ``'geometric'`` (:func:`round_budgets`).
    score_batch_size: pool-scoring batch size.
  """

  budget: int
  rounds: int = 5
  setting: str = IMBALANCE
  train: TrainConfig = TrainConfig(epochs=20)
  warm_start: bool = True
  budget_split: str = EVEN
  score_batch_size: int = 1024

  def __post_init__(self):
    if self.budget < 1:
      raise ConfigError(f'the expansion budget must be at least 1, got {self.budget}')
    if self.rounds < 1:
      raise ConfigError(f'rounds must be at least 1, got {self.rounds}')
    if self.rounds > self.budget:
      raise ConfigError(f'{self.rounds} rounds cannot each move a sample of a budget of '
                        f'{self.budget}; use fewer rounds')
    check_setting(self.setting)
    check_budget_split(self.budget_split)


@dataclasses.dataclass(frozen=True)
class RoundRecord:
  """What one round did: the ids it moved and what the scorer saw."""

  round: int
  selected_ids: np.ndarray
  selected_class_counts: list[int]
  target_class_counts: list[int]
  selected_margin: dict[str, float]
  pool_margin: dict[str, float]
  train_loss: float
  train_accuracy: float
  seconds: float

  def to_json(self) -> dict:
    out = dataclasses.asdict(self)
    out['selected_ids'] = self.selected_ids.tolist()
    return out

  @classmethod
  def from_json(cls, record: dict) -> RoundRecord:
    return cls(**{**record, 'selected_ids': np.asarray(record['selected_ids'], np.int64)})


@dataclasses.dataclass(frozen=True)
class ExpansionResult:
  """D_T* (``expanded``), what is left of D_A (``remaining``) and one record per round."""

  expanded: SignalPool
  remaining: SignalPool
  rounds: list[RoundRecord]

  @property
  def selected_ids(self) -> np.ndarray:
    """All moved ids, in the order of their rounds."""
    return np.concatenate([r.selected_ids for r in self.rounds])


def budget_for_rate(rate: float, train_size: int, auxiliary_size: int | None = None) -> int:
  """K for expansion rate r: round(r * |train|), checked against |D_A| when it is given.

  r = (|D_T*| - |D_T|) / |train|, so with the 1 % target, r = 4 % gives an expanded set of
  5 % of the training set, as DUSE Sec. IV-E says of its 4 % set ("only 5 % of the original
  dataset"). (DUSE Eq. 16 prints |D_A| as the denominator; with |D_A| = 0.99 |train| the two
  differ by 1 %.)
  """
  select.check_rate(rate, 'expansion')
  budget = int(round(rate * train_size))
  if budget < 1:
    raise ConfigError(f'expansion rate {rate} of {train_size} training vectors selects '
                      'nothing; raise the rate or use more data')
  if auxiliary_size is not None:
    check_budget(budget, auxiliary_size)
  return budget


def check_budget(budget: int, auxiliary_size: int) -> None:
  """A one-line :class:`ConfigError` when K exceeds the auxiliary set D_A."""
  if budget > auxiliary_size:
    raise ConfigError(f'budget {budget} exceeds the {auxiliary_size} auxiliary samples; '
                      'lower the expansion rate')


def check_setting(setting: str) -> None:
  """A one-line :class:`ConfigError` unless ``setting`` is one of :data:`SETTINGS`."""
  if setting not in SETTINGS:
    raise ConfigError(f'unknown setting {setting!r}; choose one of {", ".join(SETTINGS)}')


def class_quotas(target: SignalPool, auxiliary: SignalPool, budget: int,
                 setting: str) -> np.ndarray | None:
  """The (C,) per-class counts a class-balanced expansion of ``budget`` moves, or None.

  ``'balance'``: water-filling of D_T's class counts with D_A's as the supply
  (:func:`amrjax.selection.select.balanced_quotas`), so D_T* is as class-balanced as D_A
  allows. ``'imbalance'``: None (no quotas). Computed once per expansion and passed to
  :func:`expand`, the one-shot baselines and random expansion alike.
  """
  check_setting(setting)
  if setting == IMBALANCE:
    return None
  return select.balanced_quotas(target.class_counts(), budget, auxiliary.class_counts())


def check_budget_split(split: str) -> None:
  """A one-line :class:`ConfigError` unless ``split`` is one of :data:`BUDGET_SPLITS`."""
  if split not in BUDGET_SPLITS:
    raise ConfigError(f'unknown budget split {split!r}; choose one of {", ".join(BUDGET_SPLITS)}')


def round_budgets(budget: int, rounds: int, split: str = EVEN,
                  start_size: int | None = None) -> list[int]:
  """K split into R per-round budgets K_1..K_R (each at least 1, summing to K).

  ``'even'``: parts that differ by at most one, larger parts first.
  ``'geometric'``: D_T grows by the same factor g = ((N_T + K) / N_T)^(1/R) every round,
  K_r = round(N_T g^r) - round(N_T g^(r-1)) with N_T = ``start_size`` (required), so the
  rounds grow with the set that trains their scorer; a round that would move nothing
  moves one sample, taken from the largest round.
  """
  if split == EVEN:
    base, extra = divmod(budget, rounds)
    return [base + (r < extra) for r in range(rounds)]
  check_budget_split(split)
  if not start_size or start_size < 1:
    raise ConfigError('the geometric budget split needs the size of the starting set D_T')
  growth = ((start_size + budget) / start_size) ** (1 / rounds)
  sizes = [int(round(start_size * growth ** r)) for r in range(rounds)] + [start_size + budget]
  parts = [max(1, b - a) for a, b in zip(sizes, sizes[1:])]
  while sum(parts) > budget:  # the max(1, .) above added samples: take them back
    parts[int(np.argmax(parts))] -= 1
  return parts


def _stats(values: np.ndarray) -> dict[str, float]:
  return {'min': float(values.min()), 'mean': float(values.mean()),
          'max': float(values.max())}


def select_uncertain(scores: np.ndarray, auxiliary: SignalPool, target: SignalPool, k: int,
                     quotas_left: np.ndarray | None, *, largest: bool = False) -> np.ndarray:
  """Positions in ``auxiliary`` of the k samples to move in one round (Eq. 10).

  ``quotas_left``: None selects the k smallest scores overall ('imbalance'); otherwise the
  (C,) class quotas not yet moved, within which this round's k are water-filled onto
  ``target``'s class counts and taken per class ('balance').
  """
  if quotas_left is None:
    return np.sort(select.top_k(scores, k, largest=largest))
  round_quotas = select.balanced_quotas(target.class_counts(), k, quotas_left)
  return select.class_balanced_top_k(scores, auxiliary.y, round_quotas, largest=largest)


def expand(model: nn.Module, target: SignalPool, auxiliary: SignalPool,
           config: ExpansionConfig, *, seed: int, quotas: np.ndarray | None = None,
           score_fn: Callable[[jax.Array], jax.Array] = scoring.margin,
           largest: bool = False,
           on_round: Callable[[RoundRecord], None] | None = None,
           on_epoch: Callable[[dict], None] | None = None,
           checkpoints: Path | str | None = None) -> ExpansionResult:
  """Runs DUSE: R rounds of train on D_T, score D_A, move the K_r most uncertain.

  Args:
    model: the scorer (DUSE: the 2D-CNN).
    target: D_T.
    auxiliary: D_A; must share no id with ``target``.
    config: budget, rounds, setting, scorer training.
    seed: seeds the scorer's initialisation, shuffling and dropout in every round.
    quotas: the 'balance' setting's (C,) per-class counts of the whole budget, as
      :func:`class_quotas` gives them (computed here when None); any quotas summing to the
      budget and within D_A's class counts are honoured. Refused in the 'imbalance' setting.
    score_fn: softmax (..., C) -> score (...); DUSE's margin by default.
    largest: select the largest scores instead (DUSE selects the smallest margins).
    on_round: called with each round's record.
    on_epoch: called with each scorer training epoch's metrics.
    checkpoints: a folder for round checkpoints (:class:`amrjax.train.checkpoint.RoundCheckpoints`:
      the scorer's state and the records so far after every round, only the latest kept;
      within a round, the scorer training's epoch checkpoints in ``round-r-epochs/``). If
      it holds an interrupted call's, the loop continues after the last complete round
      (and its training after the last epoch); the rounds are seeded, so the result equals
      an uninterrupted call's. Call it with the same arguments: the folder belongs to one
      (target, auxiliary, config, seed).

  Returns:
    The expanded target set, the remaining auxiliary set and the per-round records.
  """
  if np.intersect1d(target.ids, auxiliary.ids).size:
    raise ConfigError('target and auxiliary sets share sample ids')
  check_budget(config.budget, len(auxiliary))
  quotas = _check_quotas(quotas, target, auxiliary, config)
  budgets = round_budgets(config.budget, config.rounds, config.budget_split,
                          start_size=len(target))
  start_counts = target.class_counts()
  state, records = None, []
  saved = (RoundCheckpoints(checkpoints, keep_only_latest=True)
           if checkpoints is not None else None)
  if saved is not None:
    state, records = _resume(model, target, saved, config, seed)
  if records:
    moved_ids = np.concatenate([rec.selected_ids for rec in records])
    target = target.union(auxiliary.take_ids(moved_ids))
    auxiliary = auxiliary.drop_ids(moved_ids)
  with progress.task('DUSE round', total=config.rounds, unit='round') as shown:
    for r, k in enumerate(budgets, start=1):
      if r <= len(records):
        shown.advance()
        continue  # done before an interruption
      t0 = time.time()
      # Round 1 trains exactly as the one-shot baselines do with the same seed
      # (one_shot.select_one_shot), so DUSE w/o active learning = the Margin baseline.
      round_seed = seed if r == 1 else derive_seed(seed, 'duse-round', r)
      epochs_folder = None if saved is None else saved.folder / f'round-{r}-epochs'
      with diverged_where(f'DUSE round {r} of {config.rounds}'):
        state, history = fit(model, target, config.train, seed=round_seed,
                             state=state if config.warm_start else None, on_epoch=on_epoch,
                             checkpoint=epochs_folder, checkpoint_last=False)  # round saved
      scores = pools.score_pool(model, state.variables, auxiliary, score_fn,
                                  batch_size=config.score_batch_size)
      quotas_left = None if quotas is None else quotas - (target.class_counts() - start_counts)
      picked = select_uncertain(scores, auxiliary, target, k, quotas_left, largest=largest)
      moved = auxiliary.subset(picked)
      target, auxiliary = target.union(moved), auxiliary.drop_ids(moved.ids)
      last = history[-1] if history else {'loss': float('nan'), 'accuracy': float('nan')}
      record = RoundRecord(
          round=r, selected_ids=moved.ids, selected_class_counts=moved.class_counts().tolist(),
          target_class_counts=target.class_counts().tolist(),
          selected_margin=_stats(scores[picked]), pool_margin=_stats(scores),
          train_loss=last['loss'], train_accuracy=last['accuracy'], seconds=time.time() - t0)
      records.append(record)
      if saved is not None:
        saved.save(r, state, {'budget': config.budget, 'rounds': config.rounds, 'seed': seed,
                              'records': [rec.to_json() for rec in records]})
        shutil.rmtree(epochs_folder, ignore_errors=True)
      shown.advance()
      if on_round is not None:
        on_round(record)
  return ExpansionResult(target, auxiliary, records)


def _check_quotas(quotas: np.ndarray | None, target: SignalPool, auxiliary: SignalPool,
                  config: ExpansionConfig) -> np.ndarray | None:
  """The whole budget's class quotas for ``config.setting`` (given, or computed once)."""
  if config.setting == IMBALANCE:
    if quotas is not None:
      raise ConfigError("class quotas apply to the 'balance' setting; the 'imbalance' "
                        'setting selects over all classes')
    return None
  if quotas is None:
    return class_quotas(target, auxiliary, config.budget, config.setting)
  quotas = np.asarray(quotas, np.int64)
  available = auxiliary.class_counts()
  if (quotas.shape != available.shape or int(quotas.sum()) != config.budget or
      (quotas < 0).any() or (quotas > available).any()):
    raise ConfigError(f'class quotas {quotas.tolist()} must be {len(available)} counts '
                      f'summing to the budget {config.budget}, each within the auxiliary '
                      f'set\'s {available.tolist()}')
  return quotas


def _resume(model: nn.Module, target: SignalPool, saved: RoundCheckpoints,
            config: ExpansionConfig, seed: int) -> tuple[TrainState, list[RoundRecord]]:
  """The scorer state and the records of the last sound round in ``saved``; (None, []) when
  there is none (a damaged round is reported and skipped: ``RoundCheckpoints.load_latest``)."""
  if not saved.latest():
    return None, []
  like = init_state(model, length=target.length, learning_rate=config.train.learning_rate,
                    seed=0, schedule=config.train.schedule,
                    decay_steps=config.train.epochs * -(-len(target) // config.train.batch_size))
  rounds = []

  def check(record: dict) -> None:
    if (record['budget'], record['rounds'], record['seed']) != (config.budget, config.rounds,
                                                                seed):
      raise ConfigError(f'the round checkpoints in {saved.folder} belong to another expansion '
                        f'(budget {record["budget"]}, {record["rounds"]} rounds, seed '
                        f'{record["seed"]}); remove them or use another folder')
    rounds[:] = [RoundRecord.from_json(r) for r in record['records']]  # damaged if it fails
  last, state, _ = saved.load_latest(like, check)
  return (state, rounds) if last else (None, [])
