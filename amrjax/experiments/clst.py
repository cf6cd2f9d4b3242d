"""The ClST experiment: a ClST teacher, its students alone and distilled, on 3 % and 5 %.

Hou et al. 2024 ("ClST: A Convolutional Transformer Framework for Automatic Modulation
Recognition by Knowledge Distillation", arXiv:2312.17446): ClST is trained on a random
3 % or 5 % of the data, the remaining vectors are split into validation and test, and the
trained ClST teaches KD-CNN and KD-MobileNet by signal knowledge distillation (SKD,
``amrjax.protocols.distill``). Adam, learning rate 0.01, batch 256, cosine decay, 100 epochs.

For every seed and training fraction:

1. split the dataset (:func:`few_shot_split`): the fraction of every (class, SNR) cell to
   train, the rest halved into validation and test per cell;
2. train the teacher (ClST) and test it;
3. for every student: train it alone (cross-entropy) and distilled from the teacher (the
   SKD loss), from the same initialisation, batch order and settings, and test both.

Each model's parameter count and per-sample inference time (``amrjax.protocols.distill``)
is measured once. ``run`` writes ``config.json``, ``metrics.jsonl`` (every epoch),
``runs.jsonl`` (each result as it is produced) and ``results.json`` into the run directory
and prints the table:
rows teacher, each student alone and distilled; columns test accuracy per fraction,
parameters and microseconds per sample. Run again with the same run directory after a
kill, it resumes: results and timings in ``runs.jsonl`` are read back, and an unfinished
training continues from its epoch checkpoint (``checkpoints/``, removed once
``results.json`` is written).

Choices the paper leaves open (as far as the summary tells):
- "3 %" is of the whole dataset (after the optional SNR filter), drawn per (class, SNR)
  cell (round(n * fraction) per cell), and all SNRs are used (``min_snr = None``);
- the remaining vectors are split validation : test = ``validation_share`` : rest per cell
  (default 1 : 1);
- every seed draws its own split; teacher and students of one seed and fraction share it;
- the validation set is only monitored (val loss and accuracy per epoch in
  ``metrics.jsonl``); the final-epoch model is tested (the cosine schedule ends at a
  learning rate of 0), with no best-epoch selection or early stopping;
- the students are trained with the teacher's optimiser settings and ``epochs`` (the paper
  names separate SKD learning rates but gives no values);
- the SKD loss: ``amrjax.protocols.distill``'s reading of the three weights (a, b, c) as label,
  soft-target and feature terms; ``feature_weights`` distils once per feature weight c
  (0 is two-term Hinton KD), so both readings are measured from the same teacher.
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
from amrjax.experiments.runner import percent_label as fraction_label
from amrjax.protocols import distill as distill_lib
from amrjax.reporting import tables as report_tables
from amrjax.seeding import derive_seed
from amrjax.train import TrainConfig, diverged_where, fit, predict_logits
from amrjax.train.loop import COSINE, SCHEDULES, accuracy_report

TEACHER, ALONE, DISTILLED = 'teacher', 'alone', 'distilled'

# Presets. 'paper' is ClST Sec. IV: 3 % and 5 %, Adam 0.01, batch 256, cosine decay, 100
# epochs; every vector of the dataset. 'quick' runs in minutes on a 2-core CPU: a
# 22,000-vector stand-in (100 per cell), one fraction (5 %: 1,100 training vectors), 10
# epochs at batch 64 (batch 256 would give 5 steps per epoch), 5 validation and 5 test
# vectors per cell, no per-epoch validation. Its learning rate is the paper's 0.01 scaled to
# batch 64 by the linear scaling rule (Goyal et al. 2017): 0.0025, as ClST does not learn
# in 10 epochs at 0.01. 'paper' and 'study' distil each student twice: two-term KD and the
# three-term SKD (feature weight 1). 'study' is 'paper' cut to fit hours on a 2-core CPU:
# the paper's training sets (3 % and 5 % of all 220,000 stand-in vectors: 6,600 and
# 11,000), but 30 epochs instead of 100, 100 validation and 100 test vectors per (class,
# SNR) cell (22,000 each, instead of about 107,000), no per-epoch validation, and Adam at
# 0.001, not the paper's 0.01, at which the ClST teacher learned less than KD-CNN alone and
# had nothing to teach. The measurements behind each choice: docs/results.md, "How the
# presets were sized".
PRESETS: dict[str, dict] = {
    'quick': dict(fractions=(0.05,), seeds=(0,), epochs=10, teacher_epochs=10, batch_size=64,
                  learning_rate=0.0025, synthetic_per_cell=100, eval_per_cell=5,
                  validate=False, inference_repeats=5),
    'paper': dict(fractions=(0.03, 0.05), seeds=(0,), epochs=100, teacher_epochs=100,
                  batch_size=256, learning_rate=0.01, synthetic_per_cell=None,
                  eval_per_cell=None, validate=True, inference_repeats=10,
                  feature_weights=(0.0, 1.0)),
    'study': dict(fractions=(0.03, 0.05), seeds=(0,), epochs=30, teacher_epochs=30,
                  batch_size=256, learning_rate=0.001, synthetic_per_cell=None,
                  eval_per_cell=100, validate=False, inference_repeats=10,
                  feature_weights=(0.0, 1.0)),
}


@dataclasses.dataclass(frozen=True)
class ClstConfig(common.DataSettings):
  """Everything that defines a ClST/SKD run (``config.json`` holds exactly this).

  Attributes:
    dataset: a registered dataset name.
    preset: the preset the settings came from.
    fractions: training fractions of the dataset, drawn per (class, SNR) cell (0.03 = 3 %;
      paper: 0.03,0.05; quick: 0.05).
    teacher: the teacher model (default clst).
    students: the student models (default kd_cnn,kd_mobilenet).
    seeds: seeds; each draws its own split and trains every model.
    epochs: student epochs, alone and distilled (paper: 100; quick: 10).
    teacher_epochs: ClST teacher epochs (paper: 100; quick: 10).
    batch_size: training batch size (paper: 256; quick: 64).
    learning_rate: Adam peak learning rate, cosine-decayed to 0 by the default ``schedule``
      (paper: 0.01; quick: 0.0025, the paper's rate scaled to batch 64).
    schedule: the learning-rate schedule of every training: cosine (the default; decay to 0)
      or constant.
    hard_weight: SKD weight a of the cross-entropy with the labels
      (``amrjax.protocols.distill``; default 0.1; not given in the paper).
    soft_weight: SKD weight b of the T^2-scaled KL to the teacher (default 0.9; not given
      in the paper).
    temperature: SKD softmax temperature T (default 4; not given in the paper).
    feature_weights: SKD feature-term weights c; each student is distilled once per value
      (0: two-term Hinton KD; > 0: the three-term SKD with the hint projection; quick: 0;
      paper and study: 0,1). Not given in the paper.
    validation_share: validation share of the vectors not trained on (rest: test).
    eval_per_cell: at most this many validation and this many test vectors per
      (class, SNR) cell; None keeps the whole remainder (quick: 5).
    validate: evaluate the validation set after every epoch (val loss and accuracy; paper
      preset: yes; quick: no).
    min_snr: keep vectors with SNR above this (dB); None (the default) keeps all SNRs.
    eval_batch_size: rows per forward call when testing and computing teacher logits
      (the last batch is padded to it).
    inference_batch_size: batch size of the per-sample inference timing (default 256).
    inference_repeats: timed calls of the inference timing; the median is reported
      (quick: 5, paper: 10).
  """

  PRESETS: ClassVar[Mapping[str, Mapping]] = PRESETS
  EXPERIMENT: ClassVar[str] = 'ClST'

  dataset: str = 'rml2016.10a'
  preset: str = 'quick'
  fractions: tuple[float, ...] = (0.03, 0.05)
  teacher: str = 'clst'
  students: tuple[str, ...] = ('kd_cnn', 'kd_mobilenet')
  seeds: tuple[int, ...] = PRESETS['quick']['seeds']
  epochs: int = PRESETS['quick']['epochs']
  teacher_epochs: int = PRESETS['quick']['teacher_epochs']
  batch_size: int = PRESETS['quick']['batch_size']
  learning_rate: float = PRESETS['quick']['learning_rate']
  schedule: str = COSINE
  hard_weight: float = distill_lib.DistillationLoss.hard_weight
  soft_weight: float = distill_lib.DistillationLoss.soft_weight
  temperature: float = distill_lib.DistillationLoss.temperature
  feature_weights: tuple[float, ...] = (0.0,)
  validation_share: float = 0.5
  eval_per_cell: int | None = PRESETS['quick']['eval_per_cell']
  validate: bool = PRESETS['quick']['validate']
  min_snr: float | None = None
  eval_batch_size: int = 256
  inference_batch_size: int = 256
  inference_repeats: int = PRESETS['quick']['inference_repeats']
  synthetic_per_cell: int | None = PRESETS['quick']['synthetic_per_cell']  # common.DataSettings

  def __post_init__(self):
    if not self.fractions or not self.students:
      raise ConfigError('give at least one training fraction and one student')
    object.__setattr__(self, 'seeds', common.check_seeds(self.seeds))
    for fraction in self.fractions:
      if not 0 < fraction < 1:
        raise ConfigError(f'training fraction must be in (0, 1), got {fraction}; write 3 % '
                          'as 0.03')
    if len(set(self.fractions)) != len(self.fractions):
      raise ConfigError(f'training fractions repeat: {self.fractions}')
    if not 0 < self.validation_share < 1:
      raise ConfigError(f'validation share must be in (0, 1), got {self.validation_share}')
    if self.epochs < 1 or self.teacher_epochs < 1:
      raise ConfigError('epochs and teacher_epochs must be at least 1')
    if min(self.eval_batch_size, self.inference_batch_size, self.inference_repeats) < 1:
      raise ConfigError('eval_batch_size, inference_batch_size and inference_repeats must be '
                        'at least 1')
    if self.eval_per_cell is not None and self.eval_per_cell < 1:
      raise ConfigError(f'eval_per_cell must be at least 1 (or None), got '
                        f'{self.eval_per_cell}')
    if self.schedule not in SCHEDULES:
      raise ConfigError(f'unknown learning-rate schedule {self.schedule!r}; choose one of '
                        f'{", ".join(SCHEDULES)}')
    object.__setattr__(self, 'feature_weights', tuple(float(c) for c in self.feature_weights))
    if not self.feature_weights or len(set(self.feature_weights)) != len(self.feature_weights):
      raise ConfigError(f'give distinct feature weights (0 for two-term KD), got '
                        f'{self.feature_weights}')
    # Build the losses and the training settings once, so bad values fail here.
    for c in self.feature_weights:
      self.distillation_loss(c)
    TrainConfig(self.epochs, self.batch_size, self.learning_rate, self.schedule)
    object.__setattr__(self, 'teacher', models.canonical_name(self.teacher))
    students = tuple(dict.fromkeys(models.canonical_name(s) for s in self.students))
    object.__setattr__(self, 'students', students)

  def distillation_loss(self, feature_weight: float) -> distill_lib.DistillationLoss:
    return distill_lib.DistillationLoss(self.hard_weight, self.soft_weight, self.temperature,
                                        feature_weight)

  @property
  def student_training(self) -> TrainConfig:
    return TrainConfig(self.epochs, self.batch_size, self.learning_rate, self.schedule)

  @property
  def teacher_training(self) -> TrainConfig:
    return TrainConfig(self.teacher_epochs, self.batch_size, self.learning_rate,
                       self.schedule)

  def row_label(self, model: str, role: str) -> str:
    name = models.label(model)
    if role.startswith(DISTILLED) and role != DISTILLED:
      return f'{name} distilled (SKD, feature weight {feature_weight_of(role):g})'
    return {TEACHER: f'{name} (teacher)', ALONE: f'{name} alone',
            DISTILLED: f'{name} distilled'}[role]

  def row_keys(self) -> list[tuple[str, str]]:
    """(model, role) of every table row, in order."""
    return [(self.teacher, TEACHER)] + [
        (s, role) for s in self.students
        for role in (ALONE,) + tuple(distilled_role(c) for c in self.feature_weights)]


def distilled_role(feature_weight: float) -> str:
  """The role of a student distilled with SKD feature weight c: ``'distilled'`` for
  two-term KD (c = 0), ``'distilled-c<c>'`` otherwise."""
  return DISTILLED if feature_weight == 0 else f'{DISTILLED}-c{feature_weight:g}'


def feature_weight_of(role: str) -> float:
  """The inverse of :func:`distilled_role`."""
  return 0.0 if role == DISTILLED else float(role.removeprefix(f'{DISTILLED}-c'))


def run(config: ClstConfig, workdir: Path | str, *,
        log: Callable[[str], None] = print, write_report: bool = True) -> dict:
  """Runs the experiment of ``config``, writes the run directory, returns the results;
  ``write_report``: also write ``report.md`` and its plots (``amrjax.reporting.run_report``)."""
  t_start = time.time()
  data = common.load_dataset(config, log)
  spec = data.spec
  # Every split is made (and checked) before the run directory is written, so a run refused
  # here leaves no config.json that the corrected command would clash with.
  splits = {(seed, fraction): splits_lib.few_shot_split(
      data.pool, fraction, seed=derive_seed(seed, 'split', fraction),
      validation_share=config.validation_share, min_snr=config.min_snr,
      eval_per_cell=config.eval_per_cell)
            for seed in config.seeds for fraction in config.fractions}
  # A different configuration in this folder is refused. In the same configuration's
  # folder the results of runs.jsonl are read back; a (seed, fraction) with all of its
  # results is skipped, and in one with some, each training is continued (or restored when
  # it had finished) from its epoch checkpoint.
  run = runner.Run(config, workdir, key=_record_key, data=data, log=log,
                   started=t_start)
  run_dir = run.dir
  prior_complexity = {key[1]: r for key, r in run.prior.items() if key[0] == 'complexity'}
  built = {name: models.get(name, spec.num_classes, spec.length)
           for name in (config.teacher,) + config.students}
  teacher = built[config.teacher]
  complexity: dict[str, dict] = {  # measured before an interruption
      name: {k: r[k] for k in ('label', 'params', 'inference')}
      for name, r in prior_complexity.items()}
  split_sizes = {}

  def measure(name, state):
    if name in complexity:
      return
    timing = distill_lib.inference_time(built[name], state.variables, length=spec.length,
                                        batch_size=config.inference_batch_size,
                                        repeats=config.inference_repeats)
    complexity[name] = {'label': models.label(name),
                        'params': models.parameter_count(state.variables),
                        'inference': timing.to_json()}
    run_dir.append_jsonl('runs.jsonl', {'record': 'complexity', 'model': name,
                                        **complexity[name]})
    log(f'{models.label(name)}: {complexity[name]["params"]:,} parameters, '
        f'{timing.microseconds_per_sample:.1f} µs per sample (eval forward, batch '
        f'{timing.batch_size}, median of {timing.repeats})')

  for seed in config.seeds:
    for fraction in config.fractions:
      where = f'[seed {seed}, {fraction_label(fraction)}]'
      split = splits[seed, fraction]
      # The training set is read into memory by every training; the held-out sets, read
      # after every epoch, are held here.
      if runner.fits_in_memory(split.validation, split.test):
        split = split.held_out_in_memory()
      split_sizes[f'{seed}-{fraction:g}'] = split.summary()
      log(f'{where} train {len(split.train):,}  validation {len(split.validation):,}  '
          f'test {len(split.test):,}')
      validation = split.validation if config.validate else None
      keys = [('accuracy', seed, fraction, m, r) for m, r in config.row_keys()]
      if all(k in run.prior for k in keys):
        for k in keys:
          run.reuse(k)
        log(f'{where} done before the interruption (runs.jsonl)')
        continue

      def train_and_test(name, role, train_fn, teacher_logits=None):
        t0 = time.time()
        tag = dict(seed=seed, fraction=fraction, model=name, role=role)
        checkpoint = run_dir.checkpoint_folder(f'{name}-{role}-seed{seed}-f{fraction:g}')
        with diverged_where(f'{where} {config.row_label(name, role)}'):
          state, history = train_fn(lambda m: run_dir.log_metrics({**tag, **m}), checkpoint)
        logits = predict_logits(built[name], state.variables, split.test,
                                batch_size=config.eval_batch_size)
        predicted = np.argmax(logits, -1)
        result = accuracy_report(predicted, split.test)
        record = dict(record='accuracy', seed=seed, fraction=fraction, model=name,
                      role=role, train_size=len(split.train),
                      validation_size=len(split.validation), test_size=len(split.test),
                      epochs=len(history), final_epoch=history[-1], test=result.to_json())
        note = ''
        if teacher_logits is not None:
          agreement = float(np.mean(predicted == np.argmax(teacher_logits, -1)))
          record['teacher_agreement'] = agreement
          note = f', agrees with the teacher on {agreement:.1%} of test'
        record['seconds'] = time.time() - t0
        if run.reuse(('accuracy', seed, fraction, name, role)):  # tested before a kill
          return state, logits
        run.record(record)
        log(f'{where} {config.row_label(name, role)}: test accuracy {result.accuracy:.2%} '
            f'(train accuracy {history[-1]["accuracy"]:.2%}{note}; '
            f'{record["seconds"]:.0f} s)')
        return state, logits

      teacher_state, teacher_logits = train_and_test(
          config.teacher, TEACHER,
          lambda on_epoch, checkpoint: fit(
              teacher, split.train, config.teacher_training,
              seed=derive_seed(seed, 'teacher', fraction), validation=validation,
              on_epoch=on_epoch, checkpoint=checkpoint))
      measure(config.teacher, teacher_state)
      for name in config.students:
        # Alone and distilled start from the same initialisation and see the same batches.
        student_seed = derive_seed(seed, 'student', name, fraction)
        student = built[name]
        state, _ = train_and_test(
            name, ALONE,
            lambda on_epoch, checkpoint: fit(
                student, split.train, config.student_training, seed=student_seed,
                validation=validation, on_epoch=on_epoch, checkpoint=checkpoint),
            teacher_logits)
        measure(name, state)
        for c in config.feature_weights:
          train_and_test(
              name, distilled_role(c),
              lambda on_epoch, checkpoint, c=c: distill_lib.distill(
                  teacher, teacher_state.variables, student, split.train,
                  config.student_training, seed=student_seed,
                  loss=config.distillation_loss(c), validation=validation,
                  on_epoch=on_epoch, eval_batch_size=config.eval_batch_size,
                  checkpoint=checkpoint),
              teacher_logits)

  table = result_table(config, spec.name, data.origin['kind'], run.records, complexity)
  return run.finish(
      'clst', data, split_sizes, [format_table(table)], write_report=write_report,
      row_labels={f'{m}/{r}': config.row_label(m, r) for m, r in config.row_keys()},
      models=complexity, table=table)


def _record_key(record: dict) -> tuple:
  """('accuracy', seed, fraction, model, role) or ('complexity', model) of a ``runs.jsonl``
  record."""
  if record['record'] == 'complexity':
    return 'complexity', record['model']
  return 'accuracy', record['seed'], record['fraction'], record['model'], record['role']


def result_table(config: ClstConfig, dataset: str, data_kind: str, runs: Sequence[dict],
                 complexity: dict[str, dict]) -> dict:
  """The printed table as data.

  ``{'title', 'row_header', 'columns', 'rows': {label: {fraction column: [accuracy per
  seed]}}, 'summary': {label: {column: {'mean', 'std', 'n'}}}, 'params': {label: int},
  'us_per_sample': {label: float}}``.
  """
  columns = [fraction_label(f) for f in config.fractions]
  rows: dict[str, dict[str, list]] = {config.row_label(m, r): {} for m, r in config.row_keys()}
  params, us_per_sample = {}, {}
  for model, role in config.row_keys():
    label = config.row_label(model, role)
    if model in complexity:
      params[label] = complexity[model]['params']
      us_per_sample[label] = complexity[model]['inference']['microseconds_per_sample']
  for record in runs:
    label = config.row_label(record['model'], record['role'])
    rows[label].setdefault(fraction_label(record['fraction']), []).append(
        record['test']['accuracy'])
  summary = report_tables.summarize(rows)
  timing = next(iter(complexity.values()))['inference'] if complexity else None
  how = ('' if timing is None else
         f'; µs/sample: eval forward at batch {timing["batch_size"]}, median of '
         f'{timing["repeats"]}, on {timing["device"]}')
  title = (f'ClST and SKD on {dataset} ({data_kind} data): test accuracy % by training '
           f'fraction, mean ± std over {len(config.seeds)} seed(s){how}')
  return {'title': title, 'row_header': 'Model', 'columns': columns, 'rows': rows,
          'summary': summary, 'params': params, 'us_per_sample': us_per_sample}


def format_table(table: dict) -> str:
  """The table of :func:`result_table` as fixed-width text: accuracy columns, then
  'Params' and 'µs/sample'."""
  header = [table['row_header']] + list(table['columns']) + ['Params', 'µs/sample']
  cells = []
  for label, values in table['rows'].items():
    params = table['params'].get(label)
    micro = table['us_per_sample'].get(label)
    cells.append([label] + [report_tables.format_cell(values.get(c, ())) for c in table['columns']]
                 + ['-' if params is None else f'{params:,}',
                    '-' if micro is None else f'{micro:.1f}'])
  return report_tables.text_grid(header, cells, title=table['title'])
