"""Progress output through tqdm: a bar on a terminal, plain lines (no \\r, no escapes)
otherwise, nothing when off."""

import io
import re

import pytest
import tqdm
import tqdm.std

from amrjax import progress
from amrjax.errors import ConfigError


@pytest.fixture(autouse=True)
def _restore_settings():
  saved = dict(progress._settings)
  yield
  progress._settings.update(saved)
  assert progress._stack == []


class _Clock:
  """The clock tqdm reads (``tqdm.std.time``), moved by hand."""

  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


@pytest.fixture
def clock(monkeypatch):
  fake = _Clock()
  monkeypatch.setattr(tqdm.std, 'time', fake)
  monkeypatch.setattr(tqdm.tqdm, 'monitor_interval', 0)  # no refresh from tqdm's thread
  return fake


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def _use_terminal(monkeypatch) -> _Terminal:
  """A fake terminal as sys.stderr (set in the test itself: pytest's capture resets
  sys.stderr after the fixtures are set up)."""
  fake = _Terminal()
  monkeypatch.setattr('sys.stderr', fake)
  return fake


def _plain(lines):
  assert all('\r' not in line and '\x1b' not in line for line in lines)
  return lines


def test_plain_lines_when_not_a_terminal(capsys, clock):
  progress.set_mode('auto')  # capsys's stderr is not a terminal: plain
  progress.set_interval(30)
  items = []
  for item in progress.track(range(4), desc='scoring', unit='batch'):
    items.append(item)
    clock.now += 20  # none before 30 s, then 30 s apart at least: after items 2 and 4
  assert items == [0, 1, 2, 3]
  assert _plain(capsys.readouterr().err.splitlines()) == [
      'scoring: 2/4 (50%), 20.00s/batch, 00:40 left',
      'scoring: 4/4 (100%), 20.00s/batch, 00:00 left',
      'scoring: done 4 batch in 01:20, 20.00s/batch']


def test_plain_lines_come_at_most_every_interval(capsys, clock):
  progress.set_mode('plain')
  progress.set_interval(10)
  with progress.task('training', total=100, unit='step') as t:
    for _ in range(100):
      clock.now += 1.5
      t.advance()
  lines = _plain(capsys.readouterr().err.splitlines())
  counts = [int(re.match(r'training: (\d+)/100', line)[1]) for line in lines[:-1]]
  assert counts == list(range(7, 100, 7))  # 150 s: a line every 10.5 s
  assert lines[-1] == 'training: done 100 step in 02:30, 1.50s/step'


def test_a_short_loop_stays_silent_in_plain_mode(capsys, clock):
  progress.set_mode('plain')
  progress.set_interval(30)
  for _ in progress.track([1, 2, 3], desc='fast'):
    clock.now += 5
  assert capsys.readouterr().err == ''


def test_bar_on_a_terminal(monkeypatch, clock):
  terminal = _use_terminal(monkeypatch)
  progress.set_mode('auto')
  assert progress.mode() == 'bar'
  with progress.task('training CNN2D', total=10, unit='step') as t:
    for _ in range(10):
      clock.now += 0.5
      t.advance()
  out = terminal.getvalue()
  assert out.startswith('\rtraining CNN2D:   0%|') and out.endswith('\n')
  assert '\rtraining CNN2D:  50%|#####     | 5/10 [00:02<00:02,  2.00step/s]' in out
  assert out.count('\n') == 1  # one line, rewritten in place


def test_nested_bars_take_the_next_line_and_are_cleared(monkeypatch, clock):
  terminal = _use_terminal(monkeypatch)
  progress.set_mode('bar')
  with progress.task('DUSE round', total=3, unit='round') as rounds:
    rounds.advance()
    with progress.task('training', total=2, unit='step') as steps:
      clock.now += 1
      steps.advance()
  out = terminal.getvalue()
  assert '\n\rtraining:  50%' in out  # one line down, then back up
  assert '\x1b[A' in out and out.endswith(  # the inner bar cleared, the outer one stays
      ' \x1b[A\rDUSE round:  33%|###3      | 1/3 [00:01<00:02,  1.00round/s]\n')


def test_nested_tasks_show_the_outer_position_in_plain_mode(capsys, clock):
  progress.set_mode('plain')
  progress.set_interval(1)
  with progress.task('DUSE round', total=3, unit='round') as rounds:
    rounds.advance()
    with progress.task('training', total=4, unit='step') as steps:
      clock.now += 2
      steps.advance()
  lines = _plain(capsys.readouterr().err.splitlines())
  assert lines[0] == 'DUSE round 2/3 | training: 1/4 (25%), 2.00s/step, 00:06 left'
  assert lines[1] == 'DUSE round 2/3 | training: done 1 step in 00:02, 2.00s/step'


def test_an_error_pops_the_task_and_ends_without_done(monkeypatch, clock):
  terminal = _use_terminal(monkeypatch)
  progress.set_mode('bar')
  with pytest.raises(KeyError):
    with progress.task('outer', total=2) as outer:
      with progress.task('inner', total=2):
        clock.now += 1
        outer.advance()
        raise KeyError('boom')
  assert progress._stack == [] and terminal.getvalue().endswith('\n')
  progress.set_mode('plain')
  progress.set_interval(1)
  with pytest.raises(KeyError):
    with progress.task('failing', total=2) as t:
      clock.now += 2
      t.advance()
      raise KeyError('boom')
  assert terminal.getvalue().splitlines()[-1] == 'failing: 1/2 (50%), 2.00s/it, 00:02 left'


def test_off_and_unknown_modes(monkeypatch, clock):
  terminal = _use_terminal(monkeypatch)
  progress.set_mode('off')
  for _ in progress.track(range(3), desc='quiet'):
    clock.now += 100
  assert terminal.getvalue() == ''
  with pytest.raises(ConfigError, match="unknown progress mode 'loud'; choose one of auto"):
    progress.set_mode('loud')
  progress._settings['mode'] = 'loud'  # as AMRJAX_PROGRESS=loud would set it
  with pytest.raises(ConfigError, match="unknown progress mode 'loud'"):
    progress.mode()


def test_the_first_steps_compile_time_fades_from_the_rate(capsys, clock):
  progress.set_mode('plain')
  progress.set_interval(0)  # a line at every step
  with progress.task('training', total=30, unit='step') as t:
    clock.now += 40  # the first step compiles
    t.advance()
    for _ in range(29):
      clock.now += 1
      t.advance()
  lines = _plain(capsys.readouterr().err.splitlines())
  assert lines[1] == 'training: 1/30 (3%), 40.00s/step, 19:20 left'
  assert re.fullmatch(r'training: 30/30 \(100%\), 1\.0\ds/step, 00:00 left', lines[-2])
  assert lines[-1] == 'training: done 30 step in 01:09, 2.30s/step'  # the average, at the end


def test_track_yields_every_item_and_counts_them(capsys, clock):
  progress.set_mode('plain')
  progress.set_interval(1)
  items = []
  for item in progress.track((n for n in range(5)), desc='reading', unit='file'):
    items.append(item)
    clock.now += 1
  assert items == [0, 1, 2, 3, 4]  # no len: no total, no percentage
  assert _plain(capsys.readouterr().err.splitlines())[-2:] == [
      'reading: 5 file, 1.00file/s', 'reading: done 5 file in 00:05, 1.00file/s']
