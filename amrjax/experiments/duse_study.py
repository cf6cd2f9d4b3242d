"""The DUSE study: the paper's tables at its data scale, from many resumable run directories.

The study preset (``amrjax.experiments.duse.PRESETS['study']``) runs DUSE and its baselines
on the full RML2016.10a-size split above 10 dB (35,200 training vectors, a 352-vector target
set) with the paper's epochs. Each table is assembled from several run directories under one
study folder, one per named run of :data:`RUNS` (a seed of Table I, a protocol variant,
...), so a table can grow by a seed at a time, span sessions (every run resumes) and run
on two cores at once. :func:`collect` reads every ``runs.jsonl`` below the folder, finished
or not, and :func:`report` lays the results out beside the paper's numbers:

- Table I (class imbalance) and Table II (class balance): target only, random expansion,
  the 8 baselines and DUSE at 4 % and 9 %; the paper's table has no random row, ours does;
- Table IV: DUSE with R = 1, 2, 4, 8 rounds at 4 % (R = 1 is the Margin baseline);
- the protocol choices the paper leaves open: the scorer continuing across rounds or
  retrained each round, the even or geometric round budgets, Forgetting's score for
  never-learned samples, GraNd from one scorer or averaged over five;
- the paper's own 2D-CNN as scorer and evaluator on the key rows (target only, random,
  Margin, DUSE) in both settings, beside the 1D-CNN's rows, with what each class gained;
- paired differences (DUSE minus another row, seed by seed: the seeds share their target
  set, split and final-training initialisation) with their spread.

``python -m experiments.duse_study`` runs the named runs and prints the tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from amrjax.errors import ConfigError
from amrjax.experiments import duse as dx
from amrjax.experiments import study_runs
from amrjax.protocols import expansion
from amrjax.reporting import tables as report_tables
from amrjax.selection import strategies

DATASET = 'rml2016.10a'
PRESET = 'study'

TABLE_METHODS = (dx.TARGET, dx.RANDOM) + strategies.DUSE_BASELINES + (dx.DUSE,)
RATES = (0.04, 0.09)

DEFAULT_WORKDIR = 'runs/duse-study'
"""The study folder the driver reads and writes unless told another."""

RUNS: dict[str, dict] = {
    # Tables I and II: one run directory per seed, so seeds can be added later.
    **{f'table1-seed{s}': dict(seeds=(s,)) for s in (0, 1)},
    'table1-seed2-key': dict(seeds=(2,), methods=('target', 'random', 'duse_oneshot', 'duse')),
    # Table II without DeepFool, whose two selections cost as much as the rest of a seed;
    # it has a run of its own.
    **{f'table2-seed{s}': dict(seeds=(s,), setting=expansion.BALANCE,
                               methods=tuple(m for m in TABLE_METHODS if m != 'deepfool'))
       for s in (0, 1)},
    'table2-deepfool': dict(seeds=(0, 1), setting=expansion.BALANCE, methods=('deepfool',)),
    # The paper's own scorer and evaluator, the 2D-CNN, on the key rows: one run directory
    # per (setting, seed), so a table grows a seed at a time.
    **{f'cnn2d-{setting}-seed{s}': dict(seeds=(s,), setting=setting, model='cnn2d',
                                        methods=('target', 'random', 'duse_oneshot', 'duse'))
       for s in (0, 1, 2) for setting in (expansion.IMBALANCE, expansion.BALANCE)},
    # Table IV (R = 1 is the Margin row, R = 4 the DUSE row of Table I).
    'rounds2': dict(methods=('duse',), rates=(0.04,), rounds=2, seeds=(0, 1, 2)),
    'rounds8': dict(methods=('duse',), rates=(0.04,), rounds=8, seeds=(0, 1, 2)),
    # Protocol choices.
    'retrain': dict(methods=('duse',), warm_start=False, seeds=(0, 1, 2)),
    'geometric': dict(methods=('duse',), budget_split=expansion.GEOMETRIC, seeds=(0, 1, 2)),
    'forgetting-never0': dict(methods=('forgetting',), seeds=(0, 1),
                              strategy_options={'forgetting': {'never_learned': 0}}),
    'grand-runs5': dict(methods=('grand',), seeds=(0, 1),
                        strategy_options={'grand': {'runs': 5}}),
}
"""The study's runs: DuseConfig overrides of the study preset on RML2016.10a, by name."""


