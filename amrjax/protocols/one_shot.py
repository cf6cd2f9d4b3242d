"""The one-shot selection protocol of the papers' baselines (DeepCore's): train a scorer on
the starting set for the selection epochs, score the pool (or run the greedy pass over it),
select the budget.

:func:`select_one_shot` is :func:`train_scorer` followed by :func:`select_with`; called
apart, one trained scorer serves any number of strategies and budgets
(``amrjax.protocols.coreset``). The strategies themselves (what each needs, how it scores,
which end it keeps) are the registry in ``amrjax.selection.strategies``.

Two uses share the protocol:
- expansion (DUSE): the starting set is D_T and the pool is D_A; greedy methods treat D_T
  as already selected (k-Center/CD start from its points, Herding from its sum, Glister
  validates on it) and Cal finds neighbours in D_T;
- coreset (FoQuS): the pool *is* the starting set (same ids): the model trains on it,
  training dynamics are recorded at each presentation, Cal's neighbours exclude the sample.

When the pool is not the training set, training-dynamics methods (Forgetting, FoQuS)
record the pool's eval-mode correctness and loss after every selection epoch: the pool is
never presented, so this is the nearest equivalent, and it is our choice (the DUSE paper
does not say how it ran Forgetting on D_A). DUSE itself (active-learning rounds) runs
through ``amrjax.protocols.expansion.expand``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from amrjax import parallel
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.protocols import expansion
from amrjax.scoring import dynamics as dynamics_lib, pools
from amrjax.seeding import derive_seed
from amrjax.selection import select, strategies
from amrjax.train import TrainConfig, fit, fit_recording
from amrjax.train.loop import loss_and_correct_fn


@dataclasses.dataclass(frozen=True)
class Selection:
  """What :func:`select_one_shot` chose: sorted pool positions, the scores it ranked
  (None for greedy and random methods), the scorer's training history, the time taken."""

  positions: np.ndarray
  scores: np.ndarray | None
  history: list[dict]
  seconds: float




_update_dynamics = jax.jit(dynamics_lib.update)


def _trajectory_of_pool(model, start, pool, train, seed, batch_size):
  """Trains on ``start`` epoch by epoch, recording the pool's eval-mode dynamics."""
  state, history = None, []
  trajectory = dynamics_lib.init(len(pool))
  everyone = jnp.arange(len(pool))
  ones = jnp.ones(len(pool), bool)
  for epoch in range(train.epochs):
    state, h = fit(model, start, dataclasses.replace(train, epochs=1),
                   seed=seed if epoch == 0 else derive_seed(seed, 'epoch', epoch), state=state)
    history.extend({**r, 'epoch': epoch + 1} for r in h)
    out = parallel.map_pool(loss_and_correct_fn(model), state.variables, pool,
                            batch_size=batch_size, with_labels=True)
    trajectory = _update_dynamics(trajectory, everyone, jnp.asarray(out['correct']),
                        jnp.asarray(out['loss']), ones)
  return state, history, trajectory






@dataclasses.dataclass(frozen=True)
class TrainedScorer:
  """A scorer trained once on the starting set, and its outputs on both sets.

  Any number of strategies (and budgets) select from one :class:`TrainedScorer`
  (:func:`select_with`): the coreset experiment trains one per model and seed for all of
  its methods and rates. ``needs`` says which outputs were computed.
  """

  model: nn.Module
  variables: Any
  start: SignalPool
  pool: SignalPool
  pool_is_start: bool
  needs: frozenset[str]
  pool_out: Mapping[str, np.ndarray]
  start_out: Mapping[str, np.ndarray]
  trajectory: dynamics_lib.Dynamics | None
  history: list[dict]
  seconds: float
  other_variables: tuple = ()


