"""Coreset selection from the full training set: FoQuS and its 10 baselines, one protocol.

The protocol (FoQuS Sec. III, Algorithm 1, and Sec. IV-A):

1. train the selection model on the full training set D for T epochs, recording every
   sample's correctness c_t and cross-entropy at each presentation (Eq. 2-3, 6);
2. score every sample: FoQuS Eq. 4-8, or the baseline's own score from the same model
   (Forgetting from the same recorded dynamics; Least confidence, Entropy, Margin, Cal,
   CD from its softmax outputs; GraNd from its per-example gradients; Herding and
   k-Center Greedy from its embeddings);
3. select a class-balanced coreset of round(rate N) samples ("all coresets are
   class-balanced, i.e., the number of samples in each class is the same", Sec. IV-B):
   FoQuS cuts its three tiers within each class and draws the tier shares
   (``amrjax.selection.select.tiered``); scored baselines keep their best end per class; greedy
   baselines run per class; Uniform draws per class.

One trained scorer serves every method and every rate of a (model, seed): DeepCore trains
one per method, but the trainings are identical (same data, initialisation and seed) and
recording the dynamics does not change the training (``amrjax.train.fit_recording``), so
sharing it removes ten redundant trainings and the methods differ only in how they select.

A method is a strategy name, optionally with FoQuS score components for the Table V
ablation: ``'foqus:forgetting+quality'`` keeps the forgetting and quality terms of Eq. 8.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import numpy as np

from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.protocols import one_shot
from amrjax.scoring.dynamics import FOQUS_COMPONENTS
from amrjax.selection import select, strategies
from amrjax.train import TrainConfig

CORESET_METHODS = strategies.FOQUS_BASELINES + ('foqus',)
"""FoQuS Tables I/II rows: the 10 baselines in the paper's order, then FoQuS."""

_COMPONENT_LABELS = {'forgetting': 'Forgetting', 'persistent': 'Persistent error',
                     'quality': 'Quality'}


@dataclasses.dataclass(frozen=True)
class Method:
  """A row of the coreset tables: a strategy and the options that make it this row.

  ``name`` is the spec it was parsed from (canonical), e.g. ``'margin'`` or
  ``'foqus:forgetting+quality'``.
  """

  name: str
  strategy: str
  options: Mapping[str, Any]
  label: str


def parse_method(spec: str) -> Method:
  """``'margin'``, ``'k-center'``, ``'foqus'`` or ``'foqus:<a>+<b>'`` -> a :class:`Method`.

  The components after ``foqus:`` are a non-empty subset of forgetting, persistent and
  quality (Eq. 8 terms), given in any order.
  """
  base, _, components = spec.strip().lower().partition(':')
  strategy = strategies.get(base)
  if strategy.direction == strategies.ROUNDS:
    raise ConfigError(f'{strategy.name} expands a target set over rounds; it is not a '
                      'coreset method')
  if not components:
    return Method(strategy.name, strategy.name, {}, strategy.label)
  if strategy.name != 'foqus':
    raise ConfigError(f'only FoQuS takes score components (got {spec!r}); write e.g. '
                      'foqus:forgetting+quality')
  parts = [c.strip() for c in components.split('+')]
  unknown = [c for c in parts if c not in FOQUS_COMPONENTS]
  if unknown or len(set(parts)) != len(parts):
    raise ConfigError(f'FoQuS components must be distinct names among '
                      f'{", ".join(FOQUS_COMPONENTS)}; got {components!r}')
  ordered = tuple(c for c in FOQUS_COMPONENTS if c in parts)
  if ordered == FOQUS_COMPONENTS:
    return Method('foqus', 'foqus', {}, strategy.label)
  label = 'FoQuS: ' + ' + '.join(_COMPONENT_LABELS[c] for c in ordered)
  return Method(f'foqus:{"+".join(ordered)}', 'foqus', {'components': ordered}, label)


def ablation_methods() -> tuple[str, ...]:
  """FoQuS Table V: each metric alone, each pair, then all three (= FoQuS)."""
  combos = [c for r in (1, 2, 3) for c in itertools.combinations(FOQUS_COMPONENTS, r)]
  return tuple(parse_method('foqus:' + '+'.join(c)).name for c in combos)