def config_of(name: str, **overrides) -> dx.DuseConfig:
  """The configuration of the named study run (``overrides``: e.g. ``data_dir``)."""
  if name not in RUNS:
    raise ConfigError(f'unknown study run {name!r}; choose from {", ".join(RUNS)}')
  return dx.DuseConfig.from_preset(PRESET, dataset=DATASET, **{**RUNS[name], **overrides})


# What must match the study preset for a run directory's results to enter the tables.
_SHARED = ('dataset', 'round_epochs', 'final_epochs', 'max_per_cell', 'batch_size',
           'learning_rate', 'min_snr', 'target_fraction', 'split_seed', 'synthetic_per_cell')

MODELS = ('cnn1d', 'cnn2d')
"""The study's scorer and evaluator models: the preset's 1D-CNN, and the paper's 2D-CNN on
the key rows (target, random, Margin, DUSE)."""

KEY_METHODS = (dx.TARGET, dx.RANDOM, 'margin', dx.DUSE)

# DUSE (Lu et al. 2025) on RML2016.10a with the 2D-CNN: mean and std over 3 runs.
PAPER = {
    ('imbalance', 0.04): {
        'least_confidence': (50.55, 1.92), 'entropy': (50.26, 2.69), 'margin': (47.76, 7.51),
        'deepfool': (52.96, 2.27), 'forgetting': (62.93, 3.93), 'glister': (46.93, 6.08),
        'grand': (44.84, 9.11), 'herding': (39.45, 2.41), 'duse': (68.07, 2.41)},
    ('imbalance', 0.09): {
        'least_confidence': (46.26, 4.13), 'entropy': (50.59, 3.17), 'margin': (49.56, 3.80),
        'deepfool': (52.22, 2.61), 'forgetting': (69.93, 2.16), 'glister': (44.73, 2.08),
        'grand': (43.17, 9.68), 'herding': (42.99, 1.37), 'duse': (75.18, 2.11)},
    ('balance', 0.04): {
        'least_confidence': (65.39, 1.50), 'entropy': (65.51, 0.51), 'margin': (65.17, 1.30),
        'deepfool': (65.11, 2.46), 'forgetting': (65.79, 0.56), 'glister': (64.90, 0.48),
        'grand': (60.02, 5.37), 'herding': (66.01, 0.74), 'duse': (66.53, 0.75)},
    ('balance', 0.09): {
        'least_confidence': (71.45, 0.90), 'entropy': (71.09, 0.63), 'margin': (70.88, 0.77),
        'deepfool': (70.97, 0.58), 'forgetting': (72.10, 0.51), 'glister': (70.88, 0.38),
        'grand': (69.27, 3.86), 'herding': (70.86, 0.33), 'duse': (73.36, 0.13)},
}
"""DUSE Tables I (imbalance) and II (balance), RML2016.10a rows, at 4 % and 9 %."""


def variant(config: Mapping, method: str) -> str:
  """How a run of ``method`` departs from the study preset's protocol ('' when it does not).

  DUSE w/o active learning is the Margin baseline (the same scorer, seed and selection:
  ``tests/test_strategies.py``), so its runs count as Margin's.
  """
  parts = []
  if method == dx.DUSE:
    study = dx.PRESETS[PRESET]
    if config['rounds'] != study['rounds']:
      parts.append(f'R = {config["rounds"]}')
    if not config['warm_start']:
      parts.append('scorer retrained each round')
    if config.get('budget_split', expansion.EVEN) != expansion.EVEN:
      parts.append(f'{config["budget_split"]} round budgets')
  for key, value in sorted(config['strategy_options'].get(method, {}).items()):
    parts.append(f'{key} = {value}')
  return ', '.join(parts)


@dataclasses.dataclass
class Results:
  """Test accuracies by (setting, method, variant, rate) and seed; what was skipped."""

  accuracy: dict[tuple, dict[int, float]] = dataclasses.field(default_factory=dict)
  class_counts: dict[tuple, dict[int, np.ndarray]] = dataclasses.field(default_factory=dict)
  seconds: dict[str, float] = dataclasses.field(default_factory=dict)
  skipped: list[str] = dataclasses.field(default_factory=list)

  def cell(self, setting: str, method: str, rate: float | None, variant_: str = '') -> dict:
    """{seed: accuracy} of one cell (target only has no rate)."""
    return self.accuracy.get((setting, method, variant_, rate), {})

  def added_spread(self, setting: str, method: str, rate: float) -> str:
    """'lo-hi': the fewest and most vectors a class gained from D_A, over the seeds whose
    target-only run is known (the training set's class counts minus D_T's)."""
    counts = self.class_counts.get((setting, method, '', rate), {})
    targets = self.class_counts.get((setting, dx.TARGET, '', None), {})
    added = [counts[s] - targets[s] for s in sorted(set(counts) & set(targets))]
    if not added:
      return '-'
    return f'{int(min(a.min() for a in added))}-{int(max(a.max() for a in added))}'


