"""End-to-end: the DUSE driver at tiny size, and its one-line errors. The smoke test runs the
real command line in a subprocess; the refused commands run in this process
(``tests.helpers.run_driver``)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from amrjax.data import formats, specs, synth
from amrjax.errors import ConfigError
from amrjax.experiments import duse
from amrjax.protocols import expansion
from tests.helpers import assert_report, one_line_error, run_driver
from tests.xla_env import xla_flags

REPO = Path(__file__).resolve().parents[2]


def _env(devices=1):
  return {**os.environ, 'JAX_PLATFORMS': 'cpu',
          'XLA_FLAGS': xla_flags(devices)}


def _run(*args, cwd=REPO, timeout=300, devices=1):
  env = _env(devices)
  return subprocess.run([sys.executable, '-m', 'experiments.duse', *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_driver_smoke(tmp_path):
  workdir = tmp_path / 'run'
  proc = _run('--dataset=rml2016.10a', '--synthetic_per_cell=15', '--target_fraction=0.025',
              f'--cache_dir={tmp_path / "cache"}', f'--data_dir={tmp_path / "data"}',
              '--rates=0.05', '--seeds=0', '--rounds=2', '--round_epochs=1',
              '--final_epochs=1', '--batch_size=32', f'--workdir={workdir}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'using the synthetic stand-in' in proc.stdout
  results = json.loads((workdir / 'results.json').read_text())
  config = json.loads((workdir / 'config.json').read_text())
  assert config['rates'] == [0.05] and config['rounds'] == 2 and config['seeds'] == [0]
  assert results['data']['kind'] == 'synthetic'
  rows = results['table']['rows']
  assert len(rows) == 4 and all(len(cell['5%']) == 1 for cell in rows.values())
  split = results['splits']['0']
  budget = round(0.05 * split['train'])
  for run in results['runs']:
    assert 0 <= run['test']['accuracy'] <= 1
    if run['method'] != 'target':
      assert run['train_size'] == split['target'] + budget
      ids = np.load(workdir / 'selected' / f'{run["method"]}-seed{run["seed"]}-r0.05.npy')
      assert len(ids) == budget == len(np.unique(ids))
  rounds = json.loads((workdir / 'rounds' / 'duse-seed0-r0.05.json').read_text())
  assert [len(r['selected_ids']) for r in rounds] == [(budget + 1) // 2, budget // 2]
  assert 'DUSE (2 rounds)' in proc.stdout
  assert (workdir / 'metrics.jsonl').read_text().count('\n') > 0
  # Test results are also logged as they are produced, one line per run.
  assert (workdir / 'runs.jsonl').read_text().count('\n') == len(results['runs'])
  assert not (workdir / 'checkpoints').exists()  # removed once results.json is written
  text = assert_report(workdir, ['class_counts', 'accuracy_vs_rate', 'accuracy_per_snr',
                                'confusion', 'tsne'])
  assert f'report: {workdir / "report.md"}' in proc.stdout
  assert '| DUSE (2 rounds) |' in text and '**synthetic stand-in**' in text


def test_protocol_flags_reach_the_config_and_a_killed_run_resumes_to_the_same_results(
    tmp_path):
  """--budget_split, --strategy_option (on top of the preset's options) and --nowarm_start
  are recorded, and DUSE's rounds take the geometric budgets; killed on 3 CPU devices and
  resumed on this process's 8, the run's results equal an uninterrupted one's. (One test, so
  that the uninterrupted run is trained once.)"""
  args = ['--dataset=rml2016.10a', '--synthetic_per_cell=15', '--target_fraction=0.025',
          f'--cache_dir={tmp_path / "cache"}',
          f'--data_dir={tmp_path / "data"}', '--rates=0.05', '--seeds=0', '--rounds=2',
          '--methods=target,duse', '--round_epochs=1', '--final_epochs=1', '--batch_size=32',
          '--budget_split=geometric', '--strategy_option=Forgetting.never_learned=0',
          '--nowarm_start', '--noreport']
  whole = run_driver('duse', *args, f'--workdir={tmp_path / "whole"}')
  assert whole.returncode == 0, whole.stderr[-2000:]
  config = json.loads((tmp_path / 'whole' / 'config.json').read_text())
  assert config['budget_split'] == 'geometric' and config['warm_start'] is False
  assert config['strategy_options'] == {'deepfool': {'max_iter': 3, 'num_candidates': 2},
                                        'forgetting': {'never_learned': 0}}
  split = json.loads((tmp_path / 'whole' / 'results.json').read_text())['splits']['0']
  rounds = json.loads((tmp_path / 'whole' / 'rounds' / 'duse-seed0-r0.05.json').read_text())
  budget = round(0.05 * split['train'])
  assert [len(r['selected_ids']) for r in rounds] == expansion.round_budgets(
      budget, 2, 'geometric', start_size=split['target'])
  workdir = tmp_path / 'killed'
  proc = subprocess.Popen([sys.executable, '-m', 'experiments.duse', *args,
                           f'--workdir={workdir}'], cwd=REPO, env=_env(devices=3),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  runs_file, deadline = workdir / 'runs.jsonl', time.time() + 240
  while proc.poll() is None and time.time() < deadline and (
      not runs_file.exists() or runs_file.read_text().count('\n') < 1):
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)  # a real kill, mid-run
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, 'the run finished before it could be killed'
  assert not (workdir / 'results.json').exists()
  resumed = run_driver('duse', *args, f'--workdir={workdir}')
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert 'resuming the run' in resumed.stdout and 'done before the interruption' in resumed.stdout
  want = json.loads((tmp_path / 'whole' / 'results.json').read_text())
  got = json.loads((workdir / 'results.json').read_text())
  assert got['table']['rows'] == want['table']['rows']
  assert [r['test'] for r in got['runs']] == [r['test'] for r in want['runs']]
  for path in sorted((tmp_path / 'whole' / 'selected').glob('*.npy')):
    np.testing.assert_array_equal(np.load(workdir / 'selected' / path.name), np.load(path))
  # The same folder with another configuration is refused, not mixed in.
  line = one_line_error(run_driver('duse', *args[:-1], '--batch_size=16',
                                   f'--workdir={workdir}'))
  assert 'holds a run with a different configuration (differs in: batch_size)' in line


def _refused_commands(folder: Path) -> dict[str, list[str]]:
  """The arguments of commands the driver must refuse with one line, by name; their input
  files are written under ``folder``."""
  spec = specs.get_spec('rml2016.10a')
  for name in ('pickle', 'corrupt', 'nan', 'empty'):
    (folder / name).mkdir()
  (folder / 'pickle' / spec.file_name).write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
  good = formats.write_rml2016_pickle(folder / 'full.pkl', {
      ('BPSK', 12): np.zeros((5, 2, 128), np.float32)})
  (folder / 'corrupt' / spec.file_name).write_bytes(good.read_bytes()[:300])
  cells = {(spec.names_in_file[c], int(snr)): x
           for c, snr, x in synth.iter_cells(spec, count_per_cell=2, seed=0)}
  first = next(iter(cells))
  cells[first][0, 1, 7] = np.nan
  cells[first][1, 0, 3] = np.inf
  formats.write_rml2016_pickle(folder / 'nan' / spec.file_name, cells)
  return {
      'unknown_dataset': ['--dataset=cifar10'],
      'malicious_pickle': ['--dataset=rml2016.10a', f'--data_dir={folder / "pickle"}'],
      'corrupt_file': ['--dataset=rml2016.10a', f'--data_dir={folder / "corrupt"}'],
      'nan_samples': ['--dataset=rml2016.10a', f'--data_dir={folder / "nan"}'],
      'missing_real_file': ['--dataset=rml2018.01a', f'--data_dir={folder / "empty"}',
                            '--noallow_synthetic'],
      'processes_without_a_coordinator': ['--num_processes=2'],
      'bad_rate': ['--rates=4'],
      'option_without_value': ['--strategy_option=forgetting'],
      'option_out_of_range': ['--strategy_option=grand.runs=0'],
  }


@pytest.fixture(scope='module')
def refused_folder(tmp_path_factory) -> Path:
  return tmp_path_factory.mktemp('refused')


@pytest.fixture(scope='module')
def refused(refused_folder) -> dict:
  """Each refused command's exit status and stderr, each with its --workdir under
  ``refused_folder / 'runs'``."""
  return {name: run_driver('duse', *args, f'--workdir={refused_folder / "runs" / name}')
          for name, args in _refused_commands(refused_folder).items()}


def test_unknown_dataset_is_one_line(refused):
  line = one_line_error(refused['unknown_dataset'])
  assert "unknown dataset 'cifar10'; choose one of" in line


def test_malicious_pickle_is_one_line(refused):
  line = one_line_error(refused['malicious_pickle'])
  assert 'refusing to unpickle' in line and 'do not use it' in line
  assert not (REPO / 'pwned').exists()


def test_corrupt_files_are_one_line(refused):
  line = one_line_error(refused['corrupt_file'])
  assert 'truncated or corrupt' in line and 'download it again' in line


def test_nan_samples_are_refused_with_their_count(refused):
  line = one_line_error(refused['nan_samples'])
  assert '2 of 440 vectors hold NaN or infinite values (first sample ids: [0, 1])' in line
  assert '--drop_nonfinite' in line


def test_missing_real_file_is_one_line_when_synthetic_is_not_allowed(refused):
  line = one_line_error(refused['missing_real_file'])
  assert 'no rml2018.01a file in' in line and 'GOLD_XYZ_OSC.0001_1024.hdf5' in line


def test_processes_without_a_coordinator_is_one_line(refused):
  line = one_line_error(refused['processes_without_a_coordinator'])
  assert '--num_processes=2 needs --coordinator_address' in line


def test_bad_rate_is_one_line(refused):
  line = one_line_error(refused['bad_rate'])
  assert 'expansion rate must be in (0, 1]' in line


def test_no_refused_command_left_a_run_directory(refused, refused_folder):
  assert not (refused_folder / 'runs').exists()


def test_presets_and_overrides():
  quick = duse.DuseConfig.from_preset('quick')
  paper = duse.DuseConfig.from_preset('paper', seeds=(5,))
  assert paper.rates == (0.01, 0.04, 0.07, 0.09, 0.19) and paper.seeds == (5,)
  assert paper.round_epochs == 20 and paper.final_epochs == 50 and paper.max_per_cell is None
  assert quick.dataset == 'sig2019' and quick.preset == 'quick'
  with pytest.raises(ConfigError, match='unknown preset'):
    duse.DuseConfig.from_preset('huge')
  with pytest.raises(ConfigError, match='unknown method'):
    duse.DuseConfig(methods=('coolest',))


def test_study_preset_is_the_papers_scale_with_the_1d_cnn():
  study = duse.DuseConfig.from_preset('study')
  assert study.dataset == 'rml2016.10a'
  assert study.rates == (0.04, 0.09) and study.rounds == 4 and study.seeds == (0, 1, 2)
  assert (study.round_epochs, study.final_epochs, study.batch_size) == (20, 50, 128)
  assert study.max_per_cell is None and study.synthetic_per_cell is None
  assert study.model == 'cnn1d' and study.methods == duse.expand_methods(['table1'])


def test_malformed_strategy_options_are_one_line(refused):
  line = one_line_error(refused['option_without_value'])
  assert 'is not STRATEGY.OPTION=VALUE' in line
  line = one_line_error(refused['option_out_of_range'])
  assert 'runs must be a whole number of at least 1' in line


def test_method_groups_expand_in_order():
  assert duse.expand_methods(['table1'])[:3] == ('target', 'random',
                                                            'least_confidence')
  assert duse.expand_methods(['table1'])[-1] == 'duse'
  assert len(duse.expand_methods(['baselines'])) == 8
  assert duse.expand_methods(['Herd', 'target', 'herding']) == ('herding', 'target')


def test_baselines_run_beside_duse_in_the_balance_setting(tiny_spec, tmp_path):
  config = duse.DuseConfig(
      dataset=tiny_spec.name, cache_dir=str(tmp_path / 'cache'), data_dir=str(tmp_path),
      rates=(0.25,), seeds=(0,), rounds=2, round_epochs=1, final_epochs=1, batch_size=16,
      max_per_cell=20, target_fraction=0.25, setting='balance',
      methods=('target', 'herding', 'forgetting', 'glister', 'duse'))
  results = duse.run(config, tmp_path / 'run', log=lambda _: None,
                                write_report=False)
  assert set(results['table']['rows']) == {config.method_label(m) for m in config.methods}
  assert 'Herding' in results['table']['rows'] and 'Glister' in results['table']['rows']
  split = results['splits']['0']
  budget = round(0.25 * split['train'])
  for run in results['runs']:
    if run['method'] != 'target':
      counts = np.asarray(run['class_counts'])
      assert counts.sum() == split['target'] + budget
      assert counts.max() - counts.min() <= 1, run['method']  # balance setting


def test_strategy_options_merge_under_canonical_names():
  from experiments import common
  base = {'deepfool': {'max_iter': 3}}
  merged = common.strategy_options(['DeepFool.overshoot=0.05', 'herd.x=text'], base)
  assert merged == {'deepfool': {'max_iter': 3, 'overshoot': 0.05}, 'herding': {'x': 'text'}}
  assert base == {'deepfool': {'max_iter': 3}}  # the preset's options are not changed
  with pytest.raises(ConfigError, match='unknown selection strategy'):
    common.strategy_options(['coolest.k=1'])
