"""``report.md`` for a run directory: the papers' tables, the plots, the settings, the data.

:func:`write_report` reads a finished run's ``results.json`` (written by any of the four
drivers) and writes ``report.md`` beside it, with the PNG plots under ``plots/``:

- every result table in the paper's layout: test accuracy in %, mean ± std over seeds,
  the best mean of each column in bold (as the papers print them);
- plots (``amrjax.reporting.plots``), by experiment:

  ========  ==============================================================================
  duse      per-class counts of the expanded sets (DUSE Fig. 3), accuracy against the
            expansion rate, accuracy per SNR, the confusion matrix of DUSE, t-SNE of the
            expanded sets (Fig. 4; needs scikit-learn)
  foqus     accuracy against the coreset rate, accuracy per SNR, the confusion matrix of
            FoQuS
  cwloss    accuracy per SNR with and without the CW loss, the confusion matrix, the
            confidence weight against SNR and class (AFNet Fig. 6)
  clst      accuracy against the training fraction, accuracy per SNR, the confusion matrix
            of the distilled student
  ========  ==============================================================================

- where the data came from (the real file or the synthetic stand-in), the split sizes, and
  the full configuration.

A plot that cannot be drawn (t-SNE without scikit-learn, say) is named in the report with
the reason instead of failing the report. Drivers call :func:`write_report_logged` at the
end of a run; ``python -m experiments.report RUN_DIR`` rebuilds a report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from amrjax import models
from amrjax.errors import AmrjaxError, ConfigError
from amrjax.fileio import atomic_path, atomic_write
from amrjax.reporting import plots, tables as report_tables

PLOTS = 'plots'
EXPERIMENT_TITLES = {
    'duse': 'DUSE data expansion',
    'foqus': 'FoQuS coreset selection',
    'cwloss': "AFNet's confidence-weighted loss",
    'clst': 'ClST and self-knowledge distillation',
}


def load_results(run_dir: Path | str) -> dict:
  """The ``results.json`` of ``run_dir``; a one-line error when absent or damaged."""
  path = Path(run_dir) / 'results.json'
  if not path.is_file():
    raise ConfigError(f'no results.json in {run_dir}: the run has not finished (run the '
                      'driver again with the same --workdir to resume it)')
  try:
    results = json.loads(path.read_text())
  except ValueError as e:
    raise ConfigError(f'{path} is not valid JSON ({e}); rerun the experiment') from None
  if not isinstance(results, dict):
    raise ConfigError(f'{path} holds a JSON {type(results).__name__}, not the results object '
                      'an amrjax driver writes; give a run directory or rerun the experiment')
  return results


def experiment_of(results: Mapping) -> str:
  """'duse', 'foqus', 'cwloss' or 'clst' (results of older runs carry no name: inferred)."""
  if 'experiment' in results:
    return results['experiment']
  if 'weights' in results:
    return 'cwloss'
  if 'models' in results:
    return 'clst'
  return 'foqus' if 'selection_models' in results.get('config', {}) else 'duse'


def markdown_table(table: Mapping, *, extra: Mapping[str, Mapping[str, str]] | None = None,
                   scale: float = 100.0) -> str:
  """A result table (``{'row_header', 'columns', 'rows': {label: {column: [per seed]}}}``)
  as markdown: 'mean ± std' cells, the best mean of each column in bold.

  ``extra``: more columns of preformatted text, ``{column: {row label: text}}`` (ClST's
  parameters and µs per sample), never bold. A column where fewer than two rows have a
  value, or where all means are equal, has no bold cell; tied best means are all bold.
  """
  columns = list(table['columns'])
  rows = table['rows']
  means = {(label, col): float(np.mean(vals)) for label, cells in rows.items()
           for col, vals in cells.items() if len(vals)}
  best = {}
  for col in columns:
    values = [m for (label, c), m in means.items() if c == col]
    if len(values) >= 2 and not np.allclose(values, values[0]):  # all equal: nothing best
      best[col] = max(values)
  extra = extra or {}
  header = [table.get('row_header', '')] + columns + list(extra)
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for label, cells in rows.items():
    row = [_escape(label)]
    for col in columns:
      text = report_tables.format_cell(cells.get(col, ()), scale=scale)
      if col in best and (label, col) in means and np.isclose(means[(label, col)], best[col]):
        text = f'**{text}**'
      row.append(text)
    row += [extra[name].get(label, '-') for name in extra]
    lines.append('| ' + ' | '.join(row) + ' |')
  return '\n'.join(lines)


def _escape(text: str) -> str:
  return str(text).replace('|', '\\|')


class _Report:
  """Sections and plots being collected for one report."""

  def __init__(self, run_dir: Path):
    self.run_dir = run_dir
    self.tables: list[str] = []
    self.figures: list[str] = []

  def table(self, table: Mapping, **kwargs) -> None:
    self.tables.append(f'### {table["title"]}\n\n{markdown_table(table, **kwargs)}')

  def plot(self, name: str, caption: str, description: str,
           draw: Callable[[Path], Path]) -> None:
    """Draws ``plots/<name>.png`` with ``draw(path)``; a failure is noted, not raised."""
    try:
      with atomic_path(self.run_dir / PLOTS / f'{name}.png') as path:
        draw(path)
    except (ConfigError, ValueError) as e:
      self.figures.append(f'### {caption}\n\nNot drawn: {e}')
      return
    self.figures.append(f'### {caption}\n\n![{caption}]({PLOTS}/{name}.png)\n\n{description}')

  def confusion(self, run: Mapping, what: str, classes: Sequence[str]) -> None:
    """The confusion matrix of one test run (``run['test']['confusion']``)."""
    self.plot('confusion', f'Confusion matrix: {what}, seed {run["seed"]}',
              'Rows: true class, normalised to 1; columns: predicted.',
              lambda p: plots.confusion_matrix(np.asarray(run['test']['confusion']), classes,
                                               path=p))


def _snr_series(runs: Sequence[dict], label_of: Callable[[dict], str | None]) -> dict:
  """``{label: {snr: [accuracy per seed]}}`` from the runs' ``test.per_snr``."""
  out: dict = {}
  for run in runs:
    label = label_of(run)
    if label is None:
      continue
    for snr, acc in run['test']['per_snr'].items():
      out.setdefault(label, {}).setdefault(int(snr), []).append(acc)
  return out