def train_scorer(model: nn.Module, start: SignalPool, pool: SignalPool, *,
                 needs: frozenset[str] | set[str], train: TrainConfig, seed: int,
                 batch_size: int = 1024,
                 checkpoint: Path | str | None = None, runs: int = 1) -> TrainedScorer:
  """Trains ``model`` on ``start`` and computes what ``needs`` asks for on ``pool``.

  The pool *is* the starting set (coreset selection) when both hold the same ids; then
  training dynamics are recorded at every presentation (``fit_recording``), else after
  every epoch on the pool in eval mode (see the module docstring). Softmax and embedding
  outputs are computed for the pool (and for the starting set when it differs).
  ``checkpoint``: a folder for the training's epoch checkpoints (``fit``'s); not with
  dynamics recorded on a pool other than the starting set. ``runs`` > 1 also trains
  ``runs - 1`` further scorers from their own initialisations (seeds
  ``derive_seed(seed, 'scorer-run', i)``), kept as ``other_variables`` for strategies that
  average over runs (GraNd).
  """
  t0 = time.time()
  needs = frozenset(needs)
  pool_is_start = len(pool) == len(start) and np.array_equal(pool.ids, start.ids)
  trajectory = None
  if 'trajectory' in needs and pool_is_start:
    state, history, trajectory = fit_recording(model, pool, train, seed=seed,
                                               checkpoint=checkpoint)
  elif 'trajectory' in needs:
    if checkpoint is not None:
      raise ConfigError('epoch checkpoints do not cover dynamics recorded on a separate pool; '
                        'pass checkpoint=None')
    state, history, trajectory = _trajectory_of_pool(model, start, pool, train, seed,
                                                     batch_size)
  else:
    state, history = fit(model, start, train, seed=seed, checkpoint=checkpoint)
  variables = state.variables
  other_variables = tuple(
      fit(model, start, train, seed=derive_seed(seed, 'scorer-run', i))[0].variables
      for i in range(1, runs))
  pool_out, start_out = {}, {}
  if needs & {'softmax', 'embedding'}:
    pool_out = pools.pool_outputs(model, variables, pool, batch_size=batch_size)
    if not pool_is_start:
      start_out = pools.pool_outputs(model, variables, start, batch_size=batch_size)
  return TrainedScorer(model, variables, start, pool, pool_is_start, needs, pool_out,
                       start_out, trajectory, history, time.time() - t0, other_variables)


def _check_budget(budget: int, pool: SignalPool, quotas: np.ndarray | None) -> None:
  if not 0 < budget <= len(pool):
    raise ConfigError(f'cannot select {budget} of the {len(pool)} pool samples')
  if quotas is not None and int(np.sum(quotas)) != budget:
    raise ConfigError(f'class quotas sum to {int(np.sum(quotas))}, not the budget {budget}')


def select_with(strategy: str | strategies.Strategy, scorer: TrainedScorer, budget: int, *,
                seed: int, quotas: np.ndarray | None = None,
                options: Mapping[str, Any] | None = None, batch_size: int = 1024) -> Selection:
  """Selects ``budget`` pool samples with ``strategy`` from an already trained scorer.

  Same arguments as :func:`select_one_shot` (``seed`` drives the random draws: ties,
  tiers, the first k-center point); the scorer must have been trained with every output
  the strategy needs. Active-learning rounds (DUSE) retrain and cannot use it. The
  selection's ``seconds`` are those of the selection alone.
  """
  t0 = time.time()
  strategy = strategies.get(strategy) if isinstance(strategy, str) else strategy
  options = strategies.resolve_options(strategy, options)
  _check_budget(budget, scorer.pool, quotas)
  rng = np.random.default_rng(derive_seed(seed, 'select', strategy.name))
  pool = scorer.pool
  if strategy.direction == strategies.RANDOM:
    positions = (select.uniform(len(pool), budget, rng) if quotas is None
                 else select.class_balanced_uniform(pool.y, quotas, rng))
    return Selection(positions, None, [], time.time() - t0)
  if strategy.direction == strategies.ROUNDS:
    raise ConfigError(f'{strategy.name} retrains its scorer over rounds; use '
                      'select_one_shot or amrjax.protocols.expansion.expand')
  missing = strategies.required_outputs(strategy, options) - scorer.needs
  if missing:
    raise ConfigError(f'{strategy.name} needs {", ".join(sorted(missing))} from the scorer; '
                      'train it with train_scorer(needs=...) including them')
  runs = strategies.scorer_runs(strategy, options)
  if runs > 1 + len(scorer.other_variables):
    raise ConfigError(f'{strategy.name} averages over {runs} scorers but only '
                      f'{1 + len(scorer.other_variables)} were trained; pass '
                      f'train_scorer(runs={runs})')
  if strategy.name == 'foqus' and int(np.min(scorer.trajectory.presentations)) < 2:
    raise ConfigError('FoQuS needs at least 2 presentations of every sample (T >= 2 '
                      'selection epochs)')
  ctx = strategies.Context(scorer.model, scorer.variables, scorer.start, pool, scorer.pool_is_start,
                scorer.pool_out, scorer.start_out, scorer.trajectory, options,
                min(batch_size, strategy.max_batch or batch_size), rng,
                scorer.other_variables)

  scores = None
  if strategy.direction == strategies.GREEDY:
    run = lambda members, k: strategy.greedy(ctx, members, k)  # noqa: E731
    positions = (np.sort(run(np.arange(len(pool)), budget)) if quotas is None
                 else select.per_class(pool.y, quotas, run))
  else:
    scores = np.asarray(strategy.score(ctx), np.float64)
    if strategy.direction == strategies.TIERED:
      pick = lambda members, k: members[select.tiered(  # noqa: E731
          scores[members], k, rng, shares=options['shares'])]
      positions = (pick(np.arange(len(pool)), budget) if quotas is None
                   else select.per_class(pool.y, quotas, pick))
    else:
      largest = strategy.direction == strategies.LARGEST
      positions = (
          np.sort(select.top_k(scores, budget, largest=largest, tie_rng=rng)) if quotas is None
          else select.class_balanced_top_k(scores, pool.y, quotas, largest=largest,
                                           tie_rng=rng))
  if len(np.unique(positions)) != budget:
    raise RuntimeError(f'{strategy.name} returned {len(np.unique(positions))} distinct '
                       f'samples for a budget of {budget}')
  return Selection(np.sort(positions).astype(np.int64), scores, [], time.time() - t0)


