"""Selection strategies by name: what each needs, how it scores, which end it keeps.

Every baseline of the DUSE paper (Sec. IV-B: Least confidence, Entropy, Margin, DeepFool,
Forgetting, Glister, GraNd, Herding) and of the FoQuS paper (Sec. IV-A: Uniform, Cal, CD,
Forgetting, GraNd, Herding, k-Center Greedy, Least confidence, Entropy, Margin), plus EL2N,
FoQuS and DUSE, is a :class:`Strategy` in one registry. :func:`select_one_shot` runs the
one-shot protocol the papers use for the baselines (DeepCore's): train the scorer model on
the starting set for the selection epochs, score the pool (or run the greedy pass over it),
select the budget. It is :func:`train_scorer` followed by :func:`select_with`; called apart,
one trained scorer serves any number of strategies and budgets (``amrjax.coreset``).

Two uses share the protocol:
- expansion (DUSE): the starting set is D_T and the pool is D_A; greedy methods treat D_T
  as already selected (k-Center/CD start from its points, Herding from its sum, Glister
  validates on it) and Cal finds neighbours in D_T;
- coreset (FoQuS): the pool *is* the starting set (same ids): the model trains on it,
  training dynamics are recorded at each presentation, Cal's neighbours exclude the sample.

When the pool is not the training set, training-dynamics methods (Forgetting, FoQuS)
record the pool's eval-mode correctness and loss after every selection epoch: the pool is
never presented, so this is the nearest equivalent, and it is our choice (the DUSE paper
does not say how it ran Forgetting on D_A).

``needs`` names what a strategy requires from the trained scorer: ``'softmax'``,
``'embedding'``, ``'gradient'`` (per-example gradients or the last layer),
``'input_gradient'`` (DeepFool), ``'trajectory'`` (training dynamics); an empty set means
no model at all (Uniform).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from amrjax import expansion, parallel, select
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.registry import Registry
from amrjax.scoring import boundary, dynamics as dynamics_lib, features, geometry, gradients
from amrjax.scoring import uncertainty
from amrjax.scoring.glister import glister as glister_greedy
from amrjax.seeding import derive_seed
from amrjax.train import TrainConfig, fit, fit_recording
from amrjax.train.loop import loss_and_correct_fn

LARGEST, SMALLEST, GREEDY, RANDOM, TIERED = 'largest', 'smallest', 'greedy', 'random', 'tiered'
ROUNDS = 'rounds'  # DUSE: the smallest margins, over active-learning rounds


@dataclasses.dataclass(frozen=True)
class Context:
  """What a strategy can use: the trained scorer, both sets and their outputs.

  ``pool_out`` / ``start_out`` hold ``'log_probs'`` (n, C) and ``'embedding'`` (n, D) when
  the strategy needs softmax or embeddings; ``trajectory`` holds the pool's dynamics;
  ``other_variables`` the variables of further independently trained scorers (GraNd's
  ``runs``).
  """

  model: nn.Module | None
  variables: Any
  start: SignalPool
  pool: SignalPool
  pool_is_start: bool
  pool_out: Mapping[str, np.ndarray]
  start_out: Mapping[str, np.ndarray]
  trajectory: dynamics_lib.Dynamics | None
  options: Mapping[str, Any]
  batch_size: int
  rng: np.random.Generator = dataclasses.field(default_factory=np.random.default_rng)
  other_variables: tuple = ()


@dataclasses.dataclass(frozen=True)
class Strategy:
  """One selection method.

  Attributes:
    name: registry key.
    label: the row name the papers' tables use.
    needs: what it needs from the trained scorer (see the module docstring).
    direction: ``'largest'`` / ``'smallest'`` score kept, ``'greedy'`` (the method orders
      the pool itself), ``'random'``, ``'tiered'`` (FoQuS tiers over the score) or
      ``'rounds'`` (DUSE: smallest scores, over active-learning rounds).
    score: ``score(ctx) -> (n,)`` for scored methods.
    greedy: ``greedy(ctx, members, k) -> positions`` for greedy methods: ``k`` positions
      of the pool chosen among ``members`` (ascending pool positions).
    defaults: the method's options and their default values.
    reference: the paper and equation.
    max_batch: cap on the pool-scoring batch for methods whose per-example cost is a
      gradient: vmapped per-example gradients hold B copies of the parameters (GraNd) or
      B x C input gradients (DeepFool), and a batch padded far past a small pool wastes
      that work.
  """

  name: str
  label: str
  needs: frozenset[str]
  direction: str
  score: Callable[[Context], np.ndarray] | None = None
  greedy: Callable[[Context, np.ndarray, int], np.ndarray] | None = None
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  reference: str = ''
  max_batch: int | None = None


_REGISTRY: Registry[Strategy] = Registry('selection strategy')


def register(strategy: Strategy, aliases: tuple[str, ...] = ()) -> Strategy:
  """Adds ``strategy`` under its name (and ``aliases``); returns it."""
  _REGISTRY.register(strategy.name, strategy, aliases)
  return strategy


def get(name: str) -> Strategy:
  """The strategy registered as ``name`` (or an alias)."""
  return _REGISTRY.get(name)


def names() -> tuple[str, ...]:
  """Registered strategy names, in registration order."""
  return _REGISTRY.names()


# --- scored methods -----------------------------------------------------------------------

def _probs(ctx: Context) -> jax.Array:
  return jnp.exp(jnp.asarray(ctx.pool_out['log_probs']))


def _softmax_score(fn: Callable[[jax.Array], jax.Array]) -> Callable[[Context], np.ndarray]:
  return lambda ctx: np.asarray(jax.jit(fn)(_probs(ctx)))


def _grand(ctx: Context) -> np.ndarray:
  """DUSE Eq. 15: the per-sample gradient norm, averaged over the ``runs`` scorers (the
  expectation over independently initialised training runs; ``runs=1`` scores with one)."""
  if ctx.options['last_layer']:
    return np.asarray(gradients.grand_last_layer(
        jnp.asarray(ctx.pool_out['embedding']), _probs(ctx), jnp.asarray(ctx.pool.y)))
  runs = (ctx.variables,) + tuple(ctx.other_variables)[:ctx.options['runs'] - 1]
  return np.mean([parallel.map_pool(gradients.grand_scorer(ctx.model), variables, ctx.pool,
                                    batch_size=ctx.batch_size, with_labels=True)
                  for variables in runs], axis=0)


def _deepfool(ctx: Context) -> np.ndarray:
  o = ctx.options
  return parallel.map_pool(boundary.deepfool_scorer(ctx.model, o['max_iter'], o['overshoot'],
                                                    o['num_candidates']),
                           ctx.variables, ctx.pool, batch_size=ctx.batch_size)


def _el2n(ctx: Context) -> np.ndarray:
  return np.asarray(uncertainty.el2n(_probs(ctx), jnp.asarray(ctx.pool.y)))


def _forgetting(ctx: Context) -> np.ndarray:
  return np.asarray(dynamics_lib.forgetting_counts(ctx.trajectory,
                                                   ctx.options['never_learned']))


def _foqus(ctx: Context) -> np.ndarray:
  components = ctx.options['components']
  if isinstance(components, str):
    components = tuple(c.strip() for c in components.split('+'))
  try:
    return np.asarray(dynamics_lib.foqus_score(ctx.trajectory, ctx.options['beta'],
                                               tuple(components)))
  except ValueError as e:
    raise ConfigError(str(e)) from None


def _labelled(ctx: Context) -> tuple[Mapping[str, np.ndarray], np.ndarray]:
  """Outputs and labels of the labelled reference set: the start set, or the pool itself
  in coreset mode (Cal's neighbours, Glister's validation set)."""
  if ctx.pool_is_start:
    return ctx.pool_out, ctx.pool.y
  return ctx.start_out, ctx.start.y


def _cal(ctx: Context) -> np.ndarray:
  ref, _ = _labelled(ctx)
  return np.asarray(geometry.cal(
      jnp.asarray(ctx.pool_out['embedding']), jnp.asarray(ctx.pool_out['log_probs']),
      jnp.asarray(ref['embedding']), jnp.asarray(ref['log_probs']),
      k=min(ctx.options['k'], len(ref['embedding']) - int(ctx.pool_is_start)),
      exclude_self=ctx.pool_is_start))


# --- greedy methods -----------------------------------------------------------------------

def _with_start(ctx: Context, members: np.ndarray, key: str
                ) -> tuple[np.ndarray, np.ndarray, int]:
  """Rows for a greedy pass: the start set's rows of the members' classes (already
  selected) followed by the members; returns (rows, initial mask, offset)."""
  pool_rows = ctx.pool_out[key][members]
  if ctx.pool_is_start:
    return pool_rows, np.zeros(len(members), bool), 0
  classes = np.unique(ctx.pool.y[members])
  start_rows = ctx.start_out[key][np.isin(ctx.start.y, classes)]
  rows = np.concatenate([start_rows, pool_rows])
  mask = np.arange(len(rows)) < len(start_rows)
  return rows, mask, len(start_rows)


def _greedy_geometry(method: Callable, key: str, *, takes_first: bool) -> Callable:
  """A greedy pass over the members, seeded by the start set's rows of their classes; with
  no start rows, farthest-first methods begin at a random member (``ctx.rng``)."""

  def run(ctx: Context, members: np.ndarray, k: int) -> np.ndarray:
    rows, mask, offset = _with_start(ctx, members, key)
    if mask.any():
      kwargs = {'initial_mask': jnp.asarray(mask)}
    else:
      kwargs = {'first': int(ctx.rng.integers(len(members)))} if takes_first else {}
    picked = np.asarray(method(jnp.asarray(rows), k, **kwargs)) - offset
    return members[picked]

  return run


def _glister(ctx: Context, members: np.ndarray, k: int) -> np.ndarray:
  """Glister over ``members``, validated on the start set's samples of the members'
  classes (all classes in the imbalance setting; class c alone when selecting per class,
  as DeepCore's balanced mode does)."""
  kernel, bias = features.head_params(ctx.variables)
  val, val_y = _labelled(ctx)
  val_rows = np.isin(val_y, np.unique(ctx.pool.y[members]))
  if not val_rows.any():
    raise ConfigError('Glister needs starting-set samples of the classes it selects from; '
                      'the starting set has none of them')
  picked = glister_greedy(
      jnp.asarray(ctx.pool_out['embedding'][members]), jnp.asarray(ctx.pool.y[members]),
      jnp.asarray(val['embedding'][val_rows]), jnp.asarray(val_y[val_rows]), kernel, bias, k,
      eta=ctx.options['eta'])
  return members[np.asarray(picked)]


register(Strategy('uniform', 'Uniform', frozenset(), RANDOM,
                  reference='uniform sampling without replacement'), aliases=('random',))
register(Strategy('least_confidence', 'Least confidence', frozenset({'softmax'}), LARGEST,
                  score=_softmax_score(uncertainty.least_confidence),
                  reference='1 - max p (DUSE Sec. IV-B; Settles 2009)'),
         aliases=('leastconfidence', 'lc'))
register(Strategy('entropy', 'Entropy', frozenset({'softmax'}), LARGEST,
                  score=_softmax_score(uncertainty.entropy), reference='DUSE Eq. 13'))
register(Strategy('margin', 'Margin', frozenset({'softmax'}), SMALLEST,
                  score=_softmax_score(uncertainty.margin),
                  reference='p1 - p2, smallest kept (DUSE Eq. 7; Sec. IV-B scores it as '
                  '1 - (p1 - p2), largest kept: the same order)'))
register(Strategy('deepfool', 'DeepFool', frozenset({'input_gradient'}), SMALLEST,
                  score=_deepfool,
                  defaults={'max_iter': 50, 'overshoot': 0.02, 'num_candidates': None},
                  reference='Ducoffe & Precioso 2018; max_iter 50 as DeepCore',
                  max_batch=64))
register(Strategy('forgetting', 'Forgetting', frozenset({'trajectory'}), LARGEST,
                  score=_forgetting, defaults={'never_learned': None},
                  reference='Toneva et al. 2019; never-learned = T presentations'))
register(Strategy('glister', 'Glister', frozenset({'embedding'}), GREEDY, greedy=_glister,
                  defaults={'eta': 0.1},
                  reference='Killamsetty et al. 2021 (DUSE Eq. 14), last layer, one-step '
                  'Taylor update; validation = the starting set'))
register(Strategy('grand', 'GraNd', frozenset({'gradient'}), LARGEST, score=_grand,
                  defaults={'last_layer': False, 'runs': 1},
                  reference='Paul et al. 2021 (DUSE Eq. 15); runs: the norm averaged over '
                  'that many independently initialised scorers (1: one scorer)',
                  max_batch=32))
register(Strategy('el2n', 'EL2N', frozenset({'softmax'}), LARGEST, score=_el2n,
                  reference='||p - onehot(y)||_2, Paul et al. 2021'))
register(Strategy('herding', 'Herding', frozenset({'embedding'}), GREEDY,
                  greedy=_greedy_geometry(geometry.herding, 'embedding', takes_first=False),
                  reference='Welling 2009 / Chen et al. 2010, argmin form'), aliases=('herd',))
register(Strategy('kcenter', 'k-Center Greedy', frozenset({'embedding'}), GREEDY,
                  greedy=_greedy_geometry(geometry.k_center_greedy, 'embedding',
                                          takes_first=True),
                  reference='Sener & Savarese 2018'),
         aliases=('k_center', 'kcentergreedy', 'k-center'))
register(Strategy('cal', 'Cal', frozenset({'embedding', 'softmax'}), LARGEST, score=_cal,
                  defaults={'k': 10},
                  reference='Margatina et al. 2021: mean symmetric KL to the k nearest '
                  'neighbours'))
register(Strategy('cd', 'CD', frozenset({'softmax'}), GREEDY,
                  greedy=_greedy_geometry(geometry.contextual_diversity, 'log_probs',
                                          takes_first=True),
                  reference='Agarwal et al. 2020: k-center over softmax, symmetric KL'),
         aliases=('contextual_diversity',))
register(Strategy('foqus', 'FoQuS', frozenset({'trajectory'}), TIERED, score=_foqus,
                  defaults={'beta': 0.1, 'shares': select.DEFAULT_TIER_SHARES,
                            'components': dynamics_lib.FOQUS_COMPONENTS},
                  reference='FoQuS Eq. 4-8 and tiered sampling; with class quotas the tiers '
                  'are cut within each class; components (a subset of forgetting, '
                  'persistent, quality, or "a+b") gives the Table V ablation'))

register(Strategy('duse', 'DUSE', frozenset({'softmax'}), ROUNDS,
                  score=_softmax_score(uncertainty.margin),
                  defaults={'rounds': 5, 'warm_start': True},
                  reference='DUSE Algorithm 2: the smallest margins (Eq. 7, 10) over R '
                  'rounds, the scorer retrained on the growing D_T (amrjax.expansion)'))

DUSE_BASELINES = ('least_confidence', 'entropy', 'margin', 'deepfool', 'forgetting',
                  'glister', 'grand', 'herding')
"""DUSE Table I/II rows (Sec. IV-B), in the paper's order."""

FOQUS_BASELINES = ('uniform', 'cal', 'cd', 'forgetting', 'grand', 'herding', 'kcenter',
                   'least_confidence', 'entropy', 'margin')
"""FoQuS Table I/II baselines (Sec. IV-A), in the paper's order."""


# --- the one-shot protocol ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Selection:
  """What :func:`select_one_shot` chose: sorted pool positions, the scores it ranked
  (None for greedy and random methods), the scorer's training history, the time taken."""

  positions: np.ndarray
  scores: np.ndarray | None
  history: list[dict]
  seconds: float


def resolve_options(strategy: Strategy, options: Mapping[str, Any] | None) -> dict:
  """The strategy's defaults with ``options`` on top; unknown options are an error."""
  options = dict(options or {})
  unknown = set(options) - set(strategy.defaults)
  if unknown:
    allowed = ', '.join(strategy.defaults) or 'none'
    raise ConfigError(f'{strategy.name} has no option(s) {", ".join(sorted(unknown))}; '
                      f'its options: {allowed}')
  return {**strategy.defaults, **options}


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


def required_outputs(strategy: Strategy, options: Mapping[str, Any]) -> frozenset[str]:
  """What the trained scorer must provide for ``strategy`` with ``options``."""
  needs = set(strategy.needs)
  if strategy.name == 'grand' and options.get('last_layer'):
    needs |= {'embedding', 'softmax'}
  return frozenset(needs)


def scorer_runs(strategy: Strategy, options: Mapping[str, Any]) -> int:
  """How many independently trained scorers ``strategy`` averages over (GraNd's ``runs``)."""
  runs = options.get('runs', 1) if 'runs' in strategy.defaults else 1
  if not isinstance(runs, int) or runs < 1:
    raise ConfigError(f'{strategy.name}: runs must be a whole number of at least 1, got {runs!r}')
  if runs > 1 and options.get('last_layer'):
    raise ConfigError(f'{strategy.name}: runs > 1 averages full-gradient norms; it does not '
                      'combine with last_layer')
  return runs


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
    pool_out = features.pool_outputs(model, variables, pool, batch_size=batch_size)
    if not pool_is_start:
      start_out = features.pool_outputs(model, variables, start, batch_size=batch_size)
  return TrainedScorer(model, variables, start, pool, pool_is_start, needs, pool_out,
                       start_out, trajectory, history, time.time() - t0, other_variables)


def _check_budget(budget: int, pool: SignalPool, quotas: np.ndarray | None) -> None:
  if not 0 < budget <= len(pool):
    raise ConfigError(f'cannot select {budget} of the {len(pool)} pool samples')
  if quotas is not None and int(np.sum(quotas)) != budget:
    raise ConfigError(f'class quotas sum to {int(np.sum(quotas))}, not the budget {budget}')


def select_with(strategy: str | Strategy, scorer: TrainedScorer, budget: int, *, seed: int,
                quotas: np.ndarray | None = None, options: Mapping[str, Any] | None = None,
                batch_size: int = 1024) -> Selection:
  """Selects ``budget`` pool samples with ``strategy`` from an already trained scorer.

  Same arguments as :func:`select_one_shot` (``seed`` drives the random draws: ties,
  tiers, the first k-center point); the scorer must have been trained with every output
  the strategy needs. Active-learning rounds (DUSE) retrain and cannot use it. The
  selection's ``seconds`` are those of the selection alone.
  """
  t0 = time.time()
  strategy = get(strategy) if isinstance(strategy, str) else strategy
  options = resolve_options(strategy, options)
  _check_budget(budget, scorer.pool, quotas)
  rng = np.random.default_rng(derive_seed(seed, 'select', strategy.name))
  pool = scorer.pool
  if strategy.direction == RANDOM:
    positions = (select.uniform(len(pool), budget, rng) if quotas is None
                 else select.class_balanced_uniform(pool.y, quotas, rng))
    return Selection(positions, None, [], time.time() - t0)
  if strategy.direction == ROUNDS:
    raise ConfigError(f'{strategy.name} retrains its scorer over rounds; use '
                      'select_one_shot or amrjax.expansion.expand')
  missing = required_outputs(strategy, options) - scorer.needs
  if missing:
    raise ConfigError(f'{strategy.name} needs {", ".join(sorted(missing))} from the scorer; '
                      'train it with train_scorer(needs=...) including them')
  runs = scorer_runs(strategy, options)
  if runs > 1 + len(scorer.other_variables):
    raise ConfigError(f'{strategy.name} averages over {runs} scorers but only '
                      f'{1 + len(scorer.other_variables)} were trained; pass '
                      f'train_scorer(runs={runs})')
  if strategy.name == 'foqus' and int(np.min(scorer.trajectory.presentations)) < 2:
    raise ConfigError('FoQuS needs at least 2 presentations of every sample (T >= 2 '
                      'selection epochs)')
  ctx = Context(scorer.model, scorer.variables, scorer.start, pool, scorer.pool_is_start,
                scorer.pool_out, scorer.start_out, scorer.trajectory, options,
                min(batch_size, strategy.max_batch or batch_size), rng,
                scorer.other_variables)

  scores = None
  if strategy.direction == GREEDY:
    run = lambda members, k: strategy.greedy(ctx, members, k)  # noqa: E731
    positions = (np.sort(run(np.arange(len(pool)), budget)) if quotas is None
                 else select.per_class(pool.y, quotas, run))
  else:
    scores = np.asarray(strategy.score(ctx), np.float64)
    if strategy.direction == TIERED:
      pick = lambda members, k: members[select.tiered(  # noqa: E731
          scores[members], k, rng, shares=options['shares'])]
      positions = (pick(np.arange(len(pool)), budget) if quotas is None
                   else select.per_class(pool.y, quotas, pick))
    else:
      largest = strategy.direction == LARGEST
      positions = (
          np.sort(select.top_k(scores, budget, largest=largest, tie_rng=rng)) if quotas is None
          else select.class_balanced_top_k(scores, pool.y, quotas, largest=largest,
                                           tie_rng=rng))
  if len(np.unique(positions)) != budget:
    raise RuntimeError(f'{strategy.name} returned {len(np.unique(positions))} distinct '
                       f'samples for a budget of {budget}')
  return Selection(np.sort(positions).astype(np.int64), scores, [], time.time() - t0)


def select_one_shot(strategy: str | Strategy, model: nn.Module | None, start: SignalPool,
                    pool: SignalPool, budget: int, *, train: TrainConfig, seed: int,
                    quotas: np.ndarray | None = None,
                    options: Mapping[str, Any] | None = None,
                    batch_size: int = 1024) -> Selection:
  """The baselines' one-shot protocol: train on ``start``, score ``pool``, select.

  Args:
    strategy: a registered name or a :class:`Strategy`.
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
  strategy = get(strategy) if isinstance(strategy, str) else strategy
  options = resolve_options(strategy, options)
  _check_budget(budget, pool, quotas)
  if strategy.direction != RANDOM:
    if model is None:
      raise ConfigError(f'{strategy.name} needs a scorer model')
    min_epochs = 2 if strategy.name == 'foqus' else 1
    if train.epochs < min_epochs:
      raise ConfigError(f'{strategy.name} needs at least {min_epochs} selection epoch(s), '
                        f'got {train.epochs}')
  if strategy.direction == ROUNDS:
    return _expand(strategy, model, start, pool, budget, train, seed, quotas, options,
                   batch_size, t0)
  if strategy.direction == RANDOM:
    scorer = TrainedScorer(None, None, start, pool, False, frozenset(), {}, {}, None, [], 0.0)
  else:
    scorer = train_scorer(model, start, pool, needs=required_outputs(strategy, options),
                          train=train, seed=seed, batch_size=batch_size,
                          runs=scorer_runs(strategy, options))
  selection = select_with(strategy, scorer, budget, seed=seed, quotas=quotas,
                          options=options, batch_size=batch_size)
  return dataclasses.replace(selection, history=scorer.history, seconds=time.time() - t0)


def _expand(strategy, model, start, pool, budget, train, seed, quotas, options, batch_size,
            t0) -> Selection:
  """DUSE through :func:`amrjax.expansion.expand`, as a one-call selection."""
  setting = expansion.IMBALANCE
  if quotas is not None:
    balanced = select.balanced_quotas(start.class_counts(), budget, pool.class_counts())
    if not np.array_equal(quotas, balanced):
      raise ConfigError('DUSE balances classes by water-filling each round; pass '
                        'quotas=select.balanced_quotas(start counts, budget, pool counts)')
    setting = expansion.BALANCE
  config = expansion.ExpansionConfig(budget=budget, rounds=options['rounds'], setting=setting,
                                     train=train, warm_start=options['warm_start'],
                                     score_batch_size=batch_size)
  history: list[dict] = []
  result = expansion.expand(model, start, pool, config, seed=seed, on_epoch=history.append)
  return Selection(np.sort(pool.positions_of(result.selected_ids)), None, history,
                   time.time() - t0)