def collect(root: Path | str, model: str = MODELS[0]) -> Results:
  """Reads every run directory below ``root`` (``config.json`` + ``runs.jsonl``).

  Only the run directories of ``model`` (one of :data:`MODELS`) are read. Those whose data or
  training differ from the study preset's, or that evaluate other models, are skipped and
  named in ``skipped`` (``amrjax.experiments.study_runs.read``); a cell measured twice for a
  seed must agree.
  """
  out = Results()
  study = dataclasses.asdict(dx.DuseConfig.from_preset(PRESET, dataset=DATASET, model=model))
  for folder, config, records in study_runs.read(root, study, _SHARED, out.skipped):
    if config.get('model') != model:
      if config.get('model') not in MODELS:
        out.skipped.append(f'{folder} (differs in model)')
      continue
    if config.get('eval_models'):
      out.skipped.append(f'{folder} (differs in eval_models)')
      continue
    seconds = 0.0
    for record in records:
      method = 'margin' if record['method'] == dx.ONESHOT else record['method']
      key = (config['setting'], method, variant(config, method), record['rate'])
      study_runs.put(out.accuracy, key, record['seed'], 100 * record['test']['accuracy'],
                     folder)
      if 'class_counts' in record:
        out.class_counts.setdefault(key, {})[record['seed']] = np.asarray(record['class_counts'])
      seconds += record.get('seconds', 0) + record.get('selection_seconds', 0)
    out.seconds[folder] = seconds
  return out


def _mean_std(values: Sequence[float]) -> str:
  if not values:
    return '-'
  mean, std = report_tables.mean_std(values)
  return f'{mean:.2f} ± {std:.2f} ({len(values)})'


def _paper(value: tuple[float, float] | None) -> str:
  return '-' if value is None else f'{value[0]:.2f} ± {value[1]:.2f}'


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> str:
  """'mean ± std (n)' of a - b over the seeds both hold."""
  seeds = sorted(set(a) & set(b))
  return _mean_std([a[s] - b[s] for s in seeds])


def label(method: str) -> str:
  return {dx.TARGET: 'Target only (1 %)', dx.RANDOM: 'Random expansion',
          dx.DUSE: 'DUSE (R = 4)'}.get(method) or strategies.get(method).label


def main_table(results: Results, setting: str) -> str:
  """Table I (imbalance) or II (balance): ours beside the paper's, then paired gaps."""
  rows = []
  for method in TABLE_METHODS:
    row = [label(method)]
    for rate in RATES:
      cell = results.cell(setting, method, None if method == dx.TARGET else rate)
      row += [_mean_std(list(cell.values())), _paper(PAPER[(setting, rate)].get(method))]
    row.append('-' if method == dx.TARGET else results.added_spread(setting, method, 0.04))
    rows.append(row)
  duse = {rate: results.cell(setting, dx.DUSE, rate) for rate in RATES}
  for other in (dx.RANDOM, 'margin', 'forgetting'):
    row = [f'DUSE − {label(other)}, paired']
    for rate in RATES:
      paper = PAPER[(setting, rate)]
      row += [paired_difference(duse[rate], results.cell(setting, other, rate)),
              f'{paper[dx.DUSE][0] - paper[other][0]:+.2f}' if other in paper else '-']
    rows.append(row + [''])
  best = ['DUSE − best baseline, paired']
  for rate in RATES:
    means = {m: np.mean(list(results.cell(setting, m, rate).values()))
             for m in strategies.DUSE_BASELINES if results.cell(setting, m, rate)}
    top = max(means, key=means.get) if means else None
    best += [('-' if top is None else
              f'{paired_difference(duse[rate], results.cell(setting, top, rate))} '
              f'vs {label(top)}'), '-']
  rows.append(best + [''])
  header = ['Method']
  for rate in RATES:
    header += [f'{rate:.0%} ours', f'{rate:.0%} paper']
  header.append('4% added per class, min-max')
  return study_runs.markdown(header, rows)


