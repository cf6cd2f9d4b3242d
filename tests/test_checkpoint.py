"""Round checkpoints: damaged ones are skipped with one line, a full disk is one line."""

import errno
import json
import types

import numpy as np
import pytest

from amrjax import fileio
from amrjax.errors import ConfigError
from amrjax.train import checkpoint
from amrjax.train.checkpoint import RoundCheckpoints

FULL = ("RESOURCE_EXHAUSTED: Error writing \"a/0\" in OCDBT database at local file "
        "\"/x.orbax-checkpoint-tmp/ocdbt.process_0/\": Failed to write 316702 bytes to file "
        "5: No space left on device [os_error_code='28']")  # what orbax raised on a full tmpfs


def _tree(i):
  rng = np.random.default_rng(i)
  return {'w': rng.standard_normal(2000).astype(np.float32), 'step': np.array(i, np.int32)}


def _saved(folder, rounds=3, **kwargs):
  lines = []
  saved = RoundCheckpoints(folder, log=lines.append, **kwargs)
  for i in range(1, rounds + 1):
    saved.save(i, _tree(i), {'round': i})
  return saved, lines


def _largest_data_file(folder):
  return max((p for p in folder.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate_json(saved, i):
  path = saved.folder / f'round-{i}.json'
  path.write_bytes(path.read_bytes()[:7])
  return path


def _not_a_record(saved, i):
  path = saved.folder / f'round-{i}.json'
  path.write_text('[1, 2]')
  return path


def _truncate_data(saved, i):
  path = _largest_data_file(saved.folder / f'round-{i}')
  path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
  return saved.folder / f'round-{i}'


def _flip_a_data_byte(saved, i):
  """Restores without an error, with wrong values: only the recorded digest tells."""
  path = _largest_data_file(saved.folder / f'round-{i}')
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0xFF
  path.write_bytes(bytes(data))
  return saved.folder / f'round-{i}'


def _overwrite_manifest(saved, i):
  (saved.folder / f'round-{i}' / 'manifest.ocdbt').write_bytes(b'\0' * 64)
  return saved.folder / f'round-{i}'


@pytest.mark.parametrize('damage', [_truncate_json, _not_a_record, _truncate_data,
                                    _flip_a_data_byte, _overwrite_manifest])
def test_a_damaged_round_falls_back_to_the_last_sound_one(tmp_path, damage):
  saved, lines = _saved(tmp_path / 'ck')
  named = damage(saved, 3)
  index, state, record = saved.load_latest(_tree(0))
  assert index == 2 and record == {'round': 2}
  np.testing.assert_array_equal(state['w'], _tree(2)['w'])
  assert len(lines) == 1 and lines[0].startswith(f'damaged checkpoint: {named} ')
  assert lines[0].endswith('removed it, resuming from round-2') and '\n' not in lines[0]
  assert sorted(p.name for p in saved.folder.iterdir()) == [
      'round-1', 'round-1.json', 'round-2', 'round-2.json']
  saved.save(3, _tree(3), {'round': 3})  # the loop goes on from there
  assert saved.load_latest(_tree(0))[0] == 3


def test_with_no_sound_round_the_loop_starts_afresh(tmp_path, capsys):
  saved = RoundCheckpoints(tmp_path / 'ck', keep_only_latest=True)
  saved.save(1, _tree(1), {'round': 1})
  saved.save(2, _tree(2), {'round': 2})
  _flip_a_data_byte(saved, 2)
  assert saved.load_latest(_tree(0)) == (0, None, None)
  err = [line for line in capsys.readouterr().err.splitlines() if line.startswith('warning')]
  assert len(err) == 1 and err[0].startswith('warning: damaged checkpoint: ')
  assert 'does not hold the arrays its record was written for' in err[0]
  assert err[0].endswith('starting this step afresh')
  assert list(saved.folder.iterdir()) == []


def test_loading_a_named_damaged_round_is_a_one_line_error(tmp_path):
  saved, _ = _saved(tmp_path / 'ck', rounds=1)
  path = _truncate_json(saved, 1)
  with pytest.raises(ConfigError) as error:
    saved.load(1, _tree(0))
  assert str(error.value).startswith(f'damaged checkpoint: {path} is unreadable (JSONDecodeError')
  assert str(error.value).endswith(f'delete {saved.folder} (the run restarts that step) or '
                                   'choose a new --workdir')


def test_a_damaged_round_that_cannot_be_removed_is_a_one_line_error(tmp_path, monkeypatch):
  saved, _ = _saved(tmp_path / 'ck', rounds=1)
  _truncate_data(saved, 1)

  def refuse(path, *args, **kwargs):
    raise PermissionError(errno.EACCES, 'Permission denied', str(path))
  monkeypatch.setattr(checkpoint.shutil, 'rmtree', refuse)
  with pytest.raises(ConfigError) as error:
    saved.load_latest(_tree(0))
  message = str(error.value)
  assert '\n' not in message and message.startswith('damaged checkpoint: ')
  assert f'{saved.folder}/round-1 is unreadable' in message
  assert message.endswith(f'and it cannot be removed (Permission denied); delete '
                          f'{saved.folder} (the run restarts that step) or choose a new '
                          '--workdir')


def test_the_callers_check_refuses_and_a_failing_one_marks_damage(tmp_path):
  saved, lines = _saved(tmp_path / 'ck', rounds=2)

  def other_settings(record):
    raise ConfigError('a checkpoint of something else')
  with pytest.raises(ConfigError, match='something else'):
    saved.load_latest(_tree(0), other_settings)
  assert saved.latest() == 2 and lines == []  # refused, not discarded

  def needs_a_key(record):
    record['budget']  # noqa: B018 (absent: the record is not the caller's)
  assert saved.load_latest(_tree(0), needs_a_key) == (0, None, None)
  assert len(lines) == 2 and all("is not a complete record (KeyError: 'budget')" in line
                                 for line in lines)


def test_a_full_disk_while_saving_the_state_is_one_line(tmp_path, monkeypatch):
  saved, _ = _saved(tmp_path / 'ck', rounds=2)

  def full(self, path, *args, **kwargs):
    (path.parent / f'{path.name}.orbax-checkpoint-tmp-17').mkdir()  # what orbax leaves
    raise ValueError(FULL)
  monkeypatch.setattr(checkpoint.ocp.StandardCheckpointer, 'save', full)
  for index in (3, 2):  # a new round, and one whose old record must not vouch for it
    with pytest.raises(ConfigError) as error:
      saved.save(index, _tree(index), {'round': index})
    assert str(error.value) == (f'no space left on the device to write '
                                f'{(saved.folder / f"round-{index}").absolute()}; free space '
                                'there or choose another --workdir')
    assert not (saved.folder / f'round-{index}.json').exists()
    assert not list(saved.folder.glob('*orbax-checkpoint-tmp*'))
  monkeypatch.undo()
  assert saved.load_latest(_tree(0))[:1] == (1,)  # a rerun resumes from the last sound one


def test_a_full_disk_while_writing_the_record_is_one_line(tmp_path, monkeypatch):
  saved, _ = _saved(tmp_path / 'ck', rounds=1)

  def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device')
  monkeypatch.setattr(fileio, 'tempfile', types.SimpleNamespace(mkstemp=no_space))
  with pytest.raises(ConfigError, match=r'^no space left on the device to write .*round-2\.json; '
                     r'free space there or choose another --workdir$'):
    saved.save(2, _tree(2), {'round': 2})
  monkeypatch.undo()
  assert (saved.folder / 'round-2').is_dir()  # the state, but no record: not complete
  assert saved.latest() == 1 and saved.load_latest(_tree(0))[2] == {'round': 1}


def test_out_of_space_is_told_from_other_errors():
  assert fileio.out_of_space(OSError(errno.ENOSPC, 'No space left on device'))
  assert fileio.out_of_space(OSError(errno.EDQUOT, 'Disk quota exceeded'))
  assert fileio.out_of_space(ValueError(FULL))
  try:
    try:
      raise OSError(errno.ENOSPC, 'full')
    except OSError as inner:
      raise RuntimeError('while saving') from inner
  except RuntimeError as outer:
    assert fileio.out_of_space(outer)
  assert not fileio.out_of_space(OSError(errno.EACCES, 'Permission denied'))
  assert not fileio.out_of_space(ValueError(
      'RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4.00GiB'))  # XLA, not disk


def test_records_carry_the_state_digest_but_return_without_it(tmp_path):
  saved, _ = _saved(tmp_path / 'ck', rounds=1)
  stored = json.loads((saved.folder / 'round-1.json').read_text())
  assert stored == {'round': 1, checkpoint.DIGEST_KEY: checkpoint.tree_digest(_tree(1))}
  assert saved.record(1) == {'round': 1}
  # A record written before digests were kept still loads.
  (saved.folder / 'round-1.json').write_text(json.dumps({'round': 1}))
  assert saved.load_latest(_tree(0))[0] == 1
