"""Every plot writes a valid, non-empty PNG; bad input is a one-line ConfigError."""

import gc
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from amrjax.errors import ConfigError
from amrjax.reporting import plots

CLASSES = ['BPSK', 'QPSK', '8PSK', 'FM']


def _valid(path):
  assert plots.is_png(path) and 5_000 < path.stat().st_size < 300_000, path


def test_each_plot_writes_a_png(tmp_path):
  rng = np.random.default_rng(0)
  _valid(plots.class_counts({'Random': [5, 1, 3, 7], 'DUSE': [4, 4, 4, 4]}, CLASSES,
                            path=tmp_path / 'a' / 'counts.png'))
  series = {'DUSE': {0.01: [0.4, 0.45], 0.05: [0.6, 0.62]}, 'Random': {0.01: [0.3]}}
  _valid(plots.accuracy_vs_rate(series, path=tmp_path / 'rate.png'))
  _valid(plots.accuracy_per_snr({'DUSE': {12: [0.5, 0.6], 14: [0.7, 0.8]}},
                                path=tmp_path / 'snr.png'))
  confusion = rng.integers(0, 9, (4, 4))
  confusion[2] = 0  # a class without test vectors: its row stays 0, no NaN
  with np.errstate(all='raise'):
    _valid(plots.confusion_matrix(confusion, CLASSES, path=tmp_path / 'confusion.png'))
  weights = {c: {s: float(rng.uniform()) for s in (-4, 0, 8, 18)} for c in CLASSES}
  _valid(plots.confidence_by_snr_and_class(weights, path=tmp_path / 'weights.png'))


def test_tsne_panels(tmp_path):
  pytest.importorskip('sklearn')
  rng = np.random.default_rng(1)
  sets = {m: (rng.standard_normal((40, 6)), np.arange(40) % 4, np.arange(40) >= 8)
          for m in ('Random expansion', 'DUSE')}
  _valid(plots.tsne(sets, CLASSES, path=tmp_path / 'tsne.png'))
  with pytest.raises(ConfigError, match='at least 5 vectors'):
    plots.tsne({'x': (np.zeros((3, 2)), np.zeros(3), np.ones(3))}, CLASSES,
               path=tmp_path / 'bad.png')


def test_bad_input_is_refused(tmp_path):
  with pytest.raises(ConfigError, match='2 counts for 4 classes'):
    plots.class_counts({'DUSE': [1, 2]}, CLASSES, path=tmp_path / 'x.png')
  with pytest.raises(ConfigError, match='needs per-rate values'):
    plots.accuracy_vs_rate({}, path=tmp_path / 'x.png')
  with pytest.raises(ConfigError, match=r'shape \(2, 3\) for 4 classes'):
    plots.confusion_matrix(np.zeros((2, 3)), CLASSES, path=tmp_path / 'x.png')
  assert not (tmp_path / 'x.png').exists()


def test_is_png(tmp_path):
  assert not plots.is_png(tmp_path / 'missing.png')
  (tmp_path / 'empty.png').write_bytes(b'')
  assert not plots.is_png(tmp_path / 'empty.png')
  (tmp_path / 'text.png').write_text('not an image')
  assert not plots.is_png(tmp_path / 'text.png')
  (tmp_path / 'cut.png').write_bytes(plots.PNG_SIGNATURE + b'\0' * 10)
  assert not plots.is_png(tmp_path / 'cut.png')


def test_single_rate_single_seed_and_many_classes(tmp_path):
  rng = np.random.default_rng(2)
  one_rate = {'Target only': {0.04: [0.5]}, 'DUSE': {0.04: [0.6, 0.64, 0.61]}}
  _valid(plots.accuracy_vs_rate(one_rate, path=tmp_path / 'one_rate.png', title='One rate'))
  _valid(plots.accuracy_per_snr({'CNN': {s: [float(rng.uniform())] for s in (18, 12, 14)}},
                                path=tmp_path / 'one_seed.png'))
  classes = [f'class {i}' for i in range(24)]
  _valid(plots.class_counts({m: rng.integers(0, 50, 24) for m in 'abc'}, classes,
                            path=tmp_path / 'counts24.png'))
  _valid(plots.confusion_matrix(rng.integers(0, 30, (24, 24)), classes,
                                path=tmp_path / 'confusion24.png', normalize=False))


def test_confusion_rows_sum_to_one_and_an_empty_row_is_zero():
  matrix = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
  with np.errstate(all='raise'):
    rates = plots.normalize_rows(matrix)
  np.testing.assert_allclose(rates.sum(axis=1), [1, 0, 1])
  np.testing.assert_allclose(rates[0], [0.75, 0.25, 0])
  assert np.isfinite(rates).all()


def test_more_bad_input(tmp_path):
  with pytest.raises(ConfigError):
    plots.accuracy_per_snr({}, path=tmp_path / 'x.png')
  with pytest.raises(ConfigError, match='no value'):
    plots.accuracy_vs_rate({'DUSE': {0.01: []}}, path=tmp_path / 'x.png')
  with pytest.raises(ConfigError):
    plots.class_counts({}, CLASSES, path=tmp_path / 'x.png')
  with pytest.raises(ConfigError, match='3 x 3 matrix for 4 classes'):
    plots.confusion_matrix(np.ones((3, 3)), CLASSES, path=tmp_path / 'x.png')
  with pytest.raises(ConfigError):
    plots.confidence_by_snr_and_class({}, path=tmp_path / 'x.png')
  with pytest.raises(ConfigError, match='labels outside'):
    plots.tsne({'x': (np.zeros((6, 2)), np.full(6, 4), np.ones(6))}, CLASSES,
               path=tmp_path / 'x.png')
  assert not (tmp_path / 'x.png').exists()


def test_tsne_without_sklearn_says_how_to_install(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'sklearn', None)
  monkeypatch.setitem(sys.modules, 'sklearn.manifold', None)
  sets = {'DUSE': (np.zeros((8, 3)), np.arange(8) % 4, np.arange(8) > 3)}
  with pytest.raises(ConfigError, match=r'pip install scikit-learn \(or amrjax\[report\]\)'):
    plots.tsne(sets, CLASSES, path=tmp_path / 'x.png')


def test_figures_are_freed(tmp_path):
  plots.accuracy_per_snr({'a': {0: [0.5]}}, path=tmp_path / 'a.png')
  gc.collect()
  assert not [o for o in gc.get_objects() if isinstance(o, Figure)]