def select_one_shot(strategy: str | strategies.Strategy, model: nn.Module | None, start: SignalPool,
                    pool: SignalPool, budget: int, *, train: TrainConfig, seed: int,
                    quotas: np.ndarray | None = None,
                    options: Mapping[str, Any] | None = None,
                    batch_size: int = 1024) -> Selection:
  """The baselines' one-shot protocol: train on ``start``, score ``pool``, select.

  Args:
    strategy: a registered name or a :class:`amrjax.selection.strategies.Strategy`.
    model: the scorer (DUSE: the 2D-CNN); unused by Uniform.
    start: the labelled starting set the scorer trains on (DUSE: D_T). Pass the pool
      itself for coreset selection.
    pool: the candidates (DUSE: D_A).
    budget: how many to select.
    train: scorer training (epochs = the selection epochs).
    seed: scorer initialisation, shuffling, dropout and random draws.
    quotas: (C,) per-class counts summing to ``budget`` (class-balanced selection), or
      None to select over the whole pool (class-imbalance setting).
    options: overrides of the strategy's ``defaults``.
    batch_size: pool-scoring batch size.

  Returns:
    A :class:`Selection` of sorted positions into ``pool``.
  """
  t0 = time.time()
  strategy = strategies.get(strategy) if isinstance(strategy, str) else strategy
  options = strategies.resolve_options(strategy, options)
  _check_budget(budget, pool, quotas)
  if strategy.direction != strategies.RANDOM:
    if model is None:
      raise ConfigError(f'{strategy.name} needs a scorer model')
    min_epochs = 2 if strategy.name == 'foqus' else 1
    if train.epochs < min_epochs:
      raise ConfigError(f'{strategy.name} needs at least {min_epochs} selection epoch(s), '
                        f'got {train.epochs}')
  if strategy.direction == strategies.ROUNDS:
    return _expand(strategy, model, start, pool, budget, train, seed, quotas, options,
                   batch_size, t0)
  if strategy.direction == strategies.RANDOM:
    scorer = TrainedScorer(None, None, start, pool, False, frozenset(), {}, {}, None, [], 0.0)
  else:
    scorer = train_scorer(model, start, pool, needs=strategies.required_outputs(strategy, options),
                          train=train, seed=seed, batch_size=batch_size,
                          runs=strategies.scorer_runs(strategy, options))
  selection = select_with(strategy, scorer, budget, seed=seed, quotas=quotas,
                          options=options, batch_size=batch_size)
  return dataclasses.replace(selection, history=scorer.history, seconds=time.time() - t0)


def _expand(strategy, model, start, pool, budget, train, seed, quotas, options, batch_size,
            t0) -> Selection:
  """DUSE through :func:`amrjax.protocols.expansion.expand`, as a one-call selection."""
  setting = expansion.IMBALANCE if quotas is None else expansion.BALANCE
  config = expansion.ExpansionConfig(budget=budget, rounds=options['rounds'], setting=setting,
                                     train=train, warm_start=options['warm_start'],
                                     score_batch_size=batch_size)
  history: list[dict] = []
  result = expansion.expand(model, start, pool, config, seed=seed, quotas=quotas,
                            on_epoch=history.append)
  return Selection(np.sort(pool.positions_of(result.selected_ids)), None, history,
                   time.time() - t0)