def _rate(rate: float) -> str:
  return f'{rate * 100:g}%'


def _selection_runs(report_: _Report, results: dict, name: str, x_label: str) -> None:
  """The plots DUSE and FoQuS share: accuracy against rate, per SNR, confusion matrix."""
  runs = results['runs']
  classes = results['dataset']['classes']
  labels = results.get('method_labels') or {}
  label = lambda run: labels.get(run['method'], run['method'])
  first_eval = runs[0]['eval_model'] if runs else None
  sel = runs[0].get('selection_model') if runs else None
  same_models = lambda run: (run['eval_model'] == first_eval and
                             run.get('selection_model') == sel)
  rates = sorted({r['rate'] for r in runs if r['rate'] is not None})
  # Rate-less rows (target only, the full training set) are drawn flat across the rates.
  series: dict = {}
  for run in runs:
    if same_models(run):
      for rate in (rates if run['rate'] is None else [run['rate']]):
        series.setdefault(label(run), {}).setdefault(rate, []).append(run['test']['accuracy'])
  top = max(rates) if rates else None
  report_.plot('accuracy_vs_rate', f'Test accuracy against the {x_label}',
               f'One line per method, mean over seeds with the ± std band; model '
               f'{first_eval}. Methods without a rate are drawn flat.',
               lambda p: plots.accuracy_vs_rate(series, path=p,
                                                xlabel=f'{x_label.capitalize()} (%)'))
  at_top = lambda r: label(r) if same_models(r) and r['rate'] in (None, top) else None
  report_.plot('accuracy_per_snr', f'Test accuracy per SNR at {_rate(top) if top else "-"}',
               'Mean over seeds per method (rate-less rows at their only setting).',
               lambda p: plots.accuracy_per_snr(_snr_series(runs, at_top), path=p))
  main = [r for r in runs if r['method'] == name and r['rate'] == top and same_models(r)]
  if main:
    report_.confusion(main[0], f'{label(main[0])} at {_rate(top)}', classes)


