"""The FoQuS experiment: class-balanced coresets at several rates, trained on and tested.

For every seed and selection model, the selection model is trained on the full training
split for ``selection_epochs`` (T) with its training dynamics recorded, and every method
selects a class-balanced coreset at every rate from that one trained scorer
(``amrjax.protocols.coreset``). Each coreset then trains every evaluation model from scratch for
``eval_epochs`` and is tested on the test split. By default each selection model evaluates
its own coresets (FoQuS Tables I/II: "the same model structure for selection and
testing"); ``eval_models`` evaluates every selection model's coresets on each of them
(Table III, A -> B).

Evaluation trainings use Adam with the learning rate cosine-decayed to 0 over the
``eval_epochs`` (``eval_schedule``; DeepCore, whose protocol the coreset baselines follow,
anneals its evaluation training the same way; the FoQuS paper names no optimiser). At a
constant rate the test accuracy is that of whatever the last step left (docs/results.md,
"How the presets were sized").

The data: the SNR > ``min_snr`` dB vectors ("high SNR data", Sec. IV-A; the paper does not
give the threshold, we use DUSE's 10 dB), optionally ``max_per_cell`` per (class, SNR)
cell, split per cell into train and test by the dataset's train fraction with a fixed
``split_seed``. The seed varies the scorer, the draws and the evaluation trainings.

``ablation=True`` replaces the methods by FoQuS Table V: each score term alone, each pair
and all three. Printed tables: one per (selection -> evaluation) model pair, methods by
rate plus the Avg column (mean over rates), as the paper lays out Tables I/II/V. ``run``
writes ``config.json``, ``metrics.jsonl``, ``runs.jsonl`` (each test result as it is
produced), ``selected/*.npy`` (training-split ids of every coreset) and ``results.json``.
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
from amrjax.errors import ConfigError
from amrjax.experiments import common, runner
from amrjax.experiments.runner import percent_label as rate_label
from amrjax.protocols import coreset
from amrjax.reporting import tables as report_tables
from amrjax.seeding import derive_seed
from amrjax.selection import select, strategies
from amrjax.train import TrainConfig, evaluate
from amrjax.train.loop import COSINE, SCHEDULES

FULL = 'full'
"""Pseudo-method: the evaluation model trained on the whole training split (the
reference a coreset approximates, FoQuS Eq. 1); listed with the methods to include it."""

# 'quick' runs the default command in minutes on a 2-core CPU (README): the paper's five
# rates, one selection model (CNN1D, the cheaper one), 100 vectors per (class, SNR) cell of
# the stand-in (3,520 training vectors at SNR > 10 dB), T = 8, 40 evaluation epochs at
# batch 32: with fewer, the smallest coresets give too few steps for CNN1D's BatchNorm
# statistics to follow its weights. 'paper' is FoQuS Sec. IV-B: CNN1D and CNN2D, 50
# evaluation epochs, 3 repeats. The selection epochs T are not given in the paper; 20 is our
# choice (DUSE's scorer epochs). 'study' is 'paper' cut to fit hours per table on a 2-core
# CPU: the paper's data scale (all 44,000 stand-in vectors above 10 dB: 35,200 train / 8,800
# test), one seed, CNN1D -> CNN1D, and seven of the eleven rows: FoQuS, Uniform, Herding,
# Forgetting, and the paper's three best other CNN1D baselines on RML2016.10a (CD, GraNd,
# k-Center Greedy). The measurements behind each choice: docs/results.md, "How the presets
# were sized".
PRESETS: dict[str, dict] = {
    'quick': dict(rates=(0.01, 0.05, 0.1, 0.2, 0.3), seeds=(0,), selection_models=('cnn1d',),
                  selection_epochs=8, eval_epochs=40, batch_size=32, max_per_cell=100,
                  synthetic_per_cell=100),
    'paper': dict(rates=(0.01, 0.05, 0.1, 0.2, 0.3), seeds=(0, 1, 2),
                  selection_models=('cnn1d', 'cnn2d'), selection_epochs=20, eval_epochs=50,
                  batch_size=128, max_per_cell=None, synthetic_per_cell=None),
    'study': dict(rates=(0.01, 0.05, 0.1, 0.2, 0.3), seeds=(0,), selection_models=('cnn1d',),
                  selection_epochs=20, eval_epochs=50, batch_size=128, max_per_cell=None,
                  synthetic_per_cell=None,
                  methods=('uniform', 'cd', 'forgetting', 'grand', 'herding', 'kcenter',
                           'foqus')),
}


@dataclasses.dataclass(frozen=True)
class CoresetConfig(common.DataSettings):
  """Everything that defines a FoQuS run (``config.json`` holds exactly this).

  Attributes:
    dataset: a registered dataset name (FoQuS: rml2016.10a, sig2019 or rml2018.01a).
    preset: the preset the settings came from.
    rates: coreset rates as fractions (paper: 0.01,0.05,0.1,0.2,0.3).
    seeds: seeds (paper: 3 repeats).
    selection_models: models that select (paper: cnn1d,cnn2d).
    eval_models: models that train on the coresets; none given: each selection model
      evaluates its own (A -> A). Given, every pair A -> B.
    methods: the methods (default: the 10 baselines and foqus): uniform, cal, cd,
      forgetting, grand, herding, kcenter, least_confidence, entropy, margin, foqus, el2n,
      deepfool, glister, foqus:<terms> (e.g. foqus:forgetting+quality), full (the whole
      training split).
    ablation: FoQuS Table V: every single score term, every pair and all three, instead of
      the given methods.
    selection_epochs: T: epochs the selection model trains on the full training split while
      its dynamics are recorded.
    eval_epochs: epochs each coreset trains an evaluation model (paper: 50).
    batch_size: training batch size.
    learning_rate: Adam learning rate.
    eval_schedule: learning-rate schedule of the evaluation trainings: cosine (decay to 0,
      as DeepCore; the default) or constant.
    min_snr: keep vectors with SNR above this many dB; None keeps all (default 10, the
      high-SNR data of Sec. IV-A).
    max_per_cell: vectors kept per (class, SNR) cell; None keeps every one.
    class_balanced: equal class counts in every coreset (paper).
    split_seed: seeds the subsampling and the train/test split (the same for every seed).
    strategy_options: ``{strategy: {option: value}}``, e.g. FoQuS's tier ``shares`` and
      ``beta``.
  """

  PRESETS: ClassVar[Mapping[str, Mapping]] = PRESETS
  EXPERIMENT: ClassVar[str] = 'FoQuS'

  dataset: str = 'rml2016.10a'
  preset: str = 'quick'
  rates: tuple[float, ...] = PRESETS['quick']['rates']
  seeds: tuple[int, ...] = PRESETS['quick']['seeds']
  selection_models: tuple[str, ...] = PRESETS['quick']['selection_models']
  eval_models: tuple[str, ...] = ()
  methods: tuple[str, ...] = coreset.CORESET_METHODS
  ablation: bool = False
  selection_epochs: int = PRESETS['quick']['selection_epochs']
  eval_epochs: int = PRESETS['quick']['eval_epochs']
  batch_size: int = PRESETS['quick']['batch_size']
  learning_rate: float = 1e-3
  eval_schedule: str = COSINE
  min_snr: float | None = 10
  max_per_cell: int | None = PRESETS['quick']['max_per_cell']
  class_balanced: bool = True
  split_seed: int = 0
  synthetic_per_cell: int | None = PRESETS['quick']['synthetic_per_cell']  # common.DataSettings
  strategy_options: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not self.rates or not self.selection_models:
      raise ConfigError('give at least one rate and one selection model')
    object.__setattr__(self, 'seeds', common.check_seeds(self.seeds))
    common.check_split_seed(self.split_seed)
    for rate in self.rates:
      select.check_rate(rate, 'coreset')
    if self.selection_epochs < 2 or self.eval_epochs < 1:
      raise ConfigError('FoQuS needs at least 2 selection epochs and 1 evaluation epoch')
    if self.eval_schedule not in SCHEDULES:
      raise ConfigError(f'unknown evaluation schedule {self.eval_schedule!r}; choose one of '
                        f'{", ".join(SCHEDULES)}')
    methods = coreset.ablation_methods() if self.ablation else self.methods
    canonical = [FULL if m.strip().lower() == FULL else coreset.parse_method(m).name
                 for m in methods]
    object.__setattr__(self, 'methods', tuple(dict.fromkeys(canonical)))
    common.check_methods(self.methods)
    for name, options in self.strategy_options.items():
      strategies.resolve_options(strategies.get(name), options)
    for field in ('selection_models', 'eval_models'):
      object.__setattr__(self, field, tuple(dict.fromkeys(
          models.canonical_name(m) for m in getattr(self, field))))

  def pairs(self) -> list[tuple[str, str]]:
    """(selection model, evaluation model) pairs, one table each."""
    if not self.eval_models:
      return [(m, m) for m in self.selection_models]
    return [(a, b) for a in self.selection_models for b in self.eval_models]

  def method_label(self, method: str) -> str:
    if method == FULL:
      return 'Full training set'
    return coreset.parse_method(method).label


AVG = 'Avg'


def load_split(config: CoresetConfig, log: Callable[[str], None] = print):
  """(dataset, train, test) for ``config``: SNR filter, per-cell cap, per-cell split."""
  data = common.load_dataset(config, log)
  rng = np.random.default_rng([config.split_seed, 0x5EED])
  pool = splits_lib.filter_snr(data.pool, config.min_snr)
  pool = splits_lib.subsample_cells(pool, config.max_per_cell, rng)
  train, test = splits_lib.split_train_test(pool, data.spec.train_fraction, rng)
  if runner.fits_in_memory(train, test):
    train, test = train.in_memory(), test.in_memory()
  return data, train, test


def _run_key(record: dict) -> tuple:
  """(method, rate, seed, selection model, evaluation model) of a ``runs.jsonl`` record."""
  return (record['method'], record['rate'], record['seed'], record['selection_model'],
          record['eval_model'])


def run(config: CoresetConfig, workdir: Path | str, *,
        log: Callable[[str], None] = print, write_report: bool = True) -> dict:
  """Runs the experiment of ``config``, writes the run directory, returns the results;
  ``write_report``: also write ``report.md`` and its plots (``amrjax.reporting.run_report``)."""
  t_start = time.time()
  # The data, the split and every budget are checked before the run directory is written,
  # so a run refused here leaves no config.json that the corrected command would clash with.
  data, train, test = load_split(config, log)
  spec = data.spec
  for rate in config.rates:  # fail before any training
    coreset.coreset_budget(rate, len(train), spec.num_classes)
  log(f'{spec.name} ({data.origin["kind"]}): train {len(train):,}  test {len(test):,}  '
      f'SNR > {config.min_snr} dB')
  selection_train = TrainConfig(config.selection_epochs, config.batch_size,
                                config.learning_rate)
  eval_train = TrainConfig(config.eval_epochs, config.batch_size, config.learning_rate,
                           schedule=config.eval_schedule)
  selecting = [m for m in config.methods if m != FULL]
  run = runner.Run(config, workdir, key=_run_key, data=data, log=log,
                   started=t_start)
  run_dir = run.dir
  for seed in config.seeds:
    eval_seed = derive_seed(seed, 'coreset-evaluation')

    def train_and_test(method, rate, sel_name, eval_name, pool):
      # Tested before an interruption? (The selection is redone: it is seeded.)
      if run.reuse((method, rate, seed, sel_name, eval_name)):
        return
      evaluator = models.get(eval_name, spec.num_classes, spec.length)
      tag = dict(seed=seed, method=method, rate=rate, selection_model=sel_name,
                 eval_model=eval_name, phase='evaluation')
      t0 = time.time()
      where = (f'seed {seed}, {config.method_label(method)}'
               f'{"" if rate is None else " at " + rate_label(rate)}, evaluation of '
               f'{models.label(eval_name)} (selected by {models.label(sel_name)})')
      folder = (f'evaluation/{method.replace(":", "-")}-{sel_name}-{eval_name}-seed{seed}'
                + ('' if rate is None else f'-r{rate:g}'))
      state, _ = run.fit(evaluator, pool, eval_train, seed=eval_seed, where=where, tag=tag,
                         checkpoint=folder,
                         checkpoint_last=False)  # the result is written right after
      result = evaluate(evaluator, state.variables, test)
      record = dict(method=method, rate=rate, seed=seed, selection_model=sel_name,
                    eval_model=eval_name, train_size=len(pool),
                    class_counts=pool.class_counts().tolist(), test=result.to_json(),
                    seconds=time.time() - t0)
      run.record(record)
      run_dir.discard_checkpoints(folder)
      where = '' if rate is None else f' at {rate_label(rate)}'
      log(f'[seed {seed}] {models.label(sel_name)} -> {models.label(eval_name)}: '
          f'{config.method_label(method)}{where}: test accuracy {result.accuracy:.2%} on '
          f'{len(pool):,} vectors ({record["seconds"]:.0f} s)')

    for sel_name in config.selection_models:
      scorer_model = models.get(sel_name, spec.num_classes, spec.length)
      eval_names = [b for a, b in config.pairs() if a == sel_name]
      t0 = time.time()

      def on_selected(method, rate, selection, sel_name=sel_name):
        run_dir.write_ids(f'selected/{method.name.replace(":", "-")}-{sel_name}-seed{seed}-'
                          f'r{rate:g}.npy', train.ids[selection.positions])

      scorer, selections = coreset.select_coresets(
          scorer_model, train, selecting, config.rates, train_config=selection_train,
          seed=derive_seed(seed, 'coreset-scorer', sel_name),
          class_balanced=config.class_balanced, options=config.strategy_options,
          on_selected=on_selected,
          checkpoint=run_dir.checkpoint_folder(f'selection/{sel_name}-seed{seed}'))
      if scorer is not None:
        for record in scorer.history:
          run_dir.log_metrics({'seed': seed, 'selection_model': sel_name,
                               'phase': 'selection', **record})
      log(f'[seed {seed}] {models.label(sel_name)}: trained the scorer for '
          f'{config.selection_epochs} epochs and selected {len(selections)} coresets '
          f'({time.time() - t0:.0f} s)')
      for eval_name in eval_names:
        if FULL in config.methods:
          train_and_test(FULL, None, sel_name, eval_name, train)
        for rate in config.rates:
          for method in selecting:
            pool = train.subset(selections[(method, rate)].positions)
            train_and_test(method, rate, sel_name, eval_name, pool)

  tables = result_tables(config, spec.name, data.origin['kind'], run.records)
  return run.finish(
      'foqus', data, {'train': len(train), 'test': len(test)}, runner.text_tables(tables),
      write_report=write_report,
      method_labels={m: config.method_label(m) for m in config.methods},
      table=tables[0], tables=tables)


def result_tables(config: CoresetConfig, dataset: str, data_kind: str,
                  runs: Sequence[dict]) -> list[dict]:
  """One table per (selection, evaluation) model pair: methods by rate, plus Avg.

  A cell holds the test accuracy of every seed; Avg holds, per seed, the mean over the
  rates (FoQuS Tables I/II). The full-training-set row fills every rate column. Each
  table is ``{'title', 'row_header', 'columns', 'rows': {label: {column: [acc]}},
  'summary': {label: {column: {'mean', 'std', 'n'}}}}``.
  """
  columns = [rate_label(r) for r in config.rates] + [AVG]
  what = 'FoQuS ablation (Table V)' if config.ablation else 'Coreset selection'
  tables = []
  for sel_name, eval_name in config.pairs():
    rows: dict[str, dict[str, list]] = {config.method_label(m): {} for m in config.methods}
    per_seed: dict[tuple[str, int], list[float]] = {}
    for record in runs:
      if (record['selection_model'], record['eval_model']) != (sel_name, eval_name):
        continue
      label = config.method_label(record['method'])
      accuracy = record['test']['accuracy']
      cols = ([rate_label(r) for r in config.rates] if record['rate'] is None
              else [rate_label(record['rate'])])
      for col in cols:
        rows[label].setdefault(col, []).append(accuracy)
        per_seed.setdefault((label, record['seed']), []).append(accuracy)
    for (label, _), values in per_seed.items():
      if len(values) == len(config.rates):  # Avg only over complete rows
        rows[label].setdefault(AVG, []).append(float(np.mean(values)))
    tables.append({
        'title': (f'{what} on {dataset} ({data_kind} data), {models.label(sel_name)} -> '
                  f'{models.label(eval_name)}: test accuracy %, mean ± std over '
                  f'{len(config.seeds)} seed(s)'),
        'row_header': 'Method / rate',
        'columns': columns,
        'rows': rows,
        'summary': report_tables.summarize(rows),
    })
  return tables