def rounds_table(results: Results) -> str:
  """Table IV: DUSE with R rounds at 4 % (R = 1: the Margin baseline), imbalance."""
  rows = []
  margin = results.cell(expansion.IMBALANCE, 'margin', 0.04)
  for rounds in (1, 2, 4, 8):
    if rounds == 1:
      cell = margin
    else:
      cell = results.cell(expansion.IMBALANCE, dx.DUSE, 0.04,
                          '' if rounds == dx.PRESETS[PRESET]['rounds'] else f'R = {rounds}')
    rows.append([str(rounds), _mean_std(list(cell.values())),
                 '-' if rounds == 1 else paired_difference(cell, margin)])
  return study_runs.markdown(['R', '4 % ours', 'gain over R = 1, paired'], rows)


PROTOCOL_ROWS = (
    (dx.DUSE, '', 'DUSE, scorer continues across rounds, even budgets (study default)'),
    (dx.DUSE, 'scorer retrained each round', 'DUSE, scorer retrained from scratch each round'),
    (dx.DUSE, 'geometric round budgets', 'DUSE, geometric round budgets'),
    ('forgetting', '', 'Forgetting, never-learned scored T (Toneva; default)'),
    ('forgetting', 'never_learned = 0', 'Forgetting, never-learned scored 0 (DeepCore)'),
    ('grand', '', 'GraNd, one scorer (default)'),
    ('grand', 'runs = 5', 'GraNd averaged over 5 scorers (Eq. 15)'),
)


def protocol_table(results: Results) -> str:
  """The open protocol choices, each beside its default, with the paired difference."""
  rows = []
  for method, variant_, text in PROTOCOL_ROWS:
    row = [text]
    for rate in RATES:
      cell = results.cell(expansion.IMBALANCE, method, rate, variant_)
      default = results.cell(expansion.IMBALANCE, method, rate)
      row += [_mean_std(list(cell.values())),
              '-' if not variant_ else paired_difference(cell, default)]
    rows.append(row)
  return study_runs.markdown(['Protocol', '4 %', 'vs default', '9 %', 'vs default'], rows)


def model_table(by_model: Mapping[str, Results]) -> str:
  """The key rows of both settings with each model of :data:`MODELS` beside the paper's (its
  2D-CNN), the paired gaps, and what each class gained from D_A (min-max over the classes
  and seeds): does the paper's scorer skew a one-shot selection more than the 1D-CNN?"""
  rows = []
  for setting in (expansion.IMBALANCE, expansion.BALANCE):
    for method in KEY_METHODS:
      row = [f'{setting}: {label(method)}']
      for rate in RATES:
        rate_key = None if method == dx.TARGET else rate
        row += [_mean_std(list(by_model[m].cell(setting, method, rate_key).values()))
                for m in MODELS]
        row.append(_paper(PAPER[(setting, rate)].get(method)))
      row += [' / '.join('-' if method == dx.TARGET else
                         by_model[m].added_spread(setting, method, rate) for m in MODELS)
              for rate in RATES]
      rows.append(row)
    for other in (dx.RANDOM, 'margin'):
      row = [f'{setting}: DUSE − {label(other)}, paired']
      for rate in RATES:
        row += [paired_difference(by_model[m].cell(setting, dx.DUSE, rate),
                                  by_model[m].cell(setting, other, rate)) for m in MODELS]
        paper = PAPER[(setting, rate)]
        row.append(f'{paper[dx.DUSE][0] - paper[other][0]:+.2f}' if other in paper else '-')
      rows.append(row + ['', ''])
  header = ['Setting: method']
  for rate in RATES:
    header += [f'{rate:.0%} {m}' for m in MODELS] + [f'{rate:.0%} paper']
  header += [f'{rate:.0%} added per class ({" / ".join(MODELS)})' for rate in RATES]
  return study_runs.markdown(header, rows)


def report(root: Path | str) -> str:
  """The study's tables in Markdown, from the run directories below ``root``."""
  by_model = {model: collect(root, model) for model in MODELS}
  results = by_model[MODELS[0]]
  seconds = {folder: s for r in by_model.values() for folder, s in r.seconds.items()}
  parts = [
      '### Table I: class imbalance (test accuracy %, mean ± std (seeds))',
      main_table(results, expansion.IMBALANCE),
      '### Table II: class balance',
      main_table(results, expansion.BALANCE),
      '### Table IV: rounds of active learning, 4 %, class imbalance',
      rounds_table(results),
      '### Protocol choices, class imbalance',
      protocol_table(results),
      "### The paper's 2D-CNN beside the 1D-CNN: key rows, both settings",
      model_table(by_model),
  ] + study_runs.time_and_skipped(seconds, results.skipped, 'training + selection, s')
  return '\n\n'.join(parts)
