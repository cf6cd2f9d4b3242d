"""Epoch checkpoints: a training killed by a real signal continues to the same result."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from amrjax import models
from amrjax.errors import ConfigError
from amrjax.train import TrainConfig, fit, fit_recording, loop
from tests.helpers import random_pool

CONFIG = TrainConfig(epochs=4, batch_size=16)


@pytest.fixture(autouse=True)
def _checkpoint_every_epoch(monkeypatch):
  monkeypatch.setattr(loop, 'CHECKPOINT_INTERVAL_SECONDS', 0.0)

# Trains cnn2d on random_pool(48) with epoch checkpoints in argv[1]; kills itself with
# SIGKILL after epoch argv[2] (0: never) and otherwise writes its final parameters' sum
# and the history to argv[1]/result.json.
_SCRIPT = textwrap.dedent('''
    import json, os, signal, sys
    import jax, numpy as np
    from amrjax import models
    from amrjax.train import TrainConfig, fit
    from tests.helpers import random_pool
    folder, kill_after = sys.argv[1], int(sys.argv[2])
    def on_epoch(m):
      if m['epoch'] == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
    state, history = fit(models.get('cnn2d', 4, 128), random_pool(48),
                         TrainConfig(epochs=4, batch_size=16), seed=5,
                         checkpoint=folder + '/ckpt', checkpoint_interval=0,
                         on_epoch=on_epoch)
    leaves = [np.asarray(l).tolist() for l in jax.tree.leaves(state.params)]
    json.dump({'params': leaves, 'history': history, 'step': int(state.step)},
              open(folder + '/result.json', 'w'))
    ''')


def _leaves(state):
  return [np.asarray(leaf) for leaf in jax.tree.leaves(state.params)]


def test_a_killed_training_resumes_to_the_uninterrupted_result(tmp_path):
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  script = tmp_path / 'train.py'
  script.write_text(_SCRIPT)
  env = {**os.environ, 'PYTHONPATH': root, 'JAX_PLATFORMS': 'cpu'}
  killed = subprocess.run([sys.executable, str(script), str(tmp_path), '2'], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  # Killed while epoch 2 was reported, which comes before its checkpoint.
  assert sorted(p.name for p in (tmp_path / 'ckpt').iterdir()) == ['epoch-1', 'epoch-1.json']
  resumed = subprocess.run([sys.executable, str(script), str(tmp_path), '0'], env=env,
                           cwd=root, capture_output=True, text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  result = json.loads((tmp_path / 'result.json').read_text())

  state, history = fit(models.get('cnn2d', 4, 128), random_pool(48), CONFIG, seed=5)
  assert result['history'] == history  # every epoch's metrics, the first read back
  assert result['step'] == int(state.step) == 12
  for got, want in zip(result['params'], _leaves(state)):
    np.testing.assert_array_equal(np.asarray(got, np.float32), want)


def test_a_finished_training_is_returned_from_its_checkpoint(tmp_path):
  model, pool = models.get('cnn2d', 4, 128), random_pool(48)
  state, history = fit(model, pool, CONFIG, seed=1, checkpoint=tmp_path)
  calls = []
  again, again_history = fit(model, pool, CONFIG, seed=1, checkpoint=tmp_path,
                             on_epoch=calls.append)
  assert calls == [] and again_history == history  # nothing retrained
  for a, b in zip(_leaves(state), _leaves(again)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ConfigError, match=r'other settings \(differs in: config, seed\)'):
    fit(model, pool, TrainConfig(epochs=5, batch_size=16), seed=2, checkpoint=tmp_path)


def test_early_stopping_and_dynamics_resume(tmp_path):
  model, pool = models.get('cnn2d', 4, 128), random_pool(48)
  flipped = random_pool(48, seed=1)
  config = TrainConfig(epochs=6, batch_size=16, patience=1)
  want, want_history = fit(model, pool, config, seed=0, validation=flipped)

  class Stop(Exception):
    pass

  def stop_after_two(m):
    if m['epoch'] == 2:
      raise Stop
  with pytest.raises(Stop):
    fit(model, pool, config, seed=0, validation=flipped, checkpoint=tmp_path / 'a',
        on_epoch=stop_after_two)
  got, got_history = fit(model, pool, config, seed=0, validation=flipped,
                         checkpoint=tmp_path / 'a')
  assert got_history == want_history  # the same early stop, the same kept epoch
  for a, b in zip(_leaves(want), _leaves(got)):
    np.testing.assert_array_equal(a, b)

  plain = TrainConfig(epochs=3, batch_size=16)
  _, _, want_dyn = fit_recording(model, pool, plain, seed=0)
  with pytest.raises(Stop):
    fit_recording(model, pool, plain, seed=0, checkpoint=tmp_path / 'b',
                  on_epoch=stop_after_two)
  _, _, got_dyn = fit_recording(model, pool, plain, seed=0, checkpoint=tmp_path / 'b')
  for a, b in zip(jax.tree.leaves(want_dyn), jax.tree.leaves(got_dyn)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_array_equal(np.asarray(got_dyn.presentations), 3)


def test_a_divergence_keeps_the_last_good_epoch(tmp_path, monkeypatch):
  model, pool = models.get('cnn2d', 4, 128), random_pool(48)
  want, _ = fit(model, pool, CONFIG, seed=3)
  real_step_fn = loop.train_step_fn

  def diverging_step_fn(*args, **kwargs):
    step = real_step_fn(*args, **kwargs)

    def step_with_nan_in_epoch_three(state, *rest):
      state, metrics = step(state, *rest)
      if int(state.step) > 2 * 3:  # 3 steps per epoch: epoch 3 onwards reports a NaN loss
        metrics = {**metrics, 'loss_sum': metrics['loss_sum'] * np.nan}
      return state, metrics
    return step_with_nan_in_epoch_three
  monkeypatch.setattr(loop, 'train_step_fn', diverging_step_fn)
  with pytest.raises(loop.TrainingDivergedError, match=r'epoch 3 \(by step 9\)'):
    fit(model, pool, CONFIG, seed=3, checkpoint=tmp_path)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch-2', 'epoch-2.json']
  monkeypatch.setattr(loop, 'train_step_fn', real_step_fn)
  got, history = fit(model, pool, CONFIG, seed=3, checkpoint=tmp_path)
  assert [h['epoch'] for h in history] == [1, 2, 3, 4]
  for a, b in zip(_leaves(want), _leaves(got)):
    np.testing.assert_array_equal(a, b)


def test_a_damaged_epoch_checkpoint_is_reported_and_the_training_redone(tmp_path, capsys):
  """A cut-off record, then a flipped byte in orbax's data: one line each, a fresh start."""
  model, pool = models.get('cnn2d', 4, 128), random_pool(48)
  want, want_history = fit(model, pool, CONFIG, seed=1, checkpoint=tmp_path)
  record = tmp_path / 'epoch-4.json'
  record.write_text(record.read_text()[:40])

  def flip_a_byte():
    data = max((p for p in (tmp_path / 'epoch-4').rglob('*') if p.is_file()),
               key=lambda p: p.stat().st_size)
    flipped = bytearray(data.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    data.write_bytes(bytes(flipped))
  for damaged, why, damage_next in ((record, 'is unreadable (JSONDecodeError', flip_a_byte),
                                    (tmp_path / 'epoch-4', 'does not hold the arrays', None)):
    capsys.readouterr()
    got, history = fit(model, pool, CONFIG, seed=1, checkpoint=tmp_path)
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith('warning')]
    assert len(lines) == 1  # (progress lines aside)
    assert lines[0].startswith(f'warning: damaged checkpoint: {damaged} {why}')
    assert lines[0].endswith('removed it, starting this step afresh')
    assert history == want_history
    for a, b in zip(_leaves(want), _leaves(got)):
      np.testing.assert_array_equal(a, b)
    if damage_next:
      damage_next()
