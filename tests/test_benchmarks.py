"""Smoke tests of the benchmark scripts' measuring functions, on tiny settings."""

import dataclasses
import types

import numpy as np
import pytest

from amrjax import models
from amrjax.data import formats, sources
from amrjax.data import synth
from amrjax.errors import ConfigError
from amrjax.scoring import pools
from amrjax.selection import select
from benchmarks import (analog_separability, batchnorm_eval_gap, bf16_selection,
                        conv_formulations, out_of_core, scoring_throughput, train_step_times)
from tests.helpers import random_pool


def test_scoring_throughput_measures_every_path_and_checks_they_agree():
  settings = scoring_throughput.Settings(
      models=('cnn2d',), lengths=(128,), scorers=('margin',), softmax_batch=16,
      softmax_samples=24, repeats=1, matmul_size=64, paths=('single', 'pmap', 'topk'))
  emitted = []
  rows = scoring_throughput.measure(settings, emitted.append)
  assert emitted == rows
  kinds = [(r['kind'], r.get('scorer'), r.get('path')) for r in rows]
  assert kinds == [('matmul', None, None), ('forward', None, None),
                   ('score', 'margin', 'single'), ('score', 'margin', 'pmap'),
                   ('score', 'margin', 'topk')]
  for r in rows[2:]:
    assert r['samples_per_s'] > 0 and r['first_call_s'] > 0 and r['gflop_per_sample_xla'] > 0
    if r['path'] != 'topk':
      assert r['max_abs_diff_vs_first_path'] < 1e-4
  assert 'overhead_vs_forward' in rows[4] and rows[4]['topk_equals_full_sort'] is True
  assert '| cnn2d | 128 | margin | pmap | 16 |' in scoring_throughput.table(rows)


def test_untrained_variables_redraw_only_the_zero_head():
  model = models.get('cnn2d', 4, 128)
  variables = scoring_throughput.untrained_variables(model, 128)
  assert np.any(variables['params']['head']['kernel'])
  assert not np.any(variables['params']['head']['bias'])


def test_scoring_throughput_refuses_unknown_names():
  with pytest.raises(ConfigError, match='unknown scorer'):
    scoring_throughput.Settings(scorers=('margin', 'magic'))


def test_out_of_core_selects_what_scoring_everything_selects(tmp_path, tiny_spec):
  path = sources.synthetic_path(tiny_spec, tmp_path, count_per_cell=10, seed=0)
  sources.ensure_synthetic(tiny_spec, path, count_per_cell=10, seed=0, notify=lambda _: None)
  pool = formats.read_dataset(path, tiny_spec)
  assert isinstance(pool.store, formats.H5Store)
  report, ids = out_of_core.score_out_of_core(pool, 'cnn1d', select_fraction=0.25, batch_size=16,
                                                 compare_in_memory=True)
  assert report['vectors'] == 120 and report['k'] == 30 and report['selected'] == 30
  assert report['peak_rss_gib'] > 0 and report['read_s'] > 0
  assert report['in_memory_selects_the_same'] and report['in_memory_samples_per_s'] > 0
  model = models.get('cnn1d', 4, 128)
  margins = pools.score_pool(model, scoring_throughput.untrained_variables(model, 128),
                               pool.in_memory())
  want = select.top_k(margins, 30, largest=False)
  np.testing.assert_array_equal(ids, pool.ids[want])
  assert report['selected_class_counts'] == np.bincount(pool.y[want], minlength=4).tolist()


def test_bf16_comparison_on_known_scores():
  fp32 = np.arange(100, dtype=np.float32) / 100
  bf16 = fp32.copy()
  bf16[[0, 50]] = bf16[[50, 0]]  # one of the 10 smallest swapped out
  report = bf16_selection.compare_selections(fp32, bf16, [0.1, 1.0])
  assert report['overlap'] == {'0.1': {'k': 10, 'overlap': 0.9},
                               '1': {'k': 100, 'overlap': 1.0}}
  assert report['max_abs_margin_diff'] == pytest.approx(0.5)
  assert 0.9 < report['spearman'] < 1.0


def test_conv_formulations_agree():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 2, 18, 256)).astype(np.float32)
  k = rng.standard_normal((2, 3, 256, 80)).astype(np.float32) * 0.05
  outs = {name: np.asarray(fn(x, k)) for name, fn in conv_formulations.conv_variants(16).items()}
  assert len(outs) == 4
  for out in outs.values():
    assert out.shape == (2, 1, 20, 80)
    np.testing.assert_allclose(out, outs['XLA conv, NHWC'], atol=1e-4)


def test_batchnorm_eval_gap_probes_a_batchnorm_model_and_refuses_others():
  split = types.SimpleNamespace(train=random_pool(n=48, seed=0), test=random_pool(n=20, seed=1))
  settings = batchnorm_eval_gap.Settings(train_size=40, steps=4, batch_size=8, test_size=16,
                                         population_batches=2)
  r = batchnorm_eval_gap.probe('kd_cnn', 4, split, settings)
  assert r['steps'] == 5 and r['epochs'] == 1  # 40 vectors: 5 steps an epoch
  for key in ('train_mode_accuracy', 'eval', 'population', 'batch'):
    assert 0.0 <= r[key] <= 1.0
  assert r['worst_layer'].startswith('features/') and r['mean_offset'] >= 0
  assert batchnorm_eval_gap.row(r).startswith('| kd_cnn | 5 |')
  with pytest.raises(ConfigError, match='no BatchNorm'):
    batchnorm_eval_gap.probe('cnn2d', 4, split, settings)
  with pytest.raises(ConfigError, match='no batchnorm_momentum'):
    batchnorm_eval_gap.probe('kd_cnn', 4, split, dataclasses.replace(settings, momentum=0.5))


def test_analog_separability_falls_with_speech_pauses():
  probe = analog_separability
  assert probe.best_threshold_accuracy(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
  profile = synth.PROFILES['rml2016.10a']
  no_pauses = dataclasses.replace(profile, pause_fraction=0.0)
  only_pauses = dataclasses.replace(profile, pause_fraction=1.0)
  assert probe.separability(no_pauses, 18, 300) > 0.9
  assert probe.separability(only_pauses, 18, 300) < 0.65  # bare carriers: near a coin toss


def test_train_step_times_times_each_model_and_refuses_bad_pairs():
  pairs = train_step_times.parse_models(['cnn1d:4', 'KD-CNN:2'])
  assert pairs == [('cnn1d', 4), ('kd_cnn', 2)]
  rows = train_step_times.measure(pairs[:1], length=128, classes=3, repeats=1, matmul_size=32,
                                  emit=lambda row: None)
  assert [r['kind'] for r in rows] == ['matmul', 'step'] and rows[0]['gflop_per_s'] > 0
  assert rows[1]['model'] == 'cnn1d' and rows[1]['seconds_per_step'] > 0
  assert '| cnn1d | 4 |' in train_step_times.table(rows)
  for bad in ('cnn1d', 'cnn1d:0', 'cnn1d:x', 'nonet:4'):
    with pytest.raises(ConfigError):
      train_step_times.parse_models([bad])
