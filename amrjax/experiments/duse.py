"""The DUSE experiment: target only, random expansion, the baselines, DUSE, over seeds.

For every seed the dataset is split (SNR > 10 dB, train/test per cell, D_T = class-balanced
1 % of train, D_A = the rest; the train/test split is fixed, D_T varies with the seed) and,
for every expansion rate r (budget K = round(r |train|)), four training sets are built and
each is used to train the evaluation model from scratch and test it:

- ``target``: D_T alone (the same for every rate);
- ``random``: D_T plus K uniformly random samples of D_A (class-balanced in the balance
  setting);
- ``duse_oneshot``: DUSE without active learning, one round with the whole budget (Table IV
  first row, = the Margin baseline);
- ``duse``: DUSE with R rounds (Algorithm 2);
- any strategy of ``amrjax.selection.strategies`` by name (``least_confidence``, ``deepfool``,
  ``glister``, ...): the DUSE paper's baselines (Tables I and II), selected one-shot at the
  same budget and setting by the same scorer trained on D_T for ``round_epochs``.

Method groups: ``default`` (the four above), ``baselines`` (DUSE's 8 baselines),
``table1`` (target, random, the 8 baselines, DUSE: the rows of Tables I/II).

All final trainings of a seed start from the same initialisation, so differences between
methods come from their training sets. With several ``eval_models`` every training set is
used to train and test each of them (cross-architecture evaluation, DUSE Table III;
``experiments/crossarch.py``) and the results hold one table per rate, methods by model.
``run`` writes ``config.json``, ``metrics.jsonl``, ``runs.jsonl`` (each test result as it
is produced), ``selected/*.npy``, ``rounds/*.json`` and ``results.json`` into the run
directory and returns the results.

Run again with the same run directory after a kill, it resumes: every (method, rate, seed,
evaluation model) already in ``runs.jsonl`` is read back instead of recomputed, a DUSE
expansion continues after its last complete round and a training after its last epoch
checkpoint (``checkpoints/``, orbax; removed as results are written), and every other cell
is recomputed from its seeds, so the results equal an uninterrupted run's: every file of the
run directory does, timings aside (``tests/experiments/test_duse_resume.py``). The expanded
sets of methods finished before the interruption are rebuilt from ``selected/*.npy`` for
the embeddings file. A run directory of a different configuration is refused
(``RunDir.start``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from amrjax import models
from amrjax.data import splits as splits_lib
from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.experiments import common, runner
from amrjax.experiments.rundir import RunDir
from amrjax.experiments.runner import percent_label as rate_label
from amrjax.protocols import expansion, one_shot
from amrjax.reporting import tables as report_tables
from amrjax.scoring import pools
from amrjax.seeding import derive_seed
from amrjax.selection import select, strategies
from amrjax.train import TrainConfig, diverged_where, evaluate

TARGET, RANDOM, ONESHOT, DUSE = 'target', 'random', 'duse_oneshot', 'duse'
METHODS = (TARGET, RANDOM, ONESHOT, DUSE)
METHOD_GROUPS = {
    'default': METHODS,
    'baselines': strategies.DUSE_BASELINES,
    'table1': (TARGET, RANDOM) + strategies.DUSE_BASELINES + (DUSE,),
}


def execution_order(methods: Sequence[str]) -> tuple[str, ...]:
  """``methods`` in the order ``run`` trains them at a rate: target, random, the one-shot
  strategies (in the given order), DUSE w/o active learning, DUSE."""
  return (tuple(m for m in (TARGET, RANDOM) if m in methods) +
          tuple(m for m in methods if m not in METHODS) +
          tuple(m for m in (ONESHOT, DUSE) if m in methods))


def expand_methods(names) -> tuple[str, ...]:
  """Method names with groups expanded and strategy aliases made canonical, in order."""
  out: list[str] = []
  for name in names:
    key = name.strip().lower()
    if key in METHOD_GROUPS:
      items = METHOD_GROUPS[key]
    elif key in METHODS:
      items = (key,)
    else:
      try:
        items = (strategies.get(key).name,)
      except ConfigError:
        raise ConfigError(
            f'unknown method {name!r}; choose from {", ".join(METHODS)}, a strategy '
            f'({", ".join(s for s in strategies.names() if s != DUSE)}) or a group '
            f'({", ".join(METHOD_GROUPS)})') from None
    out.extend(m for m in items if m not in out)
  return tuple(out)


# Presets. 'quick' is sized so the default command finishes in minutes on a 2-core CPU
# (README gives its time). It uses 50 vectors per (class, SNR) cell, so without the real
# file it generates only that many instead of a full-size stand-in. 'paper' is DUSE
# Sec. IV-D. Why each preset value is what it is, with the measurements: docs/results.md,
# "How the presets were sized".
PRESETS: dict[str, dict] = {
    # DeepFool at DeepCore's settings (50 steps over all classes) needs ~(1 + C) backward
    # passes per step for a whole batch until its slowest sample flips; the quick preset
    # uses 3 steps towards the runner-up class.
    # Batch 32, not the paper's 128: with ~400 training vectors, 128 gives 3 updates per
    # epoch and the 2D-CNN stays near chance.
    'quick': dict(rates=(0.09,), seeds=(0, 1), rounds=2, round_epochs=10, final_epochs=10,
                  max_per_cell=50, synthetic_per_cell=50, batch_size=32,
                  strategy_options={'deepfool': {'max_iter': 3, 'num_candidates': 2}}),
    'paper': dict(rates=(0.01, 0.04, 0.07, 0.09, 0.19), seeds=(0, 1, 2), rounds=5,
                  round_epochs=20, final_epochs=50, max_per_cell=None,
                  synthetic_per_cell=None, batch_size=128, strategy_options={}),
    # The paper's data scale, epochs and baselines at two of its rates, with the 1D-CNN
    # selecting and evaluating (the 2D-CNN costs about 5 times as much per epoch). R = 4 is
    # Table IV's middle value, so Table I's DUSE row is also a Table IV cell.
    'study': dict(dataset='rml2016.10a', rates=(0.04, 0.09), seeds=(0, 1, 2), rounds=4,
                  round_epochs=20, final_epochs=50, max_per_cell=None, synthetic_per_cell=None,
                  batch_size=128, model='cnn1d', methods=('table1',), strategy_options={}),
}

@dataclasses.dataclass(frozen=True)
class DuseConfig(common.DataSettings):
  """Everything that defines a DUSE run (``config.json`` holds exactly this).

  Attributes:
    dataset: a registered dataset name (rml2016.10a, rml2016.10b, rml2016.04c, rml2018.01a
      or sig2019).
    preset: the preset the settings came from.
    rates: expansion rates as fractions, e.g. 0.04,0.09 (budget = rate x |train|).
    seeds: seeds; each draws its own target set.
    rounds: active-learning rounds R of DUSE.
    round_epochs: scorer epochs per round (paper: 20).
    final_epochs: evaluation epochs (paper: 50).
    max_per_cell: vectors kept per (class, SNR) cell before splitting; None keeps every
      one.
    setting: the expansion setting: imbalance (smallest margins overall; the default) or
      balance (equal class counts).
    model: the scorer (selection) model (quick and paper presets: cnn2d; study: cnn1d).
    eval_models: evaluation models (none given: the scorer model); several give a
      cross-architecture table per rate (DUSE Table III).
    methods: the methods: target, random, duse_oneshot, duse, any strategy
      (least_confidence, entropy, margin, deepfool, forgetting, glister, grand, herding,
      kcenter, cal, cd, el2n, foqus, uniform) or a group: default, baselines (DUSE's 8),
      table1 (target, random, the 8 baselines, duse).
    batch_size: training batch size (paper: 128).
    learning_rate: Adam learning rate (paper: 1e-3).
    min_snr: keep vectors with SNR above this many dB (paper: 10); None keeps every SNR.
    target_fraction: size of D_T as a fraction of train (paper: 0.01).
    split_seed: seeds the subsampling and the train/test split (the same for every seed).
    warm_start: keep training the scorer across rounds (False: retrain it from scratch
      every round).
    budget_split: how DUSE splits its budget over the rounds: even, or geometric (D_T
      grows by the same factor every round).
    strategy_options: ``{strategy: {option: value}}`` for the baselines, e.g.
      ``{'forgetting': {'never_learned': 0}}``.
  """

  PRESETS: ClassVar[Mapping[str, Mapping]] = PRESETS
  EXPERIMENT: ClassVar[str] = 'DUSE'

  dataset: str = 'sig2019'
  preset: str = 'quick'
  rates: tuple[float, ...] = PRESETS['quick']['rates']
  seeds: tuple[int, ...] = PRESETS['quick']['seeds']
  rounds: int = PRESETS['quick']['rounds']
  round_epochs: int = PRESETS['quick']['round_epochs']
  final_epochs: int = PRESETS['quick']['final_epochs']
  max_per_cell: int | None = PRESETS['quick']['max_per_cell']
  setting: str = expansion.IMBALANCE
  model: str = 'cnn2d'
  eval_models: tuple[str, ...] = ()
  methods: tuple[str, ...] = METHODS
  batch_size: int = PRESETS['quick']['batch_size']
  learning_rate: float = 1e-3
  min_snr: float | None = 10
  target_fraction: float = 0.01
  split_seed: int = 0
  warm_start: bool = True
  budget_split: str = expansion.EVEN
  synthetic_per_cell: int | None = PRESETS['quick']['synthetic_per_cell']  # common.DataSettings
  strategy_options: dict = dataclasses.field(
      default_factory=lambda: dict(PRESETS['quick']['strategy_options']))

  def __post_init__(self):
    for rate in self.rates:
      select.check_rate(rate, 'expansion')
    if not self.rates:
      raise ConfigError('give at least one expansion rate (--rates=0.04)')
    object.__setattr__(self, 'seeds', common.check_seeds(self.seeds))
    common.check_split_seed(self.split_seed)
    object.__setattr__(self, 'methods', expand_methods(self.methods))
    common.check_methods(self.methods)
    object.__setattr__(self, 'strategy_options', {
        strategies.get(name).name: dict(options)
        for name, options in self.strategy_options.items()})
    for name, options in self.strategy_options.items():
      strategy = strategies.get(name)
      strategies.scorer_runs(strategy, strategies.resolve_options(strategy, options))
    expansion.check_budget_split(self.budget_split)
    expansion.check_setting(self.setting)
    if self.rounds < 1 or self.round_epochs < 1 or self.final_epochs < 1:
      raise ConfigError('rounds, round_epochs and final_epochs must be at least 1')
    TrainConfig(self.final_epochs, self.batch_size, self.learning_rate)  # checks them
    object.__setattr__(self, 'model', models.canonical_name(self.model))
    object.__setattr__(self, 'eval_models',
                       tuple(dict.fromkeys(models.canonical_name(m) for m in self.eval_models)))

  @property
  def evaluators(self) -> tuple[str, ...]:
    """The evaluation models: ``eval_models``, or the selection model when none is given."""
    return self.eval_models or (self.model,)

  def method_label(self, method: str) -> str:
    labels = {
        TARGET: f'Target only ({self.target_fraction:.0%} of train)',
        RANDOM: 'Random expansion',
        ONESHOT: 'DUSE w/o active learning (1 round)',
        DUSE: f'DUSE ({self.rounds} rounds)',
    }
    return labels.get(method) or strategies.get(method).label


def run(config: DuseConfig, workdir: Path | str, *,
        log: Callable[[str], None] = print, write_report: bool = True) -> dict:
  """Runs the experiment of ``config``, writes the run directory, returns the results;
  ``write_report``: also write ``report.md`` and its plots (``amrjax.reporting.run_report``)."""
  t_start = time.time()
  data = common.load_dataset(config, log)
  spec = data.spec
  # Every seed's split is made (and checked) before the run directory is written, so a run
  # refused here leaves no config.json that the corrected command would clash with.
  seed_splits = {seed: splits_lib.make_splits(
      data.pool, train_fraction=spec.train_fraction, min_snr=config.min_snr,
      target_fraction=config.target_fraction, max_per_cell=config.max_per_cell,
      split_seed=config.split_seed, target_seed=seed) for seed in config.seeds}
  run = runner.Run(config, workdir, key=_run_key, data=data, log=log,
                   started=t_start)
  run_dir, done = run.dir, run.prior
  scorer = models.get(config.model, spec.num_classes, spec.length)
  evaluators = {name: models.get(name, spec.num_classes, spec.length)
                for name in config.evaluators}
  crossed = len(evaluators) > 1
  round_train = TrainConfig(config.round_epochs, config.batch_size, config.learning_rate)
  final_train = TrainConfig(config.final_epochs, config.batch_size, config.learning_rate)

  split_sizes = {}
  # DUSE Fig. 4: the expanded sets of the first seed at the rate nearest the paper's 4 %,
  # embedded by the final model of the last method trained there (DUSE; see
  # ``write_embeddings``).
  tsne_rate = min(config.rates, key=lambda r: abs(r - 0.04))
  tsne_name = f'embeddings/seed{config.seeds[0]}-r{tsne_rate:g}.npz'
  embedded = [m for m in execution_order(config.methods) if m != TARGET]
  expanded_sets: dict[str, SignalPool] = {}
  for seed in config.seeds:
    splits = seed_splits.pop(seed)
    if runner.fits_in_memory(splits):
      splits = splits.in_memory()
    split_sizes[str(seed)] = splits.summary()
    run_dir.write_ids(f'selected/target-seed{seed}.npy', splits.target.ids)
    log(f'[seed {seed}] train {len(splits.train):,}  test {len(splits.test):,}  '
        f'D_T {len(splits.target):,}  D_A {len(splits.auxiliary):,}')
    eval_seed = derive_seed(seed, 'final-training')

    def finished(method: str, rate: float | None) -> bool:
      """Whether an interrupted run of this configuration already tested this cell."""
      found = [(method, rate, seed, e) in done for e in evaluators]
      if all(found):
        for e in evaluators:
          run.reuse((method, rate, seed, e))
        if seed == config.seeds[0] and rate == tsne_rate and method != TARGET:
          # The embeddings, written after the last method's training, cover this set too.
          expanded_sets[config.method_label(method)] = _expanded_set(
              run_dir, splits, f'selected/{method}-seed{seed}-r{rate:g}.npy',
              done[(method, rate, seed, next(iter(evaluators)))])
        log(f'[seed {seed}] {config.method_label(method)}'
            f'{"" if rate is None else " at " + rate_label(rate)}: done before the '
            'interruption (runs.jsonl)')
      return all(found)

    def train_and_test(method: str, rate: float | None, train_pool, selected=None, extra=None):
      name = f'{method}-seed{seed}' + ('' if rate is None else f'-r{rate:g}')
      if selected is not None:
        run_dir.write_ids(f'selected/{name}.npy', selected)
      embed = seed == config.seeds[0] and rate == tsne_rate
      if embed:
        expanded_sets[config.method_label(method)] = train_pool
      for eval_index, (eval_name, evaluator) in enumerate(evaluators.items()):
        if run.reuse((method, rate, seed, eval_name)):
          continue
        t0 = time.time()
        tag = dict(seed=seed, method=method, rate=rate, eval_model=eval_name, phase='final')
        where = (f'seed {seed}, {config.method_label(method)}'
                 f'{"" if rate is None else " at " + rate_label(rate)}, final training of '
                 f'{models.label(eval_name)}')
        state, _ = run.fit(evaluator, train_pool, final_train, seed=eval_seed, where=where,
                           tag=tag, checkpoint=f'final/{name}-{eval_name}',
                           checkpoint_last=False)  # the result is written right after
        result = evaluate(evaluator, state.variables, splits.test)
        if embed and eval_index == 0 and method == embedded[-1]:
          write_embeddings(run_dir, tsne_name, evaluator, state.variables, expanded_sets,
                           splits.target.ids, log)
        record = dict(method=method, rate=rate, seed=seed, eval_model=eval_name,
                      train_size=len(train_pool),
                      class_counts=train_pool.class_counts().tolist(),
                      test=result.to_json(), seconds=time.time() - t0, **(extra or {}))
        run.record(record)
        run_dir.discard_checkpoints(f'final/{name}-{eval_name}')
        log(f'[seed {seed}] {config.method_label(method)}'
            f'{"" if rate is None else " at " + rate_label(rate)}'
            f'{" -> " + models.label(eval_name) if crossed else ""}: '
            f'test accuracy {result.accuracy:.2%} on {len(train_pool):,} training vectors '
            f'({record["seconds"]:.0f} s)')

    if TARGET in config.methods and not finished(TARGET, None):
      train_and_test(TARGET, None, splits.target)
    for rate in config.rates:
      budget = expansion.budget_for_rate(rate, len(splits.train), len(splits.auxiliary))
      # The balance setting's class quotas, computed once: every method moves these counts.
      quotas = expansion.class_quotas(splits.target, splits.auxiliary, budget, config.setting)
      # One scorer seed for every selection method: the scorers trained on D_T start from
      # the same initialisation, and DUSE's first round equals the Margin baseline.
      scorer_seed = derive_seed(seed, 'scorer', rate)
      if RANDOM in config.methods and not finished(RANDOM, rate):
        picked = random_expansion(splits.auxiliary, budget, quotas,
                                  np.random.default_rng(derive_seed(seed, 'random', rate)))
        moved = splits.auxiliary.subset(picked)
        train_and_test(RANDOM, rate, splits.target.union(moved), moved.ids)
      for method in config.methods:
        if method in METHODS or finished(method, rate):
          continue
        with diverged_where(f'seed {seed}, {config.method_label(method)} at {rate_label(rate)}, '
                            'scorer training'):
          selection = one_shot.select_one_shot(
              method, scorer, splits.target, splits.auxiliary, budget, train=round_train,
              seed=scorer_seed, quotas=quotas,
              options=config.strategy_options.get(method))
        for record in selection.history:
          run_dir.log_metrics({'seed': seed, 'method': method, 'rate': rate,
                               'phase': 'selection', **record})
        moved = splits.auxiliary.subset(selection.positions)
        log(f'[seed {seed}] {config.method_label(method)} at {rate_label(rate)}: selected '
            f'{budget} ({selection.seconds:.0f} s)')
        train_and_test(method, rate, splits.target.union(moved), moved.ids,
                       extra={'selection_seconds': selection.seconds})
      duse_runs = {ONESHOT: 1, DUSE: config.rounds}
      for method, rounds in duse_runs.items():
        if method not in config.methods or finished(method, rate):
          continue
        exp_config = expansion.ExpansionConfig(
            budget=budget, rounds=rounds, setting=config.setting, train=round_train,
            warm_start=config.warm_start, budget_split=config.budget_split)
        t0 = time.time()
        with diverged_where(f'seed {seed}, {config.method_label(method)} at '
                            f'{rate_label(rate)}'):
          result = expansion.expand(
              scorer, splits.target, splits.auxiliary, exp_config,
              seed=scorer_seed, quotas=quotas,
              on_round=lambda r, m=method: log(
                  f'[seed {seed}] {config.method_label(m)} at {rate_label(rate)}: round '
                  f'{r.round}: moved {len(r.selected_ids)} (margins '
                  f'{r.selected_margin["min"]:.3f}..{r.selected_margin["max"]:.3f}), scorer '
                  f'train acc '
                  f'{r.train_accuracy:.2%} ({r.seconds:.0f} s)'),
              on_epoch=lambda m, meth=method: run_dir.log_metrics(
                  {'seed': seed, 'method': meth, 'rate': rate, 'phase': 'selection', **m}),
              checkpoints=run_dir.checkpoint_folder(f'{method}-seed{seed}-r{rate:g}'))
        run_dir.write_json(f'rounds/{method}-seed{seed}-r{rate:g}.json',
                           [r.to_json() for r in result.rounds])
        train_and_test(method, rate, result.expanded, result.selected_ids,
                       extra={'selection_seconds': time.time() - t0, 'rounds': rounds})
        run_dir.discard_checkpoints(f'{method}-seed{seed}-r{rate:g}')

  tables = result_tables(config, spec.name, data.origin['kind'], run.records)
  return run.finish(
      'duse', data, split_sizes, runner.text_tables(tables), write_report=write_report,
      method_labels={m: config.method_label(m) for m in config.methods},
      embeddings=tsne_name if (run_dir.path / tsne_name).is_file() else None,
      table=tables[0], tables=tables)


def write_embeddings(run_dir: RunDir, name: str, model, variables,
                     expanded_sets: dict[str, SignalPool], target_ids: np.ndarray,
                     log: Callable[[str], None]) -> None:
  """Writes the penultimate-layer embeddings of every method's expanded set (DUSE Fig. 4).

  The paper embeds with a 2D-CNN trained on the whole training split; this uses the final
  model of the last method trained at that rate (DUSE; ``execution_order``), which needs no
  extra training. ``expanded_sets`` is in that order. The
  ``.npz`` holds, per method i, ``emb{i}`` (n, D), ``labels{i}`` (n,), ``selected{i}``
  (n,) bool (False: a target-set vector), and ``methods`` (the labels).
  """
  arrays = {'methods': np.asarray(list(expanded_sets))}
  for i, pool in enumerate(expanded_sets.values()):
    arrays[f'emb{i}'] = pools.embeddings(model, variables, pool)
    arrays[f'labels{i}'] = pool.y
    arrays[f'selected{i}'] = ~np.isin(pool.ids, target_ids)
  run_dir.write_npz(name, arrays)
  log(f'wrote the embeddings of {len(expanded_sets)} expanded sets for the t-SNE plot '
      f'({name})')


def _expanded_set(run_dir: RunDir, splits: splits_lib.Splits, name: str,
                  record: dict) -> SignalPool:
  """D_T plus the vectors of D_A whose ids a method finished earlier saved as ``name``;
  checked against that method's ``runs.jsonl`` ``record`` (its training set's size and
  class counts)."""
  path = run_dir.file(name)
  try:
    ids = np.load(path, allow_pickle=False)
    pool = splits.target.union(splits.auxiliary.take_ids(ids))
  except (OSError, ValueError, EOFError) as e:
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise ConfigError(f'{path} is missing or damaged ({reason}); the embeddings of the '
                      'resumed run need it: choose a new --workdir') from None
  if (len(pool) != record.get('train_size') or
      pool.class_counts().tolist() != record.get('class_counts')):
    raise ConfigError(f'{path} does not hold the training set recorded in runs.jsonl; the '
                      'run directory is damaged: choose a new --workdir')
  return pool


def _run_key(record: dict) -> tuple:
  """(method, rate, seed, evaluation model) of a ``runs.jsonl`` record."""
  return record['method'], record['rate'], record['seed'], record['eval_model']


def random_expansion(auxiliary: SignalPool, budget: int, quotas: np.ndarray | None,
                     rng: np.random.Generator) -> np.ndarray:
  """Positions in D_A of a uniformly random expansion of ``budget`` samples.

  ``quotas``: None draws from the whole of D_A (imbalance setting); otherwise the (C,)
  class counts DUSE moves (``expansion.class_quotas``), drawn uniformly within each class.
  """
  if quotas is None:
    return select.uniform(len(auxiliary), budget, rng)
  return select.class_balanced_uniform(auxiliary.y, quotas, rng)


def result_tables(config: DuseConfig, dataset: str, data_kind: str,
                  runs: Sequence[dict]) -> list[dict]:
  """The printed tables: rows are methods, cells hold the accuracy of every seed.

  One evaluation model: one table, a column per expansion rate (DUSE Tables I and II).
  Several: one table per rate, a column per evaluation model (DUSE Table III).
  Each table is ``{'title', 'row_header', 'columns', 'rows': {label: {column: [acc]}},
  'summary': {label: {column: {'mean', 'std', 'n'}}}}``.
  """
  evaluators = config.evaluators
  seeds = f'mean ± std over {len(config.seeds)} seed(s)'
  where = f'{dataset} ({data_kind} data), {config.setting} setting'
  if len(evaluators) == 1:
    layouts = [(f'DUSE on {where}, selection {config.model}, evaluation {evaluators[0]}: '
                f'test accuracy %, {seeds}', 'Method / expansion rate',
                [rate_label(r) for r in config.rates], lambda run: True,
                lambda run: rate_label(run['rate']))]
  else:
    layouts = [(f'Cross-architecture: selected by {models.label(config.model)} at '
                f'{rate_label(rate)} on {where}, trained and tested on each model: test '
                f'accuracy %, {seeds}', 'Method / evaluation model',
                [models.label(m) for m in evaluators],
                lambda run, rate=rate: run['rate'] in (None, rate),
                lambda run: models.label(run['eval_model'])) for rate in config.rates]
  tables = []
  for title, row_header, columns, keep, column_of in layouts:
    rows: dict[str, dict[str, list]] = {config.method_label(m): {} for m in config.methods}
    for run_record in runs:
      if not keep(run_record):
        continue
      cells = rows[config.method_label(run_record['method'])]
      # Target-only training has no rate: it fills every rate column.
      for column in ([rate_label(r) for r in config.rates]
                     if run_record['rate'] is None and len(evaluators) == 1
                     else [column_of(run_record)]):
        cells.setdefault(column, []).append(run_record['test']['accuracy'])
    tables.append({'title': title, 'row_header': row_header, 'columns': columns,
                   'rows': rows, 'summary': report_tables.summarize(rows)})
  return tables

