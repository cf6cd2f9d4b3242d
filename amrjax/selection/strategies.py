"""Selection strategies by name: what each needs, how it scores, which end it keeps.

Every baseline of the DUSE paper (Sec. IV-B: Least confidence, Entropy, Margin, DeepFool,
Forgetting, Glister, GraNd, Herding) and of the FoQuS paper (Sec. IV-A: Uniform, Cal, CD,
Forgetting, GraNd, Herding, k-Center Greedy, Least confidence, Entropy, Margin), plus EL2N,
FoQuS and DUSE, is a :class:`Strategy` in one registry: its name, what it needs from a
trained scorer, its direction (largest, smallest, greedy, random, tiered, or DUSE's rounds),
its score or greedy pass over a :class:`Context`, its options and their defaults, and the
paper it follows. Running one is the protocols' business: ``amrjax.protocols.one_shot`` (train a
scorer, score, select) and ``amrjax.protocols.expansion`` (DUSE's rounds).

``needs`` names what a strategy requires from the trained scorer: ``'softmax'``,
``'embedding'``, ``'gradient'`` (per-example gradients or the last layer),
``'input_gradient'`` (DeepFool), ``'trajectory'`` (training dynamics); an empty set means
no model at all (Uniform).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from amrjax import parallel
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.registry import Registry
from amrjax.scoring import boundary, dynamics as dynamics_lib, features, geometry, gradients
from amrjax.scoring import uncertainty
from amrjax.scoring.glister import glister as glister_greedy
from amrjax.selection import select

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
                  'rounds, the scorer retrained on the growing D_T (amrjax.protocols.expansion)'))

DUSE_BASELINES = ('least_confidence', 'entropy', 'margin', 'deepfool', 'forgetting',
                  'glister', 'grand', 'herding')
"""DUSE Table I/II rows (Sec. IV-B), in the paper's order."""

FOQUS_BASELINES = ('uniform', 'cal', 'cd', 'forgetting', 'grand', 'herding', 'kcenter',
                   'least_confidence', 'entropy', 'margin')
"""FoQuS Table I/II baselines (Sec. IV-A), in the paper's order."""


# --- options of a strategy -----------------------------------------------------------------

def resolve_options(strategy: Strategy, options: Mapping[str, Any] | None) -> dict:
  """The strategy's defaults with ``options`` on top; unknown options are an error."""
  options = dict(options or {})
  unknown = set(options) - set(strategy.defaults)
  if unknown:
    allowed = ', '.join(strategy.defaults) or 'none'
    raise ConfigError(f'{strategy.name} has no option(s) {", ".join(sorted(unknown))}; '
                      f'its options: {allowed}')
  return {**strategy.defaults, **options}


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
