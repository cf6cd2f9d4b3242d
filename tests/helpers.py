"""Small builders shared by the tests."""

import numpy as np

from amrjax import plots
from amrjax.data.pool import SignalPool


def random_pool(n=64, num_classes=4, length=128, seed=0, snrs=(12, 14)) -> SignalPool:
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, 2, length)).astype(np.float32)
  y = np.arange(n) % num_classes
  snr = np.asarray(snrs)[np.arange(n) % len(snrs)]
  return SignalPool.from_arrays(x, y, snr, tuple(f'c{i}' for i in range(num_classes)))


def assert_report(workdir, plot_names):
  """The run left report.md with these plots, each a valid PNG the report links to."""
  text = (workdir / 'report.md').read_text()
  for name in plot_names:
    assert f'(plots/{name}.png)' in text, name
    assert plots.is_png(workdir / 'plots' / f'{name}.png'), name
  return text
