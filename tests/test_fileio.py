import errno
import json
import os
import types

import jax
import numpy as np
import pytest

from amrjax import fileio
from amrjax.data import formats, specs
from amrjax.errors import ConfigError, DataFormatError
from amrjax.experiments.rundir import RunDir
from amrjax.fileio import atomic_write


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path):
  path = tmp_path / 'results.json'
  path.write_text('old')
  with pytest.raises(RuntimeError):
    with atomic_write(path, 'w') as f:
      f.write('half of a new')
      raise RuntimeError('killed')
  assert path.read_text() == 'old'
  assert [p.name for p in tmp_path.iterdir()] == ['results.json']  # no temporary left


def test_xyz_writer_publishes_only_complete_files(tmp_path):
  spec = specs.get_spec('sig2019')
  path = tmp_path / 'sig.hdf5'
  with pytest.raises(DataFormatError, match='wrote 1 rows of the 2 declared'):
    with formats.xyz_writer(path, spec, total=2) as rows:
      rows.write(0, 10, np.zeros((1, 2, 512), np.float32))
  assert not path.exists() and not list(tmp_path.iterdir())


def test_run_dir_refuses_an_unwritable_folder(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  with pytest.raises(Exception, match='cannot write to the run directory'):
    RunDir(blocker / 'run')
  run = RunDir(tmp_path / 'run')
  run.write_json('a.json', {'x': np.int64(3), 'y': np.arange(2)})
  assert (tmp_path / 'run' / 'a.json').read_text().split() == [
      '{', '"x":', '3,', '"y":', '[', '0,', '1', ']', '}']


def test_only_process_zero_writes_the_run_directory(tmp_path, monkeypatch):
  monkeypatch.setattr(jax, 'process_index', lambda: 1)
  run = RunDir(tmp_path / 'run')
  run.write_json('a.json', {'x': 1})
  run.write_ids('ids/a.npy', np.arange(3))
  run.write_npy('w/a.npy', np.ones(2))
  run.append_jsonl('m.jsonl', {'x': 1})
  assert not (tmp_path / 'run').exists()


def test_run_dir_start_resumes_the_same_config_and_refuses_another(tmp_path):
  run = RunDir(tmp_path / 'run')
  assert run.start({'a': 1, 'b': (1, 2)}, log=lambda _: None) == []
  run.append_jsonl('runs.jsonl', {'x': 1})
  run.append_jsonl('runs.jsonl', {'x': 2})
  with open(tmp_path / 'run' / 'runs.jsonl', 'a') as f:
    f.write('{"x": 3, "cut off by a ki')  # a kill in the middle of a write
  messages = []
  again = RunDir(tmp_path / 'run')
  assert again.start({'a': 1, 'b': [1, 2]}, log=messages.append) == [{'x': 1}, {'x': 2}]
  assert any('dropped a last line cut off' in m for m in messages)
  assert (tmp_path / 'run' / 'runs.jsonl').read_text() == '{"x": 1}\n{"x": 2}\n'
  with pytest.raises(ConfigError, match=r'different configuration \(differs in: a, c\)'):
    again.start({'a': 2, 'b': [1, 2], 'c': 0}, log=lambda _: None)


def test_run_dir_refuses_a_damaged_jsonl(tmp_path):
  run = RunDir(tmp_path / 'run')
  run.start({'a': 1})
  (tmp_path / 'run' / 'runs.jsonl').write_text('{"x": 1}\nnot json\n{"x": 2}\n')
  with pytest.raises(ConfigError, match='line 2 is not JSON'):
    run.start({'a': 1}, log=lambda _: None)


def test_a_resumed_run_logs_only_what_the_interrupted_one_had_not(tmp_path):
  """Work redone from a checkpoint logs its lines again; they are matched, not repeated."""
  run = RunDir(tmp_path / 'run')
  run.start({'a': 1}, log=lambda _: None)
  for epoch in (1, 2, 3):
    run.log_metrics({'phase': 'final', 'epoch': epoch, 'loss': 1 / epoch})
  with open(tmp_path / 'run' / 'metrics.jsonl', 'a') as f:
    f.write('{"phase": "final", "ep')  # killed in the middle of epoch 4's line
  again = RunDir(tmp_path / 'run')
  again.start({'a': 1}, log=lambda _: None)
  for epoch in (2, 3, 4, 5):  # resumed from epoch 1's checkpoint
    again.log_metrics({'phase': 'final', 'epoch': epoch, 'loss': 1 / epoch})
  fresh = RunDir(tmp_path / 'fresh')
  fresh.start({'a': 1}, log=lambda _: None)
  for epoch in (1, 2, 3, 4, 5):
    fresh.log_metrics({'phase': 'final', 'epoch': epoch, 'loss': 1 / epoch})
  assert ((tmp_path / 'run' / 'metrics.jsonl').read_bytes() ==
          (tmp_path / 'fresh' / 'metrics.jsonl').read_bytes())


def test_npz_files_hold_no_time_of_writing(tmp_path, monkeypatch):
  arrays = {'methods': np.asarray(['a', 'b']), 'emb0': np.arange(6.).reshape(2, 3)}
  run = RunDir(tmp_path / 'run')
  first = run.write_npz('e/x.npz', arrays).read_bytes()
  monkeypatch.setattr('time.time', lambda: 4e9)  # np.savez would stamp 2096 in the zip
  assert run.write_npz('e/x.npz', arrays).read_bytes() == first
  with np.load(tmp_path / 'run' / 'e' / 'x.npz') as f:
    assert sorted(f.files) == ['emb0', 'methods']
    np.testing.assert_array_equal(f['emb0'], arrays['emb0'])
    np.testing.assert_array_equal(f['methods'], arrays['methods'])


def _no_space(*args, **kwargs):
  raise OSError(errno.ENOSPC, 'No space left on device')


def test_a_full_disk_is_one_line_and_keeps_the_old_files(tmp_path, monkeypatch):
  run = RunDir(tmp_path / 'run')
  run.write_json('results.json', {'old': True})
  run.append_jsonl('runs.jsonl', {'x': 1})
  real_write = os.write

  def half_then_full(fd, data):
    if os.readlink(f'/proc/self/fd/{fd}') != str(tmp_path / 'run' / 'runs.jsonl'):
      return real_write(fd, data)
    if len(data) > 4:
      return real_write(fd, bytes(data[:4]))  # a partial write, then the disk is full
    raise OSError(errno.ENOSPC, 'No space left on device')
  monkeypatch.setattr(os, 'write', half_then_full)
  with pytest.raises(ConfigError) as error:
    run.append_jsonl('runs.jsonl', {'x': 2})
  monkeypatch.undo()
  assert str(error.value) == (f'no space left on the device to write {tmp_path}/run/runs.jsonl; '
                              'free space there or choose another --workdir')
  assert (tmp_path / 'run' / 'runs.jsonl').read_text() == '{"x": 1}\n'  # no half line

  monkeypatch.setattr(fileio, 'tempfile', types.SimpleNamespace(mkstemp=_no_space))
  for write in (lambda: run.write_json('results.json', {'new': True}),
                lambda: run.write_ids('selected/a.npy', np.arange(3)),
                lambda: run.write_npz('embeddings/a.npz', {'a': np.ones(2)}),
                lambda: RunDir(tmp_path / 'other')):
    with pytest.raises(ConfigError, match=r'^no space left on the device to write '
                       rf'{tmp_path}/\S+; free space there or choose another --workdir$'):
      write()
  assert json.loads((tmp_path / 'run' / 'results.json').read_text()) == {'old': True}
  assert sorted(p.name for p in (tmp_path / 'run').rglob('*') if p.is_file()) == [
      'results.json', 'runs.jsonl']  # no temporary left
