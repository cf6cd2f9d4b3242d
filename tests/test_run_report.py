"""report.md from a tiny hand-written run directory: tables, plots, data source, errors."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from amrjax.errors import ConfigError
from amrjax.reporting import plots, run_report
from tests.helpers import one_line_error, run_driver, run_script

CLASSES = ['BPSK', 'QPSK', 'FM']


def _test_result(rng, accuracy):
  confusion = rng.integers(0, 5, (3, 3))
  return {'accuracy': accuracy, 'count': 30, 'per_class': {c: accuracy for c in CLASSES},
          'per_snr': {'12': accuracy - 0.05, '14': accuracy + 0.05},
          'confusion': confusion.tolist()}


def _duse_run_dir(path: Path) -> Path:
  """A finished two-seed, two-rate DUSE run as the driver writes it, with made-up numbers."""
  rng = np.random.default_rng(0)
  labels = {'target': 'Target only (1% of train)', 'random': 'Random expansion',
            'duse': 'DUSE (2 rounds)'}
  runs, rows = [], {label: {} for label in labels.values()}
  for seed in (0, 1):
    for method, rate in [('target', None), ('random', 0.04), ('random', 0.09),
                         ('duse', 0.04), ('duse', 0.09)]:
      accuracy = {'target': 0.3, 'random': 0.5, 'duse': 0.6}[method] + 0.01 * seed
      runs.append({'method': method, 'rate': rate, 'seed': seed, 'eval_model': 'cnn2d',
                   'train_size': 20, 'class_counts': [7, 7, 6] if method == 'duse' else
                   [10, 6, 4], 'test': _test_result(rng, accuracy)})
      for column in (['4%', '9%'] if rate is None else [f'{rate * 100:g}%']):
        rows[labels[method]].setdefault(column, []).append(accuracy)
  table = {'title': 'DUSE on tiny (synthetic data)', 'row_header': 'Method / expansion rate',
           'columns': ['4%', '9%'], 'rows': rows}
  emb = {'methods': np.asarray(['Random expansion', 'DUSE (2 rounds)'])}
  for i in range(2):
    emb[f'emb{i}'] = rng.standard_normal((30, 8)).astype(np.float32)
    emb[f'labels{i}'] = np.arange(30) % 3
    emb[f'selected{i}'] = np.arange(30) >= 6
  (path / 'embeddings').mkdir(parents=True)
  np.savez(path / 'embeddings' / 'seed0-r0.04.npz', **emb)
  results = {
      'experiment': 'duse', 'config': {'dataset': 'tiny', 'rates': [0.04, 0.09], 'seeds': [0, 1]},
      'method_labels': labels, 'embeddings': 'embeddings/seed0-r0.04.npz',
      'data': {'kind': 'synthetic', 'path': '/cache/tiny.hdf5', 'vectors': 90,
               'generator_version': 3, 'seed': 0, 'count_per_cell': 15},
      'dataset': {'name': 'tiny', 'classes': CLASSES, 'length': 128},
      'splits': {'0': {'train': 60, 'test': 30}}, 'table': table, 'tables': [table],
      'runs': runs, 'seconds': 12.0}
  (path / 'results.json').write_text(json.dumps(results))
  return path


def test_markdown_table_has_the_papers_layout_with_the_best_in_bold():
  table = {'row_header': 'Method', 'columns': ['1%', '5%', '9%'],
           'rows': {'A': {'1%': [0.5, 0.7], '5%': [0.9], '9%': [0.2]},
                    'B|x': {'1%': [0.8, 0.8], '9%': [0.2]}}}
  lines = run_report.markdown_table(table, extra={'Params': {'A': '1,000'}}).splitlines()
  assert lines[0] == '| Method | 1% | 5% | 9% | Params |'
  assert lines[1] == '|---|---|---|---|---|'
  # 5%: one row only, 9%: all equal; neither has a bold cell.
  assert lines[2] == '| A | 60.00 ± 10.00 | 90.00 | 20.00 | 1,000 |'
  assert lines[3] == '| B\\|x | **80.00 ± 0.00** | - | 20.00 | - |'
  assert len(lines) == 4


def test_report_builds_from_a_tiny_run_directory(tmp_path):
  run_dir = _duse_run_dir(tmp_path / 'run')
  path = run_report.write_report(run_dir)
  text = path.read_text()
  assert path == run_dir / 'report.md'
  assert text.startswith('# DUSE data expansion: tiny')
  assert '**synthetic stand-in**' in text and '/cache/tiny.hdf5' in text
  # The table: header, separator and one row per method; DUSE best in both columns.
  table = [l for l in text.splitlines() if l.startswith('| ') and '%' in l or
           l.startswith('| Target') or l.startswith('| Random') or l.startswith('| DUSE')]
  assert table[0] == '| Method / expansion rate | 4% | 9% |'
  assert [l.split(' | ')[0] for l in table[1:]] == [
      '| Target only (1% of train)', '| Random expansion', '| DUSE (2 rounds)']
  assert table[3] == '| DUSE (2 rounds) | **60.50 ± 0.50** | **60.50 ± 0.50** |'
  images = re.findall(r'!\[[^\]]*\]\((plots/[^)]+)\)', text)
  expected = {'class_counts', 'accuracy_vs_rate', 'accuracy_per_snr', 'confusion', 'tsne'}
  assert {Path(i).stem for i in images} == expected
  for image in images:
    assert plots.is_png(run_dir / image), image
  assert '| rates | `[0.04, 0.09]` |' in text  # the configuration


def test_a_plot_that_cannot_be_drawn_is_named_not_fatal(tmp_path, monkeypatch):
  run_dir = _duse_run_dir(tmp_path / 'run')

  def no_sklearn(*args, **kwargs):
    raise ConfigError('t-SNE plots need scikit-learn')
  monkeypatch.setattr(plots, 'tsne', no_sklearn)
  text = run_report.write_report(run_dir).read_text()
  assert 'Not drawn: t-SNE plots need scikit-learn' in text
  assert '![' in text  # the other plots are there


def test_unfinished_run_and_cli_errors_are_one_line(tmp_path):
  with pytest.raises(ConfigError, match='no results.json .* has not finished'):
    run_report.write_report(tmp_path)
  assert 'has not finished' in one_line_error(run_driver('report', str(tmp_path)))
  assert 'give one run directory' in one_line_error(run_driver('report'))
  run_dir = _duse_run_dir(tmp_path / 'run')
  proc = run_script('experiments.report', str(run_dir))  # the real command line
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == f'report: {run_dir / "report.md"}'


@pytest.mark.parametrize('content', ['[]', '{}', '"text"', 'null', '{"runs": null}',
                                     '{"experiment": "duse", "runs": null}',
                                     '{"experiment": "duse", "tables": [1], "runs": []}',
                                     '{"experiment": "clst"}'])
def test_results_of_the_wrong_shape_are_a_one_line_error(tmp_path, content):
  (tmp_path / 'results.json').write_text(content)
  with pytest.raises(ConfigError, match='results.json (holds a JSON|is not a complete)'):
    run_report.write_report(tmp_path)
  assert not (tmp_path / 'report.md').exists()


def test_a_field_of_the_wrong_type_in_real_results_is_a_one_line_error(tmp_path):
  run_dir = _duse_run_dir(tmp_path / 'run')
  results = json.loads((run_dir / 'results.json').read_text())
  results['runs'][0]['test'] = None
  (run_dir / 'results.json').write_text(json.dumps(results))
  with pytest.raises(ConfigError, match='is not a complete duse results file'):
    run_report.write_report(run_dir)
