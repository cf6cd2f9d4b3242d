"""Progress output: a bar on a terminal, plain lines (no \\r, no escapes) otherwise."""

import io
import time

import pytest

from amrjax import progress
from amrjax.errors import ConfigError


@pytest.fixture(autouse=True)
def _restore_settings():
  saved = dict(progress._settings)
  yield
  progress._settings.update(saved)
  assert progress._stack == []


class _Clock:
  """A monotonic clock the test moves by hand."""

  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


@pytest.fixture
def clock(monkeypatch):
  fake = _Clock()
  monkeypatch.setattr(time, 'monotonic', fake)
  return fake


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_plain_lines_when_not_a_terminal(capsys, clock):
  progress.set_mode('auto')  # capsys's stderr is not a terminal: plain
  progress.set_interval(30)
  items = []
  for item in progress.track(range(4), desc='scoring', unit='batch'):
    items.append(item)
    clock.now += 20  # a line every 30 s at most: after items 1 and 3
  assert items == [0, 1, 2, 3]
  lines = capsys.readouterr().err.splitlines()
  assert lines == ['scoring: 2/4 (50%), 20 s/batch, 0:40 left',
                   'scoring: 4/4 (100%), 20 s/batch, 0:00 left',
                   'scoring: done 4 batch in 1:20 (20 s/batch)']
  assert all('\r' not in l and '\x1b' not in l for l in lines)


def test_a_short_loop_stays_silent_in_plain_mode(capsys, clock):
  progress.set_mode('plain')
  assert list(progress.track([1, 2, 3], desc='fast')) == [1, 2, 3]
  assert capsys.readouterr().err == ''


def test_bar_on_a_terminal_rewrites_one_line(monkeypatch, clock):
  terminal = _Terminal()
  monkeypatch.setattr('sys.stderr', terminal)
  progress.set_mode('auto')
  with progress.task('training CNN2D', total=10, unit='step') as t:
    for _ in range(10):
      clock.now += 0.5
      t.advance()
  out = terminal.getvalue()
  assert out.startswith('\rtraining CNN2D [##........') and out.endswith('\n')
  assert '50% 5/10 2.0 step/s 0:02 left' in out
  assert out.count('\n') == 1  # one line, rewritten


def test_nested_tasks_show_the_outer_position(capsys, clock):
  progress.set_mode('plain')
  progress.set_interval(1)
  with progress.task('DUSE round', total=3, unit='round') as rounds:
    rounds.advance()
    with progress.task('training', total=2, unit='step') as steps:
      clock.now += 2
      steps.advance()
  lines = capsys.readouterr().err.splitlines()
  assert lines[0] == 'DUSE round 2/3 | training: 1/2 (50%), 0.5 step/s'  # no time left yet


def test_an_error_pops_the_task_and_ends_the_bar(monkeypatch, clock):
  terminal = _Terminal()
  monkeypatch.setattr('sys.stderr', terminal)
  progress.set_mode('bar')
  with pytest.raises(KeyError):
    with progress.task('outer', total=2) as outer:
      with progress.task('inner', total=2):
        clock.now += 1
        outer.advance()
        raise KeyError('boom')
  assert progress._stack == [] and terminal.getvalue().endswith('\n')


def test_off_and_unknown_modes(capsys, clock):
  progress.set_mode('off')
  for _ in progress.track(range(3), desc='quiet'):
    clock.now += 100
  assert capsys.readouterr().err == ''
  with pytest.raises(ConfigError, match="unknown progress mode 'loud'; choose one of auto"):
    progress.set_mode('loud')


def test_the_first_unit_does_not_skew_the_time_left(capsys, clock):
  progress.set_mode('plain')
  progress.set_interval(0)
  with progress.task('training', total=10, unit='step') as t:
    clock.now += 40  # the first step compiles
    t.advance()
    clock.now += 1
    t.advance()
  lines = capsys.readouterr().err.splitlines()
  assert lines[0] == 'training: 1/10 (10%), 40 s/step'
  assert lines[1] == 'training: 2/10 (20%), 1.0 step/s, 0:08 left'


def test_format_duration():
  assert progress.format_duration(59.6) == '1:00'
  assert progress.format_duration(3725) == '1:02:05'
