"""What the paper studies share: reading a study folder of resumable run directories.

A study (``amrjax.experiments.duse_study``, ``amrjax.experiments.foqus_study``) is one
folder holding a run directory per named run, each written by its experiment driver
(``config.json`` and ``runs.jsonl``, finished or not). :func:`read` yields the records of
the run directories that share the study preset's data and training settings and names the
others, and :class:`Cells` collects one accuracy per (cell, seed), refusing a cell measured
twice with different results.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from amrjax.data import synth
from amrjax.errors import ConfigError


def read(root: Path | str, study: Mapping, shared: Sequence[str],
         skipped: list[str]) -> Iterator[tuple[str, dict, list[dict]]]:
  """(folder name, config, records of ``runs.jsonl``) of every run directory below ``root``.

  A run directory whose ``config.json`` differs from ``study`` in a field of ``shared``,
  or whose finished ``results.json`` names another version of the synthetic generator, is
  left out and named in ``skipped`` (an unfinished run cannot be checked: start a new study
  folder when the generator changes). A ``runs.jsonl`` line cut off by a kill is left out:
  the run redoes it when resumed.
  """
  for config_path in sorted(Path(root).glob('*/config.json')):
    folder = config_path.parent
    config = json.loads(config_path.read_text())
    differs = [k for k in shared if config.get(k) != study[k]]
    finished = folder / 'results.json'
    if finished.is_file():
      origin = json.loads(finished.read_text()).get('data', {})
      if origin.get('kind') == 'synthetic' and (origin.get('generator_version')
                                                != synth.GENERATOR_VERSION):
        differs.append(f'generator version {origin.get("generator_version")}')
    if differs:
      skipped.append(f'{folder.name} (differs in {", ".join(differs)})')
      continue
    runs_path = folder / 'runs.jsonl'
    records = []
    for line in runs_path.read_text().splitlines() if runs_path.is_file() else []:
      try:
        records.append(json.loads(line))
      except ValueError:
        continue
    yield folder.name, config, records


def put(cells: dict[tuple, dict[int, float]], key: tuple, seed: int, accuracy: float,
        folder: str) -> None:
  """``cells[key][seed] = accuracy``; a different value already there is a ConfigError."""
  seen = cells.setdefault(key, {})
  if seed in seen and abs(seen[seed] - accuracy) > 1e-6:
    raise ConfigError(f'{folder}: {key} seed {seed} gave {accuracy:.2f} here and '
                      f'{seen[seed]:.2f} in another run directory')
  seen[seed] = accuracy


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  """A Markdown table."""
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  return '\n'.join(lines + ['| ' + ' | '.join(r) + ' |' for r in rows])


def time_and_skipped(seconds: Mapping[str, float], skipped: Sequence[str],
                     what: str) -> list[str]:
  """A study report's last sections: each run directory's ``seconds`` (``what`` names the
  time) and, when any, the run directories skipped as not the study configuration."""
  parts = ['### Time', markdown(['Run directory', what],
                                [[name, f'{s:.0f}'] for name, s in seconds.items()])]
  if skipped:
    parts.append('Skipped (not the study configuration): ' + '; '.join(skipped))
  return parts