def _duse(report_: _Report, results: dict) -> None:
  for table in results['tables']:
    report_.table(table)
  runs = results['runs']
  classes = results['dataset']['classes']
  labels = results.get('method_labels') or {}
  if runs:
    seed, first_eval = runs[0]['seed'], runs[0]['eval_model']
    rates = sorted({r['rate'] for r in runs if r['rate'] is not None})
    rate = min(rates, key=lambda r: abs(r - 0.04)) if rates else None
    counts = {labels.get(r['method'], r['method']): r['class_counts'] for r in runs
              if r['seed'] == seed and r['eval_model'] == first_eval
              and r['rate'] in (None, rate)}
    report_.plot('class_counts', f'Samples per class of the expanded set at '
                 f'{_rate(rate) if rate else "-"}, seed {seed} (DUSE Fig. 3)',
                 'Each method\'s training set after expansion (target set + selected).',
                 lambda p: plots.class_counts(counts, classes, path=p))
  _selection_runs(report_, results, 'duse', 'expansion rate')
  name = results.get('embeddings')
  if name:
    def draw(path):
      with np.load(report_.run_dir / name) as f:
        sets = {str(m): (f[f'emb{i}'], f[f'labels{i}'], f[f'selected{i}'])
                for i, m in enumerate(f['methods'])}
      return plots.tsne(sets, classes, path=path)
    report_.plot('tsne', 't-SNE of the expanded sets (DUSE Fig. 4)',
                 f'Penultimate-layer features of each method\'s expanded set ({name}), '
                 'by the DUSE final model; triangles: target set, dots: selected.', draw)


def _foqus(report_: _Report, results: dict) -> None:
  for table in results['tables']:
    report_.table(table)
  _selection_runs(report_, results, 'foqus', 'coreset rate')


def _cwloss(report_: _Report, results: dict) -> None:
  tables = results['tables']
  for table in tables.values():
    report_.table(table)
  runs = results['runs']
  classes = results['dataset']['classes']
  label = lambda r: models.label(r['model']) + (f' + CW loss (k = {r["k"]})'
                                                 if r['loss'] == 'cw' else '')
  report_.plot('accuracy_per_snr', 'Test accuracy per SNR',
               'One line per trained model, mean over seeds.',
               lambda p: plots.accuracy_per_snr(_snr_series(runs, label), path=p))
  # AFNet with its own weights at the paper's k (Table II's k), else the first CW run.
  config = results.get('config', {})
  weighted = sorted((r for r in runs if r['loss'] == 'cw'),
                    key=lambda r: (r['model'] != config.get('weight_model'),
                                   r['k'] != config.get('table2_k')))
  if weighted:
    report_.confusion(weighted[0], label(weighted[0]), classes)
  weights = [w for w in results.get('weights', []) if 'per_class_snr' in w]
  if weights:
    w = weights[-1]
    mean = {c: {int(s): v for s, v in snrs.items()} for c, snrs in w['per_class_snr'].items()}
    report_.plot('confidence_weights', f'Confidence weight against SNR and class (AFNet '
                 f'Fig. 6): {w["model"]}, k = {w["k"]}, seed {w["seed"]}',
                 'Mean stage-one confidence weight of the training vectors.',
                 lambda p: plots.confidence_by_snr_and_class(mean, path=p))


def _clst(report_: _Report, results: dict) -> None:
  table = results['table']
  report_.table(table, extra={
      'Params': {k: f'{v:,}' for k, v in table.get('params', {}).items()},
      'µs/sample': {k: f'{v:.1f}' for k, v in table.get('us_per_sample', {}).items()}})
  runs = [r for r in results['runs'] if r.get('record', 'accuracy') == 'accuracy']
  labels = results.get('row_labels') or {}
  label = lambda r: labels.get(f'{r["model"]}/{r["role"]}', f'{r["model"]} {r["role"]}')
  classes = results['dataset']['classes']
  series: dict = {}
  for run in runs:
    series.setdefault(label(run), {}).setdefault(run['fraction'], []).append(
        run['test']['accuracy'])
  report_.plot('accuracy_vs_fraction', 'Test accuracy against the training fraction',
               'Mean over seeds with the ± std band.',
               lambda p: plots.accuracy_vs_rate(series, path=p,
                                                xlabel='Training fraction (%)'))
  top = max((r['fraction'] for r in runs), default=None)
  report_.plot('accuracy_per_snr', f'Test accuracy per SNR at {_rate(top) if top else "-"}',
               'Mean over seeds per model.',
               lambda p: plots.accuracy_per_snr(
                   _snr_series(runs, lambda r: label(r) if r['fraction'] == top else None),
                   path=p))
  distilled = [r for r in runs if r['role'].startswith('distilled') and r['fraction'] == top]
  if distilled:
    report_.confusion(distilled[0], f'{label(distilled[0])} at {_rate(top)}', classes)


