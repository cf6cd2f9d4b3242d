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
- any strategy of ``amrjax.strategies`` by name (``least_confidence``, ``deepfool``,
  ``glister``, ...): the DUSE paper's baselines (Tables I and II), selected one-shot at the
  same budget and setting by the same scorer trained on D_T for ``round_epochs``.

Method groups: ``default`` (the four above), ``baselines`` (DUSE's 8 baselines),
``table1`` (target, random, the 8 baselines, DUSE: the rows of Tables I/II).

All final trainings of a seed start from the same initialisation, so differences between
methods come from their training sets. ``run`` writes ``config.json``, ``metrics.jsonl``,
``runs.jsonl`` (each test result as it is produced), ``selected/*.npy``, ``rounds/*.json``
and ``results.json`` into the run directory and returns the results.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from amrjax import expansion, models, report, select, strategies
from amrjax.data import sources, splits as splits_lib
from amrjax.errors import ConfigError
from amrjax.rundir import RunDir
from amrjax.seeding import derive_seed
from amrjax.train import TrainConfig, evaluate, fit

TARGET, RANDOM, ONESHOT, DUSE = 'target', 'random', 'duse_oneshot', 'duse'
METHODS = (TARGET, RANDOM, ONESHOT, DUSE)
METHOD_GROUPS = {
    'default': METHODS,
    'baselines': strategies.DUSE_BASELINES,
    'table1': (TARGET, RANDOM) + strategies.DUSE_BASELINES + (DUSE,),
}


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


# Presets. 'quick' is sized so the default command finishes within 15 minutes on the slower
# of the 2-core CPUs we measured (an AVX2 EPYC at ~66 GFLOP/s matmul, where one 2D-CNN
# train step at L = 512, batch 128, takes ~1.6 s); README has the measured times. It uses
# 50 vectors per (class, SNR) cell, so without the real file it generates only that many
# (a full-size Sig2019 stand-in is 3.8 GB and takes ~2 minutes to write). 'paper' is DUSE
# Sec. IV-D.
PRESETS: dict[str, dict] = {
    # DeepFool at DeepCore's settings (50 steps over all classes) needs ~(1 + C) backward
    # passes per step for a whole batch until its slowest sample flips: hours on a CPU. Even
    # 10 steps over 4 candidate classes took over 10 minutes for 3,920 vectors here; the
    # quick preset uses 3 steps towards the runner-up class.
    # Batch 32, not the paper's 128: with ~400 training vectors, 128 gives 3 updates per
    # epoch and the 2D-CNN stays near chance (measured: 12.7 % vs 28.8 % test accuracy after
    # 15 epochs on 396 Sig2019 vectors, same compute).
    'quick': dict(rates=(0.09,), seeds=(0, 1), rounds=2, round_epochs=10, final_epochs=10,
                  max_per_cell=50, synthetic_per_cell=50, batch_size=32,
                  strategy_options={'deepfool': {'max_iter': 3, 'num_candidates': 2}}),
    'paper': dict(rates=(0.01, 0.04, 0.07, 0.09, 0.19), seeds=(0, 1, 2), rounds=5,
                  round_epochs=20, final_epochs=50, max_per_cell=None,
                  synthetic_per_cell=None, batch_size=128, strategy_options={}),
}

# Experiments hold the whole train and test signals in memory when they take less.
IN_MEMORY_LIMIT_BYTES = 4 << 30


@dataclasses.dataclass(frozen=True)
class DuseConfig:
  """Everything that defines a DUSE run (``config.json`` holds exactly this)."""

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
  eval_model: str | None = None
  methods: tuple[str, ...] = METHODS
  batch_size: int = PRESETS['quick']['batch_size']
  learning_rate: float = 1e-3
  min_snr: float | None = 10
  target_fraction: float = 0.01
  split_seed: int = 0
  warm_start: bool = True
  data_dir: str | None = None
  cache_dir: str | None = None
  synthetic_per_cell: int | None = PRESETS['quick']['synthetic_per_cell']
  strategy_options: dict = dataclasses.field(
      default_factory=lambda: dict(PRESETS['quick']['strategy_options']))
  allow_synthetic: bool = True

  @classmethod
  def from_preset(cls, preset: str = 'quick', **overrides) -> DuseConfig:
    """The preset's settings with ``overrides`` on top."""
    if preset not in PRESETS:
      raise ConfigError(f'unknown preset {preset!r}; choose one of {", ".join(PRESETS)}')
    unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
      raise ConfigError(f'unknown DUSE setting(s): {", ".join(sorted(unknown))}')
    return cls(**{**PRESETS[preset], **overrides, 'preset': preset})

  def __post_init__(self):
    for rate in self.rates:
      if not 0 < rate <= 1:
        raise ConfigError(f'expansion rate must be in (0, 1], got {rate}; write 4 % as 0.04')
    if not self.rates or not self.seeds:
      raise ConfigError('give at least one expansion rate and one seed')
    object.__setattr__(self, 'methods', expand_methods(self.methods))
    for name, options in self.strategy_options.items():
      strategies.resolve_options(strategies.get(name), options)
    if self.setting not in expansion.SETTINGS:
      raise ConfigError(f'unknown setting {self.setting!r}; choose one of '
                        f'{", ".join(expansion.SETTINGS)}')
    if self.rounds < 1 or self.round_epochs < 1 or self.final_epochs < 1:
      raise ConfigError('rounds, round_epochs and final_epochs must be at least 1')
    models.canonical_name(self.model)
    if self.eval_model is not None:
      models.canonical_name(self.eval_model)

  def method_label(self, method: str) -> str:
    labels = {
        TARGET: f'Target only ({self.target_fraction:.0%} of train)',
        RANDOM: 'Random expansion',
        ONESHOT: 'DUSE w/o active learning (1 round)',
        DUSE: f'DUSE ({self.rounds} rounds)',
    }
    return labels.get(method) or strategies.get(method).label


def rate_label(rate: float) -> str:
  return f'{rate * 100:g}%'


def run(config: DuseConfig, workdir: Path | str, *,
        log: Callable[[str], None] = print) -> dict:
  """Runs the experiment of ``config``, writes the run directory, returns the results."""
  run_dir = RunDir(workdir)
  run_dir.write_json('config.json', dataclasses.asdict(config))
  t_start = time.time()
  data = sources.load(config.dataset, data_dir=config.data_dir, cache_dir=config.cache_dir,
                      synthetic_per_cell=config.synthetic_per_cell,
                      allow_synthetic=config.allow_synthetic, notify=log)
  spec = data.spec
  scorer = models.get(config.model, spec.num_classes, spec.length)
  evaluator = models.get(config.eval_model or config.model, spec.num_classes, spec.length)
  round_train = TrainConfig(config.round_epochs, config.batch_size, config.learning_rate)
  final_train = TrainConfig(config.final_epochs, config.batch_size, config.learning_rate)

  runs, split_sizes = [], {}
  for seed in config.seeds:
    splits = splits_lib.make_splits(
        data.pool, train_fraction=spec.train_fraction, min_snr=config.min_snr,
        target_fraction=config.target_fraction, max_per_cell=config.max_per_cell,
        split_seed=config.split_seed, target_seed=seed)
    if splits.nbytes <= IN_MEMORY_LIMIT_BYTES:
      splits = splits.in_memory()
    split_sizes[str(seed)] = splits.summary()
    run_dir.write_ids(f'selected/target-seed{seed}.npy', splits.target.ids)
    log(f'[seed {seed}] train {len(splits.train):,}  test {len(splits.test):,}  '
        f'D_T {len(splits.target):,}  D_A {len(splits.auxiliary):,}')
    eval_seed = derive_seed(seed, 'final-training')

    def train_and_test(method: str, rate: float | None, train_pool, selected=None, extra=None):
      t0 = time.time()
      tag = dict(seed=seed, method=method, rate=rate, phase='final')
      state, _ = fit(evaluator, train_pool, final_train, seed=eval_seed,
                     on_epoch=lambda m: run_dir.log_metrics({**tag, **m}))
      result = evaluate(evaluator, state.variables, splits.test)
      name = f'{method}-seed{seed}' + ('' if rate is None else f'-r{rate:g}')
      if selected is not None:
        run_dir.write_ids(f'selected/{name}.npy', selected)
      record = dict(method=method, rate=rate, seed=seed, train_size=len(train_pool),
                    class_counts=train_pool.class_counts().tolist(),
                    test=result.to_json(), seconds=time.time() - t0, **(extra or {}))
      runs.append(record)
      run_dir.append_jsonl('runs.jsonl', record)  # kept even if a later run fails
      log(f'[seed {seed}] {config.method_label(method)}'
          f'{"" if rate is None else " at " + rate_label(rate)}: '
          f'test accuracy {result.accuracy:.2%} on {len(train_pool):,} training vectors '
          f'({record["seconds"]:.0f} s)')
      return record

    if TARGET in config.methods:
      train_and_test(TARGET, None, splits.target)
    for rate in config.rates:
      budget = expansion.budget_for_rate(rate, len(splits.train))
      # One scorer seed for every selection method: the scorers trained on D_T start from
      # the same initialisation, and DUSE's first round equals the Margin baseline.
      scorer_seed = derive_seed(seed, 'scorer', rate)
      if budget > len(splits.auxiliary):
        raise ConfigError(f'expansion rate {rate} needs {budget} vectors but D_A has '
                          f'{len(splits.auxiliary)}; lower the rate')
      if RANDOM in config.methods:
        picked = random_expansion(splits, budget, config.setting,
                                  np.random.default_rng(derive_seed(seed, 'random', rate)))
        moved = splits.auxiliary.subset(picked)
        train_and_test(RANDOM, rate, splits.target.union(moved), moved.ids)
      for method in config.methods:
        if method in METHODS:
          continue
        quotas = (None if config.setting == expansion.IMBALANCE else select.balanced_quotas(
            splits.target.class_counts(), budget, splits.auxiliary.class_counts()))
        selection = strategies.select_one_shot(
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
        if method not in config.methods:
          continue
        exp_config = expansion.ExpansionConfig(
            budget=budget, rounds=rounds, setting=config.setting, train=round_train,
            warm_start=config.warm_start)
        t0 = time.time()
        result = expansion.expand(
            scorer, splits.target, splits.auxiliary, exp_config,
            seed=scorer_seed,
            on_round=lambda r, m=method: log(
                f'[seed {seed}] {config.method_label(m)} at {rate_label(rate)}: round '
                f'{r.round}: moved {len(r.selected_ids)} (margins {r.selected_margin["min"]:.3f}'
                f'..{r.selected_margin["max"]:.3f}), scorer train acc '
                f'{r.train_accuracy:.2%} ({r.seconds:.0f} s)'),
            on_epoch=lambda m, meth=method: run_dir.log_metrics(
                {'seed': seed, 'method': meth, 'rate': rate, 'phase': 'selection', **m}))
        run_dir.write_json(f'rounds/{method}-seed{seed}-r{rate:g}.json',
                           [r.to_json() for r in result.rounds])
        train_and_test(method, rate, result.expanded, result.selected_ids,
                       extra={'selection_seconds': time.time() - t0, 'rounds': rounds})

  rows = table_rows(config, runs)
  columns = [rate_label(r) for r in config.rates]
  title = (f'DUSE on {spec.name} ({data.origin["kind"]} data), {config.setting} setting, '
           f'selection {config.model}, evaluation {config.eval_model or config.model}: test '
           f'accuracy %, mean ± std over {len(config.seeds)} seed(s)')
  table = report.text_table({config.method_label(m): v for m, v in rows.items()},
                            columns, title=title, row_header='Method / expansion rate')
  results = {
      'config': dataclasses.asdict(config),
      'data': data.origin,
      'dataset': {'name': spec.name, 'classes': list(spec.classes), 'length': spec.length},
      'splits': split_sizes,
      'table': {'title': title, 'columns': columns,
                'rows': {config.method_label(m): v for m, v in rows.items()}},
      'summary': summarize(rows),
      'runs': runs,
      'seconds': time.time() - t_start,
  }
  run_dir.write_json('results.json', results)
  log(table)
  log(f'wrote {run_dir.file("results.json")} ({results["seconds"]:.0f} s in all)')
  return results


def random_expansion(splits: splits_lib.Splits, budget: int, setting: str,
                     rng: np.random.Generator) -> np.ndarray:
  """Positions in D_A of a uniformly random expansion of ``budget`` samples.

  In the balance setting the draw is class-balanced with the same quotas DUSE uses.
  """
  if setting == expansion.IMBALANCE:
    return select.uniform(len(splits.auxiliary), budget, rng)
  quotas = select.balanced_quotas(splits.target.class_counts(), budget,
                                  splits.auxiliary.class_counts())
  return select.class_balanced_uniform(splits.auxiliary.y, quotas, rng)


def table_rows(config: DuseConfig, runs: Sequence[dict]) -> dict[str, dict[str, list]]:
  """{method: {rate column: [accuracy per seed]}}; target-only fills every column."""
  rows: dict[str, dict[str, list]] = {m: {} for m in config.methods}
  for run_record in runs:
    acc = run_record['test']['accuracy']
    rates = config.rates if run_record['rate'] is None else (run_record['rate'],)
    for rate in rates:
      rows[run_record['method']].setdefault(rate_label(rate), []).append(acc)
  return rows


def summarize(rows: dict[str, dict[str, list]]) -> dict:
  return {method: {col: dict(zip(('mean', 'std'), report.mean_std(vals)), n=len(vals))
                   for col, vals in cols.items()}
          for method, cols in rows.items()}
