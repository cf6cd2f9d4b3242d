"""Result tables in the papers' layout: one row per method, one column per rate.

Cells are test accuracy in percent, mean ± standard deviation over seeds (population
standard deviation, ``numpy.std``), as the papers report them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std())


def summarize(rows: Mapping[str, Mapping[str, Sequence[float]]]) -> dict:
  """``{label: {column: {'mean', 'std', 'n'}}}`` of a table's per-seed cells; a cell with no
  value is left out."""
  return {label: {col: dict(zip(('mean', 'std'), mean_std(vals)), n=len(vals))
                  for col, vals in cols.items() if len(vals)}
          for label, cols in rows.items()}


def format_cell(values: Sequence[float], *, scale: float = 100.0) -> str:
  """'mean ± std' of ``values`` times ``scale`` with two decimals.

  A single value is shown without a spread; no value at all as '-'.
  """
  if len(values) == 0:
    return '-'
  mean, std = mean_std(np.asarray(values) * scale)
  return f'{mean:.2f}' if len(values) == 1 else f'{mean:.2f} ± {std:.2f}'


def text_table(rows: Mapping[str, Mapping[str, Sequence[float]]], columns: Sequence[str], *,
               title: str = '', row_header: str = 'Method') -> str:
  """A fixed-width table: ``rows[label][column]`` lists the per-seed values of a cell."""
  cells = [[label] + [format_cell(values.get(col, ())) for col in columns]
           for label, values in rows.items()]
  return text_grid([row_header] + list(columns), cells, title=title)


def text_grid(header: Sequence[str], cells: Sequence[Sequence[str]], *, title: str = '') -> str:
  """Rows of text cells laid out in fixed-width columns under ``header`` and a rule: the
  first column left-aligned, the others right-aligned; ``title`` (if any) on top."""
  widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
  line = lambda r: '  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths)))
  out = [title] if title else []
  out += [line(header), '  '.join('-' * w for w in widths)] + [line(r) for r in cells]
  return '\n'.join(out)


def text_of(table: Mapping) -> str:
  """:func:`text_table` of a results table (``rows``, ``columns``, ``title``, ``row_header``)."""
  return text_table(table['rows'], table['columns'], title=table['title'],
                    row_header=table['row_header'])