def coreset_budget(rate: float, n: int, num_classes: int) -> int:
  """round(rate n), the coreset size at ``rate`` (FoQuS Eq. 1: k = |S| / N)."""
  select.check_rate(rate, 'coreset')
  budget = int(round(rate * n))
  if budget < num_classes:
    raise ConfigError(f'a {rate:.2%} coreset of {n:,} training vectors holds {budget}, '
                      f'fewer than one per class ({num_classes}); use more data or a larger '
                      'rate')
  return budget


def class_quotas(pool: SignalPool, budget: int) -> np.ndarray:
  """Equal per-class counts summing to ``budget`` (largest remainder to the lower
  classes); a class with too few samples gives all it has and the rest is shared."""
  return select.equal_shares(budget, pool.num_classes, pool.class_counts())


def needs_of(methods: Sequence[Method],
             options: Mapping[str, Mapping[str, Any]] | None = None) -> frozenset[str]:
  """Everything the scorer must provide for ``methods`` (with per-strategy ``options``)."""
  needs: set[str] = set()
  for method in methods:
    strategy = strategies.get(method.strategy)
    resolved = strategies.resolve_options(strategy, {**(options or {}).get(method.strategy, {}),
                                                     **method.options})
    needs |= strategies.required_outputs(strategy, resolved)
  return frozenset(needs)


def select_coresets(model: nn.Module | None, train: SignalPool, methods: Sequence[str | Method],
                    rates: Sequence[float], *, train_config: TrainConfig, seed: int,
                    class_balanced: bool = True,
                    options: Mapping[str, Mapping[str, Any]] | None = None,
                    batch_size: int = 1024,
                    on_selected: Callable[[Method, float, one_shot.Selection], None]
                    | None = None,
                    checkpoint: Path | str | None = None,
                    ) -> tuple[one_shot.TrainedScorer | None,
                               dict[tuple[str, float], one_shot.Selection]]:
  """Coresets of ``train`` for every method and rate, from one trained scorer.

  Args:
    model: the selection model (FoQuS: CNN1D or CNN2D); None when every method is Uniform.
    train: the full training set D.
    methods: method specs (see :func:`parse_method`) or parsed :class:`Method` s.
    rates: coreset rates |S| / N.
    train_config: the scorer's training; ``epochs`` is T (FoQuS needs T >= 2).
    seed: the scorer's initialisation, shuffling and dropout, and every random draw.
    class_balanced: equal class counts (the FoQuS protocol); False selects over the whole
      training set.
    options: per-strategy option overrides, e.g. ``{'foqus': {'shares': (0.6, 0.3, 0.1)}}``.
    batch_size: scoring batch size.
    on_selected: called with each (method, rate, selection) as it is made.
    checkpoint: a folder for the scorer training's epoch checkpoints (``fit``'s
      ``checkpoint``: the state and the recorded dynamics); a finished scorer found there
      is restored instead of retrained.

  Returns:
    The trained scorer (None without a model-based method) and ``{(method name, rate):
    Selection}`` of sorted positions into ``train``.
  """
  parsed = [m if isinstance(m, Method) else parse_method(m) for m in methods]
  needs = needs_of(parsed, options)
  if needs:
    if model is None:
      raise ConfigError('these coreset methods need a selection model')
    if 'trajectory' in needs and train_config.epochs < 2:
      raise ConfigError(f'FoQuS and Forgetting need at least 2 selection epochs, got '
                        f'{train_config.epochs}')
    scorer = one_shot.train_scorer(model, train, train, needs=needs, train=train_config,
                                   seed=seed, batch_size=batch_size, checkpoint=checkpoint)
  else:  # Uniform alone: nothing to train
    scorer = one_shot.TrainedScorer(None, None, train, train, True, frozenset(), {}, {},
                                    None, [], 0.0)
  selections = {}
  for rate in rates:
    budget = coreset_budget(rate, len(train), train.num_classes)
    quotas = class_quotas(train, budget) if class_balanced else None
    for method in parsed:
      opts = {**(options or {}).get(method.strategy, {}), **method.options}
      selection = one_shot.select_with(method.strategy, scorer, budget,
                                       seed=seed, quotas=quotas, options=opts,
                                       batch_size=batch_size)
      selections[(method.name, rate)] = selection
      if on_selected is not None:
        on_selected(method, rate, selection)
  return (scorer if needs else None), selections
