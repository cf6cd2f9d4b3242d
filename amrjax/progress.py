"""Progress of long loops: a bar on a terminal, plain periodic lines otherwise.

:func:`task` (a context manager) and :func:`track` (around an iterable) report how far a
loop is, its rate and the time left, on stderr:

- ``'bar'``: one line rewritten in place (``\\r``) at most every 0.1 s,
  ``round 2/3 | training CNN2D [######......] 45% 18/40 12.3 step/s 0:02 left``;
- ``'plain'`` (CI, batch jobs, a pipe): no carriage return, no escape code; a line such
  as ``round 2/3 | training CNN2D: 18/40 (45%), 12.3 step/s, 0:02 left`` at most every
  ``interval`` seconds (default 30), and a closing ``... done`` line only for a task that
  lasted that long, so short loops stay silent;
- ``'auto'`` (default): ``'bar'`` when stderr is a terminal, else ``'plain'``;
- ``'off'``: nothing.

Tasks nest (DUSE round > training > ...); the innermost one is shown, prefixed by the
outer ones' positions (the unit in progress: ``round 2/3`` while round 2 runs). The mode
comes from :func:`set_mode` (every driver's ``--progress`` flag) or the environment
variable ``AMRJAX_PROGRESS``; the plain interval from :func:`set_interval` or
``AMRJAX_PROGRESS_INTERVAL``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator

from amrjax.errors import ConfigError

MODES = ('auto', 'bar', 'plain', 'off')
_BAR_REFRESH_SECONDS = 0.1
_BAR_WIDTH = 20


def _check_mode(mode: str) -> str:
  if mode not in MODES:
    raise ConfigError(f'unknown progress mode {mode!r}; choose one of {", ".join(MODES)}')
  return mode


_settings = {'mode': os.environ.get('AMRJAX_PROGRESS', 'auto'),
             'interval': float(os.environ.get('AMRJAX_PROGRESS_INTERVAL', 30.0))}
_stack: list[Task] = []


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


def format_duration(seconds: float) -> str:
  """H:MM:SS, or M:SS under an hour."""
  seconds = int(round(max(seconds, 0.0)))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


class Task:
  """One loop's progress: ``advance`` it as work is done (see :func:`task`)."""

  def __init__(self, desc: str, total: int | None, unit: str):
    self.desc, self.total, self.unit = desc, total, unit
    self.done = 0
    self._first: tuple[float, int] | None = None  # (time, count) at the first advance
    self.mode = mode()
    self.start = time.monotonic()
    self._next_print = self.start + (_BAR_REFRESH_SECONDS if self.mode == 'bar'
                                     else _settings['interval'])

  def advance(self, count: int = 1) -> None:
    """Counts ``count`` more units done; prints when the mode's interval has passed."""
    self.done += count
    if self._first is None:
      self._first = (time.monotonic(), self.done)
    if self.mode == 'off' or _stack[-1:] != [self]:
      return
    now = time.monotonic()
    if now >= self._next_print:
      self._next_print = now + (_BAR_REFRESH_SECONDS if self.mode == 'bar'
                                else _settings['interval'])
      self._print(now)

  def position(self) -> str:
    """'desc i/total' with i the unit in progress (done + 1), as an inner task's prefix."""
    current = self.done + 1 if self.total is None else min(self.done + 1, self.total)
    return f'{self.desc} {current}/{self.total}' if self.total else f'{self.desc} {current}'

  def _per_second(self, now: float) -> float:
    """Units per second, after the first unit once there are two: the first one carries
    the compilation (a ClST train step: 40 s, then 0.5 s) and would skew the time left."""
    if self.done >= 2 and self._first is not None and now > self._first[0]:
      return (self.done - self._first[1]) / (now - self._first[0])
    return self.done / max(now - self.start, 1e-9)

  def _rate(self, now: float, per_second: float | None = None) -> str:
    """'12.3 step/s', or '20 s/step' below 0.1 per second."""
    rate = self._per_second(now) if per_second is None else per_second
    return (f'{rate:.1f} {self.unit}/s' if rate >= 0.1 else
            f'{1 / max(rate, 1e-9):.0f} s/{self.unit}')

  def _rate_and_left(self, now: float) -> tuple[str, str]:
    """The rate, and the time left ('' while unknown: no total, or fewer than two units)."""
    if not self.total or self.done < 2:
      return self._rate(now), ''
    rate = self._per_second(now)
    return self._rate(now, rate), f'{format_duration((self.total - self.done) / rate)} left'

  def _prefix(self) -> str:
    outer = [t.position() for t in _stack[:-1]] if _stack and _stack[-1] is self else []
    return ''.join(f'{p} | ' for p in outer)

  def _print(self, now: float) -> None:
    rate, left = self._rate_and_left(now)
    stream = sys.stderr
    if self.mode == 'bar':
      if self.total:
        filled = int(_BAR_WIDTH * min(self.done / self.total, 1.0))
        bar = f'[{"#" * filled}{"." * (_BAR_WIDTH - filled)}] {self.done / self.total:4.0%} '
        count = f'{self.done}/{self.total}'
      else:
        bar, count = '', f'{self.done}'
      stream.write(f'\r{self._prefix()}{self.desc} {bar}{count} {rate} {left}'.rstrip() +
                   '\x1b[K')
    else:
      share = f' ({self.done / self.total:.0%})' if self.total else ''
      total = f'/{self.total}' if self.total else ''
      parts = [f'{self.done}{total}{share}', rate] + ([left] if left else [])
      stream.write(f'{self._prefix()}{self.desc}: {", ".join(parts)}\n')
    stream.flush()

  def _close(self, failed: bool) -> None:
    now = time.monotonic()
    stream = sys.stderr
    if self.mode == 'bar':
      if not failed:
        self._print(now)
      if len(_stack) == 1 or failed:  # the outermost task (or an error) ends the line
        stream.write('\n')
        stream.flush()
    elif self.mode == 'plain' and not failed and now - self.start >= _settings['interval']:
      overall = self.done / max(now - self.start, 1e-9)
      stream.write(f'{self._prefix()}{self.desc}: done {self.done} {self.unit} in '
                   f'{format_duration(now - self.start)} ({self._rate(now, overall)})\n')
      stream.flush()


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
    if t.mode != 'off':
      t._close(failed)
    _stack.remove(t)


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
