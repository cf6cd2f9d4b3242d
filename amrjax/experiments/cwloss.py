"""The AFNet CW-loss experiment: Table I (k of the top-k entropy) and Table II (other models).

Data (AFNet Sec. IV-A): every SNR (RML2016.10a: -20..18 dB), split 8:2 into train and test
inside every (class, SNR) cell, with the split fixed across seeds (``split_seed``). Early
stopping needs a validation pool the paper does not describe; ``validation_fraction``
(default 10 %) of every training cell is held out for it and is neither trained on nor
weighted.

For every seed:

- Table I: the weight model (AFNet) is trained with cross-entropy (stage one, the
  "w/o CW loss" row); its eval-mode softmax outputs on the training vectors give the weights
  for each k (Eq. 9-10), and for each k a stage-two model is trained with the CW loss
  (Eq. 11) and tested.
- Table II: every model of ``models`` is trained with cross-entropy (its "w/o" entry) and,
  with the weights of the weight model's stage one at ``table2_k``, with the CW loss.

A model's stage two uses the seed of its stage one and, unless ``warm_start``, starts from the
same initialisation (``amrjax.protocols.cwloss``). Every test is summarised by the average and the
maximum accuracy over SNR levels (``amrjax.protocols.cwloss.snr_summary``). ``run`` writes
``config.json``, ``metrics.jsonl`` (per-epoch metrics), ``runs.jsonl`` (each test result as it
is produced), ``weights/*.npy`` (the weights with the training ids they belong to) and
``results.json`` into the run directory, prints the tables and returns the results.

Run again with the same run directory after a kill, it resumes: results in ``runs.jsonl``
and weights in ``weights.jsonl`` are read back, and an unfinished training continues from
its epoch checkpoint (``checkpoints/``, removed once ``results.json`` is written).
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
from amrjax.protocols import cwloss
from amrjax.reporting import tables as report_tables
from amrjax.seeding import derive_seed
from amrjax.train import TrainConfig, TrainState, diverged_where, evaluate, fit

TABLE1, TABLE2 = 'table1', 'table2'
TABLES = (TABLE1, TABLE2)
CE, CW = 'ce', 'cw'

# Presets. 'quick' is a smoke run of the whole protocol: one seed, 10 vectors per (class,
# SNR) cell of the synthetic stand-in (7 train, 1 validation, 2 test per cell: 1,540 / 220 /
# 440 vectors over all 20 SNRs of RML2016.10a), 3 epochs, batch 32 (with 1,540 vectors, 512
# would give 3 updates per epoch); patience 2 only keeps the best of the 3 epochs. It is too
# short for the Table II models to learn on this stand-in, so it checks the pipeline, not the
# paper's numbers. 'paper' is AFNet Sec. IV: the whole dataset, every SNR, Adam 1e-3, batch
# 512, patience 15, at most 300 epochs. 'study' is 'paper' cut to what a 2-core CPU can
# train in hours: every SNR and the paper's optimiser and batch, but 200 vectors per (class,
# SNR) cell (44,000 vectors, a fifth of the file: 31,680 train / 3,520 validation / 8,800
# test), at most 30 epochs with patience 6, one seed, and Table II's two cheapest models
# (IC-AMCNet, LSTM2). The measurements behind each choice: docs/results.md, "How the
# presets were sized".
PRESETS: dict[str, dict] = {
    'quick': dict(seeds=(0,), epochs=3, patience=2, batch_size=32, synthetic_per_cell=10,
                  max_per_cell=None, eval_batch_size=256),
    'paper': dict(seeds=(0, 1, 2), epochs=300, patience=15, batch_size=512,
                  synthetic_per_cell=None, max_per_cell=None, eval_batch_size=1024),
    'study': dict(seeds=(0,), epochs=30, patience=6, batch_size=512, synthetic_per_cell=None,
                  max_per_cell=200, eval_batch_size=1024, models=('icamcnet', 'lstm2')),
}


@dataclasses.dataclass(frozen=True)
class CwLossConfig(common.DataSettings):
  """Everything that defines a CW-loss run (``config.json`` holds exactly this).

  Attributes:
    dataset: a registered dataset name (AFNet: rml2016.10a).
    preset: the preset the settings came from.
    tables: which of table1 (k sweep on the weight model) and table2 (other models with
      its weights) to run; default both.
    ks: the k values of the top-k entropy for Table I (AFNet: 2,3,4).
    table2_k: the k of the weights Table II trains with (AFNet: 3, its best).
    weight_model: the model whose stage one computes the weights (AFNet: afnet).
    models: Table II's models (AFNet: resnet,cldnn,lstm2,icamcnet).
    seeds: seeds; each trains every model afresh.
    epochs: the most epochs of every training (early stopping may stop sooner).
    patience: early-stopping patience in epochs (AFNet: 15); None trains every epoch.
    batch_size: training batch size (AFNet: 512).
    learning_rate: Adam learning rate (AFNet: 1e-3).
    validation_fraction: share of every training (class, SNR) cell held out for early
      stopping (not given by the paper; default 0.1).
    max_per_cell: vectors kept per (class, SNR) cell before splitting; None keeps every
      one.
    min_snr: keep SNR > min_snr dB; None (AFNet) keeps every SNR.
    split_seed: seeds the subsampling and the splits (the same for every seed).
    warm_start: stage two continues from the stage-one model instead of retraining from
      the same initialisation.
    eval_batch_size: rows per eval-mode pass when scoring and testing.
  """

  PRESETS: ClassVar[Mapping[str, Mapping]] = PRESETS
  EXPERIMENT: ClassVar[str] = 'CW-loss'

  dataset: str = 'rml2016.10a'
  preset: str = 'quick'
  tables: tuple[str, ...] = TABLES
  ks: tuple[int, ...] = (2, 3, 4)
  table2_k: int = cwloss.PAPER_K
  weight_model: str = 'afnet'
  models: tuple[str, ...] = ('resnet', 'cldnn', 'lstm2', 'icamcnet')
  seeds: tuple[int, ...] = PRESETS['quick']['seeds']
  epochs: int = PRESETS['quick']['epochs']
  patience: int | None = PRESETS['quick']['patience']
  batch_size: int = PRESETS['quick']['batch_size']
  learning_rate: float = 1e-3
  validation_fraction: float = 0.1
  max_per_cell: int | None = PRESETS['quick']['max_per_cell']
  min_snr: float | None = None
  split_seed: int = 0
  warm_start: bool = False
  eval_batch_size: int = PRESETS['quick']['eval_batch_size']
  synthetic_per_cell: int | None = PRESETS['quick']['synthetic_per_cell']  # common.DataSettings

  def __post_init__(self):
    tables = tuple(dict.fromkeys(t.strip().lower() for t in self.tables))
    bad = [t for t in tables if t not in TABLES]
    if bad or not tables:
      raise ConfigError(f'unknown table(s) {", ".join(bad) or "(none given)"}; choose from '
                        f'{", ".join(TABLES)}')
    object.__setattr__(self, 'tables', tables)
    object.__setattr__(self, 'ks', tuple(dict.fromkeys(int(k) for k in self.ks)))
    for k in self.ks + (self.table2_k,):
      if k < 2:
        raise ConfigError(f'the top-k entropy needs k >= 2, got k = {k}')
    if TABLE1 in tables and not self.ks:
      raise ConfigError('Table I needs at least one k (--ks=2,3,4)')
    object.__setattr__(self, 'seeds', common.check_seeds(self.seeds))
    common.check_split_seed(self.split_seed)
    object.__setattr__(self, 'weight_model', models.canonical_name(self.weight_model))
    object.__setattr__(self, 'models',
                       tuple(dict.fromkeys(models.canonical_name(m) for m in self.models)))
    if TABLE2 in tables and not self.models:
      raise ConfigError('Table II needs at least one model (--models=resnet,cldnn,...)')
    if self.epochs < 1:
      raise ConfigError(f'epochs must be at least 1, got {self.epochs}')
    if not 0 <= self.validation_fraction < 1:
      raise ConfigError(f'validation fraction must be in [0, 1), got '
                        f'{self.validation_fraction}')
    if self.patience is not None and self.validation_fraction == 0:
      raise ConfigError('early stopping (patience) needs a validation split; set '
                        '--validation_fraction above 0 or --patience=none')
    if self.eval_batch_size < 1:
      raise ConfigError(f'eval batch size must be at least 1, got {self.eval_batch_size}')
    self.train_config()  # validates epochs, batch size, learning rate, patience

  def train_config(self) -> TrainConfig:
    return TrainConfig(self.epochs, self.batch_size, self.learning_rate,
                       patience=self.patience)


def row_label(model: str, loss: str, k: int | None, weight_model: str) -> str:
  """How the per-SNR table names a trained model."""
  name = models.label(model)
  if loss == CE:
    return f'{name} w/o CW loss'
  source = '' if model == weight_model else f', {models.label(weight_model)} weights'
  return f'{name} + CW loss (k = {k}{source})'


def weight_summary(weights: np.ndarray, pool: SignalPool) -> dict:
  """Mean and spread of the weights, and their mean per SNR, per class and per (class, SNR)
  (AFNet Fig. 6)."""
  q = np.quantile(weights, [0.1, 0.5, 0.9])
  return {
      'mean': float(weights.mean()), 'std': float(weights.std()),
      'min': float(weights.min()), 'max': float(weights.max()),
      'q10': float(q[0]), 'median': float(q[1]), 'q90': float(q[2]),
      'per_snr': {int(s): float(weights[pool.snr == s].mean()) for s in np.unique(pool.snr)},
      'per_class': {name: float(weights[pool.y == c].mean())
                    for c, name in enumerate(pool.classes) if np.any(pool.y == c)},
      'per_class_snr': {name: {int(s): float(weights[(pool.y == c) & (pool.snr == s)].mean())
                               for s in np.unique(pool.snr[pool.y == c])}
                        for c, name in enumerate(pool.classes) if np.any(pool.y == c)},
  }


def _kept_epoch(history: Sequence[dict], early_stopping: bool) -> int:
  """The epoch whose state ``fit`` returned: the lowest validation loss with early
  stopping (the first on a tie, as ``fit`` keeps it), else the last."""
  if early_stopping:
    return min(history, key=lambda h: h['val_loss'])['epoch']
  return history[-1]['epoch']


def run(config: CwLossConfig, workdir: Path | str, *,
        log: Callable[[str], None] = print, write_report: bool = True) -> dict:
  """Runs the experiment of ``config``, writes the run directory, returns the results;
  ``write_report``: also write ``report.md`` and its plots (``amrjax.reporting.run_report``)."""
  t_start = time.time()
  # The data and the splits are checked before the run directory is written, so a run
  # refused here leaves no config.json that the corrected command would clash with.
  data = common.load_dataset(config, log)
  spec = data.spec
  used_ks = ((config.ks if TABLE1 in config.tables else ()) +
             ((config.table2_k,) if TABLE2 in config.tables else ()))
  for k in used_ks:
    if k > spec.num_classes:
      raise ConfigError(f'k = {k} exceeds the {spec.num_classes} classes of {spec.name}')
  splits = splits_lib.train_validation_test(
      data.pool, train_fraction=spec.train_fraction,
      validation_fraction=config.validation_fraction, min_snr=config.min_snr,
      max_per_cell=config.max_per_cell, split_seed=config.split_seed)
  if runner.fits_in_memory(splits):
    splits = splits.in_memory()
  log(f'train {len(splits.train):,}  validation {splits.summary()["validation"]:,}  '
      f'test {len(splits.test):,} vectors, SNR {splits.test.snr.min()}..'
      f'{splits.test.snr.max()} dB')
  # A different configuration in this folder is refused. In the same configuration's
  # folder, the tested cells of runs.jsonl and the weights of weights.jsonl are read back
  # and a training is continued from its epoch checkpoint (checkpoints/).
  run = runner.Run(config, workdir, key=_cell_key, data=data, log=log,
                   started=t_start)
  run_dir = run.dir
  prior_weights = {(w['seed'], w['model'], w['k']): w
                   for w in run_dir.read_jsonl('weights.jsonl', log=log)}
  run_dir.write_ids('weights/train-ids.npy', splits.train.ids)

  needed = ([config.weight_model] +
            (list(config.models) if TABLE2 in config.tables else []))
  nets = {name: models.get(name, spec.num_classes, spec.length) for name in needed}
  train_config = config.train_config()
  weight_stats: list[dict] = []

  for seed in config.seeds:
    stage_one: dict[str, TrainState] = {}
    done: dict[tuple, dict] = {}
    weights_of: dict[int, np.ndarray] = {}

    def train(model_name: str, loss: str, k: int | None = None,
              weights: np.ndarray | None = None) -> tuple[TrainState, list[dict]]:
      net = nets[model_name]
      train_seed = derive_seed(seed, 'cwloss', model_name)
      tag = dict(seed=seed, model=model_name, loss=loss, k=k)
      on_epoch = lambda m: run_dir.log_metrics({**tag, **m})
      checkpoint = run_dir.checkpoint_folder(
          f'{model_name}-{loss}' + ('' if k is None else f'-k{k}') + f'-seed{seed}')
      where = f'seed {seed}, {row_label(model_name, loss, k, config.weight_model)}'
      if loss == CE:
        with diverged_where(where):
          return fit(net, splits.train, train_config, seed=train_seed,
                     validation=splits.validation, on_epoch=on_epoch, checkpoint=checkpoint)
      with diverged_where(where):  # stage two of AFNet's scheme, from the CE cell's stage one
        result = cwloss.train_two_stage(
            net, splits.train, train_config, seed=train_seed, weights=weights,
            validation=splits.validation, warm_start=config.warm_start,
            stage_one=stage_one_state(model_name), checkpoint=checkpoint,
            on_epoch=lambda stage, m: on_epoch(m))
      return result.stage_two, result.stage_two_history

    def train_and_test(model_name: str, loss: str, k: int | None = None,
                       weights: np.ndarray | None = None) -> dict:
      key = (model_name, loss, k)
      if key in done:
        return done[key]
      label = row_label(model_name, loss, k, config.weight_model)
      if (seed, *key) in run.prior:  # tested before an interruption
        record = done[key] = run.reuse((seed, *key))
        log(f'[seed {seed}] {label}: done before the interruption (runs.jsonl)')
        return record
      t0 = time.time()
      state, history = train(model_name, loss, k, weights)
      if loss == CE:
        stage_one[model_name] = state
      result = evaluate(nets[model_name], state.variables, splits.test,
                        batch_size=config.eval_batch_size)
      summary = cwloss.snr_summary(result.per_snr)
      record = dict(seed=seed, model=model_name, loss=loss, k=k,
                    weights_from=None if loss == CE else config.weight_model,
                    warm_start=config.warm_start and loss == CW,
                    train_size=len(splits.train), epochs_trained=len(history),
                    kept_epoch=_kept_epoch(history, config.patience is not None),
                    average_accuracy=summary.average, max_accuracy=summary.maximum,
                    best_snr=summary.best_snr,
                    test=result.to_json(), seconds=time.time() - t0)
      done[key] = run.record(record)
      log(f'[seed {seed}] {label}: average {summary.average:.2%}, max {summary.maximum:.2%} '
          f'(at {summary.best_snr} dB) over {summary.levels} SNRs; {len(history)} epochs, '
          f'kept {record["kept_epoch"]} ({record["seconds"]:.0f} s)')
      return record

    def stage_one_state(model_name: str) -> TrainState:
      """The stage-one model (restored from its checkpoint when tested before)."""
      if model_name not in stage_one:
        train_and_test(model_name, CE)
      if model_name not in stage_one:
        stage_one[model_name], _ = train(model_name, CE)
      return stage_one[model_name]

    def weights_for(k: int) -> np.ndarray:
      if k in weights_of:
        return weights_of[k]
      name = f'weights/{config.weight_model}-seed{seed}-k{k}.npy'
      if (seed, config.weight_model, k) in prior_weights and run_dir.file(name).is_file():
        weights_of[k] = np.load(run_dir.file(name))  # computed before an interruption
        weight_stats.append(prior_weights[(seed, config.weight_model, k)])
        return weights_of[k]
      state = stage_one_state(config.weight_model)
      w = cwloss.confidence_weights(nets[config.weight_model], state.variables,
                                    splits.train, k, batch_size=config.eval_batch_size)
      weights_of[k] = w
      run_dir.write_npy(name, w)
      stats = weight_summary(w, splits.train)
      weight_stats.append(dict(seed=seed, model=config.weight_model, k=k, **stats))
      run_dir.append_jsonl('weights.jsonl', weight_stats[-1])
      log(f'[seed {seed}] {models.label(config.weight_model)} weights (k = {k}): mean '
          f'{stats["mean"]:.3f}, median {stats["median"]:.3f}, 10-90 % '
          f'{stats["q10"]:.3f}..{stats["q90"]:.3f}; mean at the lowest / highest SNR '
          f'{stats["per_snr"][min(stats["per_snr"])]:.3f} / '
          f'{stats["per_snr"][max(stats["per_snr"])]:.3f}')
      return w

    if TABLE1 in config.tables:
      train_and_test(config.weight_model, CE)
      for k in config.ks:
        train_and_test(config.weight_model, CW, k, weights_for(k))
    if TABLE2 in config.tables:
      w = weights_for(config.table2_k)
      for model_name in config.models:
        train_and_test(model_name, CE)
        train_and_test(model_name, CW, config.table2_k, w)

  tables = result_tables(config, spec.name, data.origin['kind'], run.records)
  return run.finish('cwloss', data, splits.summary(), runner.text_tables(tables.values()),
                    write_report=write_report, tables=tables, weights=weight_stats)


AVG, MAX = 'Average acc', 'Max acc'
TABLE2_COLUMNS = ('Avg w/o CW', 'Avg + CW', 'Δ Avg', 'Max w/o CW', 'Max + CW', 'Δ Max')


def _cell_key(record: dict) -> tuple:
  """(seed, model, loss, k) of a ``runs.jsonl`` record."""
  return (record['seed'], record['model'], record['loss'], record['k'])


def _find(runs: Sequence[dict], seed: int, model: str, loss: str, k: int | None = None):
  for r in runs:
    if (r['seed'], r['model'], r['loss']) == (seed, model, loss) and (
        loss == CE or r['k'] == k):
      return r
  return None


def result_tables(config: CwLossConfig, dataset: str, data_kind: str,
                  runs: Sequence[dict]) -> dict[str, dict]:
  """The printed tables, by name (``'table1'``, ``'table2'``, ``'per_snr'``).

  Each is ``{'title', 'row_header', 'columns', 'rows': {label: {column: [value per seed]}},
  'summary': {label: {column: {'mean', 'std', 'n'}}}}``; values are accuracies (fractions;
  the Δ columns are per-seed differences, CW minus w/o).
  """
  seeds = f'mean ± std over {len(config.seeds)} seed(s)'
  where = f'{dataset} ({data_kind} data)'
  snrs = sorted({int(s) for r in runs for s in r['test']['per_snr']})
  span = f'{snrs[0]}..{snrs[-1]} dB' if snrs else 'no SNRs'
  weight_label = models.label(config.weight_model)
  tables = {}
  if TABLE1 in config.tables:
    rows = {'w/o CW loss': {AVG: [], MAX: []}}
    rows.update({f'k = {k}': {AVG: [], MAX: []} for k in config.ks})
    for seed in config.seeds:
      for label, loss, k in ([('w/o CW loss', CE, None)] +
                             [(f'k = {k}', CW, k) for k in config.ks]):
        r = _find(runs, seed, config.weight_model, loss, k)
        if r is not None:
          rows[label][AVG].append(r['average_accuracy'])
          rows[label][MAX].append(r['max_accuracy'])
    tables[TABLE1] = _table(
        f'Table I: {weight_label} with the CW loss on {where}, accuracy % over SNRs {span} '
        f'(average and maximum over SNR levels), {seeds}', 'Loss', [AVG, MAX], rows)
  if TABLE2 in config.tables:
    rows = {}
    for model in config.models:
      cells = {c: [] for c in TABLE2_COLUMNS}
      for seed in config.seeds:
        base = _find(runs, seed, model, CE)
        cw = _find(runs, seed, model, CW, config.table2_k)
        if base is None or cw is None:
          continue
        for metric, (plain_col, cw_col, delta_col) in (
            ('average_accuracy', TABLE2_COLUMNS[:3]), ('max_accuracy', TABLE2_COLUMNS[3:])):
          cells[plain_col].append(base[metric])
          cells[cw_col].append(cw[metric])
          cells[delta_col].append(cw[metric] - base[metric])
      rows[models.label(model)] = cells
    tables[TABLE2] = _table(
        f'Table II: models retrained with {weight_label}\'s weights (k = {config.table2_k}) '
        f'on {where}, accuracy % over SNRs {span}, {seeds}', 'Model', list(TABLE2_COLUMNS),
        rows)
  rows = {}
  for r in runs:
    label = row_label(r['model'], r['loss'], r['k'], config.weight_model)
    cells = rows.setdefault(label, {})
    for snr, acc in r['test']['per_snr'].items():
      cells.setdefault(str(int(snr)), []).append(acc)
  # One number per cell: the seeds' mean (the spread would make 20 columns unreadable).
  means = {label: {c: [float(np.mean(v))] for c, v in cells.items()}
           for label, cells in rows.items()}
  # Its summary keeps every seed's value (mean, std and n over the seeds).
  tables['per_snr'] = _table(
      f'Test accuracy % per SNR (dB) on {where}, mean over {len(config.seeds)} seed(s)',
      'Model', [str(s) for s in snrs], means, summary_of=rows)
  return tables


def _table(title: str, row_header: str, columns: list[str], rows: dict,
           summary_of: dict | None = None) -> dict:
  """A table record; its summary is of ``summary_of`` when given, else of ``rows``."""
  return {'title': title, 'row_header': row_header, 'columns': columns, 'rows': rows,
          'summary': report_tables.summarize(rows if summary_of is None else summary_of)}