BUILDERS = {'duse': _duse, 'foqus': _foqus, 'cwloss': _cwloss, 'clst': _clst}


def _data_section(results: dict) -> str:
  origin = results.get('data', {})
  dataset = results.get('dataset', {})
  if origin.get('kind') == 'synthetic':
    source = (f'**synthetic stand-in** (the real file was absent): generator version '
              f'{origin.get("generator_version")}, seed {origin.get("seed")}, '
              f'{origin.get("count_per_cell")} vectors per (class, SNR) cell, cached at '
              f'`{origin.get("path")}`. Numbers on it say whether the code works, not how '
              'the method does on real signals.')
  else:
    source = f'real file `{origin.get("path")}`'
  lines = [f'- Dataset: {dataset.get("name")}, {len(dataset.get("classes", []))} classes, '
           f'length {dataset.get("length")}',
           f'- Source: {source}',
           f'- Vectors read: {origin.get("vectors", "-"):,}' if isinstance(
               origin.get('vectors'), int) else '- Vectors read: -']
  if origin.get('nonfinite_dropped'):
    lines.append(f'- Dropped (NaN or infinite): {origin["nonfinite_dropped"]:,}')
  if origin.get('missing_cells'):
    cells = ', '.join(f'{name} at {snr} dB' for name, snr in origin['missing_cells'])
    lines.append(f'- (Class, SNR) cells absent from the file: {cells}')
  lines.append(f'- Splits: `{json.dumps(results.get("splits"))}`')
  return '\n'.join(lines)


def _config_section(config: Mapping) -> str:
  lines = ['| Setting | Value |', '|---|---|']
  lines += [f'| {k} | `{_escape(json.dumps(v))}` |' for k, v in config.items()]
  return '\n'.join(lines)


def write_report(run_dir: Path | str) -> Path:
  """Writes ``report.md`` and ``plots/*.png`` for the finished run in ``run_dir``."""
  run_dir = Path(run_dir)
  results = load_results(run_dir)
  kind = experiment_of(results)
  if kind not in BUILDERS:
    raise ConfigError(f'{run_dir}/results.json is of an unknown experiment {kind!r}')
  collected = _Report(run_dir)
  try:  # a results.json of the wrong shape (edited, or from another tool) is a user error
    BUILDERS[kind](collected, results)
    finished = time.strftime('%Y-%m-%d %H:%M', time.localtime(
        (run_dir / 'results.json').stat().st_mtime))
    parts = [
        f'# {EXPERIMENT_TITLES[kind]}: {results.get("dataset", {}).get("name")}',
        f'Run directory `{run_dir}`, finished {finished}, '
        f'{results.get("seconds", 0) / 60:.1f} minutes. Accuracy in %, mean ± std over '
        'seeds; the best mean of each column in bold.',
        '## Data\n\n' + _data_section(results),
        '## Results\n\n' + '\n\n'.join(collected.tables),
        '## Plots\n\n' + '\n\n'.join(collected.figures),
        '## Configuration\n\n' + _config_section(results.get('config', {})),
    ]
  except AmrjaxError:
    raise
  except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
    raise ConfigError(f'{run_dir / "results.json"} is not a complete {kind} results file '
                      f'({type(e).__name__}: {e}); rerun the experiment with the same '
                      '--workdir to rewrite it') from None
  path = run_dir / 'report.md'
  with atomic_write(path, 'w') as f:
    f.write('\n\n'.join(parts) + '\n')
  return path


def write_report_logged(run_dir: Path | str, *, log: Callable[[str], None] = print) -> None:
  """:func:`write_report` at the end of a driver: says where the report is, or why none
  was written (the results are complete either way)."""
  try:
    path = write_report(run_dir)
  except Exception as e:  # the results are already written; say so and go on
    log(f'warning: no report.md ({type(e).__name__}: {e}); results.json is complete; '
        f'retry with: python -m experiments.report {run_dir}')
    return
  log(f'report: {path}')
