import jax
import numpy as np
import pytest

from amrjax.data import formats, specs
from amrjax.errors import ConfigError, DataFormatError
from amrjax.fileio import atomic_write
from amrjax.rundir import RunDir


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
