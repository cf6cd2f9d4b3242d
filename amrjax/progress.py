"""Progress of long loops on stderr, drawn by tqdm: a bar on a terminal, plain lines in logs.

:func:`task` (a context manager) and :func:`track` (around an iterable) report how far a
loop is, its rate and the time left. The maintained ``tqdm`` library counts, times and
draws; this module only picks, per mode, how it draws:

- ``'bar'``: tqdm's bar, redrawn in place; a nested task (DUSE round > training) takes
  the line below the outer bar and is cleared when it ends;
- ``'plain'`` (CI, batch jobs, nohup logs): no carriage return, no escape code; a line
  such as ``DUSE round 2/3 | training CNN2D: 18/40 (45%), 12.30step/s, 00:02 left``
  (an inner task's line starts with the outer tasks' units in progress) at most every
  ``interval`` seconds (default 30) and none before a task has run that long, so short
  loops stay silent; a task that printed ends with a ``...: done ...`` line;
- ``'auto'`` (default): ``'bar'`` when stderr is a terminal, else ``'plain'``;
- ``'off'``: nothing.

The rate, and so the time left, is tqdm's moving average over its refreshes
(``smoothing``), not the average since the start: the first step's compilation (a ClST
train step: 40 s, then 0.5 s) weighs on the first refreshes only and fades after a few.
The mode comes from :func:`set_mode` (every driver's ``--progress`` flag) or the
environment variable ``AMRJAX_PROGRESS``; the plain interval from :func:`set_interval` or
``AMRJAX_PROGRESS_INTERVAL``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator

from tqdm import tqdm

from amrjax.errors import ConfigError

MODES = ('auto', 'bar', 'plain', 'off')
_PLAIN = '{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%), {rate_fmt}, {remaining} left'
_PLAIN_NO_TOTAL = '{desc}: {n_fmt} {unit}, {rate_fmt}'
_PLAIN_DONE = '{desc}: done {n_fmt} {unit} in {elapsed}, {rate_fmt}'

_settings = {'mode': os.environ.get('AMRJAX_PROGRESS', 'auto'),
             'interval': float(os.environ.get('AMRJAX_PROGRESS_INTERVAL', 30.0))}
_stack: list[Task] = []


def _check_mode(mode: str) -> str:
  if mode not in MODES:
    raise ConfigError(f'unknown progress mode {mode!r}; choose one of {", ".join(MODES)}')
  return mode


def set_mode(mode: str) -> None:
  """'auto', 'bar', 'plain' or 'off' (see the module docstring)."""
  _settings['mode'] = _check_mode(mode)


def set_interval(seconds: float) -> None:
  """The least time between two plain progress lines."""
  _settings['interval'] = float(seconds)


def mode() -> str:
  """The mode in effect: 'bar', 'plain' or 'off' ('auto' resolved against stderr)."""
  chosen = _check_mode(_settings['mode'])
  if chosen != 'auto':
    return chosen
  isatty = getattr(sys.stderr, 'isatty', None)
  return 'bar' if isatty is not None and isatty() else 'plain'


class _Lines:
  """tqdm's file in plain mode: each refresh ('\\r' + status + blank padding) becomes one
  newline-terminated line; empty writes (a clear, the closing newline) are dropped."""

  def __init__(self, stream):
    self.stream = stream

  def write(self, text: str) -> None:
    line = ' '.join(text.replace('\r', ' ').split())
    if line:
      self.stream.write(line + '\n')

  def flush(self) -> None:
    self.stream.flush()


class Task:
  """One loop's progress: ``advance`` it as work is done (see :func:`task`)."""

  def __init__(self, desc: str, total: int | None, unit: str):
    self.desc, self.total, self.mode = desc, total, mode()
    if self.mode == 'plain':
      interval = _settings['interval']
      outer = ''.join(f'{t.position()} | ' for t in _stack)
      # miniters=1 (no adaptive miniters): tqdm's monitor thread never refreshes early.
      self.bar = tqdm(desc=outer + desc, total=total, unit=unit, file=_Lines(sys.stderr),
                      bar_format=_PLAIN if total else _PLAIN_NO_TOTAL, position=0,
                      leave=True, mininterval=interval, delay=interval, miniters=1)
    else:
      # leave=None: the outermost bar stays on screen, the nested ones are cleared.
      self.bar = tqdm(desc=desc, total=total, unit=unit, file=sys.stderr, leave=None,
                      disable=self.mode == 'off', dynamic_ncols=True)

  def advance(self, count: int = 1) -> None:
    """Counts ``count`` more units done."""
    self.bar.update(count)

  def position(self) -> str:
    """'desc i/total' with i the unit in progress (done + 1), as an inner task's prefix."""
    current = self.bar.n + 1 if not self.total else min(self.bar.n + 1, self.total)
    return f'{self.desc} {current}/{self.total}' if self.total else f'{self.desc} {current}'

  def _close(self, failed: bool) -> None:
    if self.mode == 'plain':  # a closing 'done' line if it printed, none after an error
      self.bar.bar_format, self.bar.leave = _PLAIN_DONE, not failed
    self.bar.close()


@contextlib.contextmanager
def task(desc: str, *, total: int | None = None, unit: str = 'it') -> Iterator[Task]:
  """A loop's progress for the ``with`` block: call ``advance`` on what it yields.

  Args:
    desc: what the loop does ('training CNN2D', 'scoring', 'DUSE round').
    total: how many units in all (None: unknown; no percentage or time left).
    unit: the unit's name in the rate ('step', 'batch', 'round').
  """
  t = Task(desc, total, unit)
  _stack.append(t)
  failed = True
  try:
    yield t
    failed = False
  finally:
    _stack.remove(t)
    t._close(failed)


def track(iterable: Iterable, *, desc: str, total: int | None = None,
          unit: str = 'it') -> Iterator:
  """Yields the items of ``iterable`` and reports them as a :func:`task`'s progress;
  ``total`` defaults to ``len(iterable)`` when it has one."""
  if total is None and hasattr(iterable, '__len__'):
    total = len(iterable)
  with task(desc, total=total, unit=unit) as t:
    for item in iterable:
      yield item
      t.advance()
