"""The papers' figures as PNG files, drawn from plain Python and NumPy data.

One function per figure layout; each takes its data and a ``path``, writes one PNG there
(100 dpi, a few tens of KB), creates the parent folder and returns the path. Nothing here
knows about run directories (``amrjax.reporting.run_report`` collects the data).

- :func:`class_counts`: samples per class of each method's expanded set (DUSE Fig. 3).
- :func:`accuracy_vs_rate`: test accuracy against the expansion, coreset or training
  rate, mean over seeds with a ± std band.
- :func:`accuracy_per_snr`: test accuracy against SNR.
- :func:`confusion_matrix`: row-normalised confusion heatmap.
- :func:`tsne`: t-SNE of each method's expanded set, target set against selected samples
  (DUSE Fig. 4); needs scikit-learn, an optional dependency.
- :func:`confidence_by_snr_and_class`: mean confidence weight against SNR and class
  (AFNet Fig. 6).

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, never pyplot's: importing
this module opens no window, needs no display and keeps no figure alive after a call.
Spreads are population standard deviations over seeds (``numpy.std``), as in
``amrjax.reporting.tables``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from amrjax.errors import ConfigError

DPI = 100
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# More classes than this lose the numbers in the confusion matrix cells.
ANNOTATE_MAX_CLASSES = 12


def _palette(n: int) -> list:
  """``n`` distinct qualitative colours: tab10's hues first, then their light and tab20b's."""
  tab20 = matplotlib.colormaps['tab20'].colors
  tab20b = matplotlib.colormaps['tab20b'].colors
  colours = list(tab20[0::2]) + list(tab20[1::2]) + list(tab20b[0::2]) + list(tab20b[1::2])
  return [colours[i % len(colours)] for i in range(n)]


def _figure(width: float, height: float, *, ncols: int = 1, nrows: int = 1):
  fig = Figure(figsize=(width, height), dpi=DPI, layout='constrained')
  FigureCanvasAgg(fig)
  return fig, fig.subplots(nrows, ncols, squeeze=False)


def _save(fig: Figure, path: str | Path, title: str) -> Path:
  path = Path(path)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    if title:
      fig.suptitle(title)
    fig.savefig(path, dpi=DPI, format='png')
  finally:
    fig.clear()
  return path


def _rotate_ticks(ax, count: int) -> None:
  """Slants the x tick labels when there are many or long ones."""
  if count > 6:
    for tick in ax.get_xticklabels():
      tick.set(rotation=45, ha='right', rotation_mode='anchor')


def _legend_below(fig: Figure, handles, labels, ncols: int) -> None:
  fig.legend(handles, labels, loc='outside lower center', ncols=max(1, ncols),
             frameon=False, fontsize='small')


def is_png(path: str | Path) -> bool:
  """True when ``path`` is a non-empty PNG file that matplotlib reads as an image."""
  path = Path(path)
  try:
    if not path.is_file() or path.stat().st_size == 0:
      return False
    with open(path, 'rb') as f:
      if f.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
        return False
    image = matplotlib.image.imread(path)
  except (OSError, ValueError, SyntaxError):
    return False
  return image.ndim >= 2 and image.shape[0] > 0 and image.shape[1] > 0


def class_counts(counts: Mapping[str, Sequence[int]], classes: Sequence[str], *,
                 path: str | Path, title: str = '',
                 ylabel: str = 'Number of samples') -> Path:
  """Grouped bars of the samples per class of each method's set (DUSE Fig. 3).

  ``counts[method]`` holds one count per entry of ``classes`` (C class names); each class
  is a group of bars, one per method, in the mapping's order.
  """
  classes = list(classes)
  if not counts or not classes:
    raise ConfigError('class_counts: no methods or no classes to plot')
  table = {}
  for method, values in counts.items():
    values = np.asarray(values, np.float64).reshape(-1)
    if len(values) != len(classes):
      raise ConfigError(f'class_counts: {method!r} has {len(values)} counts for '
                        f'{len(classes)} classes')
    table[method] = values
  n_classes, n_methods = len(classes), len(table)
  fig, axes = _figure(min(14.0, max(6.0, 0.2 * n_classes * max(2, n_methods) + 1.5)), 4.2)
  ax = axes[0, 0]
  x = np.arange(n_classes)
  width = 0.8 / n_methods
  for i, ((method, values), colour) in enumerate(zip(table.items(), _palette(n_methods))):
    ax.bar(x + (i - (n_methods - 1) / 2) * width, values, width, label=method, color=colour)
  ax.set_xticks(x, classes)
  _rotate_ticks(ax, n_classes)
  ax.set_xlim(-0.6, n_classes - 0.4)
  ax.set_xlabel('Modulation class')
  ax.set_ylabel(ylabel)
  ax.grid(axis='y', alpha=0.3)
  ax.set_axisbelow(True)
  _legend_below(fig, *ax.get_legend_handles_labels(), ncols=min(n_methods, 4))
  return _save(fig, path, title)


def _mean_std_points(name: str, points: Mapping, key: Callable) -> tuple:
  """Sorted ``x``, mean and std of ``{x: [value per seed]}``, and the largest seed count."""
  if not points:
    raise ConfigError(f'{name!r} has no points')
  xs, means, stds, most = [], [], [], 0
  for x, values in sorted(((key(x), v) for x, v in points.items()), key=lambda p: p[0]):
    values = np.asarray(values, np.float64).reshape(-1)
    if values.size == 0:
      raise ConfigError(f'{name!r} has no value at {x:g}')
    xs.append(x)
    means.append(values.mean())
    stds.append(values.std())
    most = max(most, values.size)
  return np.asarray(xs, np.float64), np.asarray(means), np.asarray(stds), most


def _mean_lines(ax, series: Mapping[str, Mapping], *, key: Callable, x_scale: float,
                what: str, unit: str) -> int:
  """One line per label of ``series``, mean ± std in percent; returns the distinct x count."""
  if not series:
    raise ConfigError(f'{what} needs per-{unit} values of at least one series, got none')
  lines = {label: _mean_std_points(label, points, key) for label, points in series.items()}
  all_x = sorted({x for xs, *_ in lines.values() for x in xs})
  single = len(all_x) == 1
  for i, ((label, (xs, mean, std, most)), colour) in enumerate(
      zip(lines.items(), _palette(len(lines)))):
    xs, mean, std = xs * x_scale, mean * 100, std * 100
    if single:
      # One x: dodge the methods sideways so their error bars stay apart.
      xs = xs + (i - (len(lines) - 1) / 2) * 0.08
      ax.errorbar(xs, mean, yerr=std if most > 1 else None, fmt='o', capsize=4, color=colour,
                  label=label)
      continue
    ax.plot(xs, mean, marker='o', markersize=4, color=colour, label=label)
    if most > 1:
      ax.fill_between(xs, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
  ticks = np.asarray(all_x) * x_scale
  if single:
    ax.set_xlim(ticks[0] - 0.5, ticks[0] + 0.5)
  if len(ticks) <= 12:
    ax.set_xticks(ticks, [f'{t:g}' for t in ticks])
  ax.grid(alpha=0.3)
  return len(all_x)


def accuracy_vs_rate(series: Mapping[str, Mapping[float, Sequence[float]]], *,
                     path: str | Path, title: str = '', xlabel: str = 'Expansion rate (%)',
                     ylabel: str = 'Test accuracy (%)') -> Path:
  """Test accuracy against a rate, one line per method (DUSE Table II, FoQuS Table I).

  ``series[method][rate]`` lists one accuracy per seed; rates and accuracies are fractions,
  drawn in percent. Each point is the mean over seeds, the shaded band mean ± std (error
  bars when there is a single rate; no spread with a single seed).
  """
  fig, axes = _figure(6.4, 4.4)
  ax = axes[0, 0]
  _mean_lines(ax, series, key=float, x_scale=100.0, what='accuracy_vs_rate', unit='rate')
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  _legend_below(fig, *ax.get_legend_handles_labels(), ncols=min(len(series), 2))
  return _save(fig, path, title)


def accuracy_per_snr(series: Mapping[str, Mapping[int, Sequence[float]]], *,
                     path: str | Path, title: str = '') -> Path:
  """Test accuracy against SNR, one line per label (DUSE Fig. 5, AFNet Fig. 5).

  ``series[label][snr_db]`` lists one accuracy (a fraction) per seed; drawn in percent, the
  mean over seeds with a ± std band when there are several seeds.
  """
  fig, axes = _figure(6.4, 4.4)
  ax = axes[0, 0]
  _mean_lines(ax, series, key=int, x_scale=1.0, what='accuracy_per_snr', unit='SNR')
  ax.set_xlabel('SNR (dB)')
  ax.set_ylabel('Test accuracy (%)')
  _legend_below(fig, *ax.get_legend_handles_labels(), ncols=min(len(series), 2))
  return _save(fig, path, title)


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
  """Each row divided by its sum; a row without samples stays zero (no NaN, no warning)."""
  matrix = np.asarray(matrix, np.float64)
  sums = matrix.sum(axis=1, keepdims=True)
  return np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)


def confusion_matrix(matrix: np.ndarray, classes: Sequence[str], *, path: str | Path,
                     title: str = '', normalize: bool = True) -> Path:
  """Heatmap of a confusion matrix (AFNet Fig. 7, ClST Fig. 6).

  ``matrix`` is (C, C) counts, rows the true class and columns the predicted one, for the C
  names in ``classes``. With ``normalize`` each row is divided by its count (a row without
  samples shows zeros); cells carry their values when C <= 12.
  """
  matrix = np.asarray(matrix)
  classes = list(classes)
  if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
    raise ConfigError(f'confusion_matrix: expected a square (C, C) count matrix, got shape '
                      f'{matrix.shape} for {len(classes)} classes')
  n = matrix.shape[0]
  if len(classes) != n:
    raise ConfigError(f'confusion_matrix: {n} x {n} matrix for {len(classes)} classes')
  if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
    raise ConfigError('confusion_matrix: counts must be finite and non-negative')
  values = normalize_rows(matrix) if normalize else matrix.astype(np.float64)
  vmax = 1.0 if normalize else max(float(values.max()), 1.0)
  side = min(10.0, max(4.8, 0.38 * n + 2.4))
  fig, axes = _figure(side + 0.8, side)
  ax = axes[0, 0]
  image = ax.imshow(values, cmap='Blues', vmin=0.0, vmax=vmax, interpolation='nearest')
  ticks = np.arange(n)
  ax.set_xticks(ticks, classes)
  ax.set_yticks(ticks, classes)
  ax.tick_params(labelsize='small' if n > 12 else 'medium')
  _rotate_ticks(ax, n if n > 3 else 0)
  ax.set_xlabel('Predicted class')
  ax.set_ylabel('True class')
  if n <= ANNOTATE_MAX_CLASSES:
    size = 'small' if n <= 8 else 'x-small'
    for (i, j), v in np.ndenumerate(values):
      text = ('0' if v == 0 else f'{v:.2f}') if normalize else f'{v:g}'
      ax.text(j, i, text, ha='center', va='center', fontsize=size,
              color='white' if v > 0.5 * vmax else 'black')
  fig.colorbar(image, ax=ax, shrink=0.8, label='Rate' if normalize else 'Count')
  return _save(fig, path, title)


def tsne(embeddings: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
         classes: Sequence[str], *, path: str | Path, title: str = '', seed: int = 0,
         perplexity: float = 30.0) -> Path:
  """t-SNE of each method's expanded set, coloured by class (DUSE Fig. 4).

  ``embeddings[method] = (features (n, D), labels (n,) int in [0, C), is_selected (n,)
  bool)``: True marks a sample the method selected, False one of the original target set.
  One panel per method (at most 4 per row), each sklearn's 2-D t-SNE (init='pca',
  ``random_state=seed``, perplexity ``min(perplexity, (n - 1) / 3)``); dots are selected
  samples, black-edged triangles target-set samples; one legend of classes below.
  Needs scikit-learn (``pip install amrjax[report]``).
  """
  classes = list(classes)
  if not embeddings or not classes:
    raise ConfigError('tsne: no methods or no classes to plot')
  sets = {}
  for method, (features, labels, selected) in embeddings.items():
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    selected = np.asarray(selected).reshape(-1).astype(bool)
    if features.ndim != 2 or not len(features) == len(labels) == len(selected):
      raise ConfigError(f'tsne: {method!r} needs features (n, D), labels (n,) and '
                        f'is_selected (n,), got {features.shape}, {labels.shape}, '
                        f'{selected.shape}')
    if len(features) < 5:
      raise ConfigError(f'tsne: {method!r} has {len(features)} vectors, need at least 5 vectors')
    if labels.min() < 0 or labels.max() >= len(classes):
      raise ConfigError(f'tsne: {method!r} has labels outside [0, {len(classes)})')
    sets[method] = features, labels, selected
  try:
    from sklearn.manifold import TSNE
  except ImportError:
    raise ConfigError('t-SNE plots need scikit-learn; pip install scikit-learn '
                      '(or amrjax[report])') from None

  ncols = min(len(sets), 4)
  nrows = math.ceil(len(sets) / ncols)
  legend_rows = math.ceil((len(classes) + 2) / min(len(classes) + 2, 8))
  fig, axes = _figure(3.3 * ncols + 0.4, 3.3 * nrows + 0.3 + 0.22 * legend_rows,
                      ncols=ncols, nrows=nrows)
  colours = np.asarray(_palette(len(classes)))
  for ax, (method, (features, labels, selected)) in zip(axes.flat, sets.items()):
    n = len(features)
    points = TSNE(n_components=2, init='pca', random_state=seed,
                  perplexity=min(perplexity, (n - 1) / 3)).fit_transform(features)
    ax.scatter(*points[selected].T, s=9, marker='o', c=colours[labels[selected]],
               alpha=0.75, linewidths=0)
    ax.scatter(*points[~selected].T, s=30, marker='^', c=colours[labels[~selected]],
               edgecolors='black', linewidths=0.6)
    ax.set_title(f'{method}\n({int((~selected).sum())} target + {int(selected.sum())} '
                 'selected)', fontsize='medium')
    ax.set_xticks([])
    ax.set_yticks([])
  for ax in list(axes.flat)[len(sets):]:
    ax.set_visible(False)
  handles = [Line2D([], [], marker='o', linestyle='', color=c, markersize=6) for c in colours]
  handles += [Line2D([], [], marker='o', linestyle='', color='grey', markersize=4),
              Line2D([], [], marker='^', linestyle='', color='grey', markeredgecolor='black',
                     markersize=7)]
  labels_ = classes + ['selected', 'target set']
  _legend_below(fig, handles, labels_, ncols=min(len(labels_), 8))
  return _save(fig, path, title)


def confidence_by_snr_and_class(mean_weight: Mapping[str, Mapping[int, float]], *,
                                path: str | Path, title: str = '') -> Path:
  """Mean confidence weight against SNR and class (AFNet Fig. 6).

  ``mean_weight[class][snr_db]`` is the mean weight (0..1) of that class's vectors at that
  SNR. Left: one line per class against SNR; right: each class's mean over its SNRs, as
  bars sorted from the highest.
  """
  if not mean_weight:
    raise ConfigError('confidence_by_snr_and_class: no classes to plot')
  lines = {}
  for name, by_snr in mean_weight.items():
    if not by_snr:
      raise ConfigError(f'confidence_by_snr_and_class: {name!r} has no SNR')
    pairs = sorted((int(s), float(w)) for s, w in by_snr.items())
    lines[name] = np.asarray([s for s, _ in pairs]), np.asarray([w for _, w in pairs])
  n = len(lines)
  colours = dict(zip(lines, _palette(n)))
  legend_rows = math.ceil(n / min(n, 8))
  fig, axes = _figure(max(10.0, 0.3 * n + 6.5), 4.2 + 0.22 * legend_rows, ncols=2)
  ax, bars = axes[0]
  for name, (snrs, weights) in lines.items():
    ax.plot(snrs, weights, marker='o' if len(snrs) <= 12 else None, markersize=3,
            color=colours[name], label=name, linewidth=1.2)
  snrs = sorted({int(s) for xs, _ in lines.values() for s in xs})
  if len(snrs) <= 12:
    ax.set_xticks(snrs)
  all_weights = np.concatenate([w for _, w in lines.values()])
  if np.all((all_weights >= 0) & (all_weights <= 1)):
    ax.set_ylim(0, 1.02)
  ax.set_xlabel('SNR (dB)')
  ax.set_ylabel('Mean confidence weight')
  ax.set_title('Per class against SNR', fontsize='medium')
  ax.grid(alpha=0.3)
  means = sorted(((float(w.mean()), name) for name, (_, w) in lines.items()), reverse=True)
  x = np.arange(n)
  bars.bar(x, [m for m, _ in means], color=[colours[name] for _, name in means])
  bars.set_xticks(x, [name for _, name in means])
  _rotate_ticks(bars, n if n > 4 else 0)
  bars.set_ylabel('Mean over SNRs')
  bars.set_title('Per class, sorted', fontsize='medium')
  if np.all((all_weights >= 0) & (all_weights <= 1)):
    bars.set_ylim(0, 1.02)
  bars.grid(axis='y', alpha=0.3)
  bars.set_axisbelow(True)
  _legend_below(fig, *ax.get_legend_handles_labels(), ncols=min(n, 8))
  return _save(fig, path, title)
