"""Every BatchNorm model classifies as well in eval mode as with batch statistics.

Issue 16: trained at a constant Adam rate on RML2016-scaled vectors (each divided by the sum
of |x|, so first-layer activations have a standard deviation of ~1e-3), the 1D-CNN's
running means trailed a pre-BatchNorm bias that Adam moved by ~lr every step, and eval mode
fell to chance while batch statistics classified well; SigNet's running variances trailed
its growing weights. Toy tests on unit-scale noise never showed either. Each model here
is traced for layers with a bias that feed a BatchNorm (the 1D-CNN's and ClST's defect,
found without training), then trains 60 constant-rate steps on stand-in vectors at the
real file's scale (the old 1D-CNN's first running mean is 0.97 standard deviations off by
then; ``benchmarks/batchnorm_eval_gap.py`` runs 315 steps on the full stand-in).
Then eval mode as ``fit`` leaves it (population statistics of the final parameters) must
score no more than 5 points below train mode's batch statistics on the same test vectors, and
every running mean must sit within half a standard deviation of the population mean.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import models
from amrjax.data import specs, synth
from amrjax.data.pool import SignalPool
from amrjax.seeding import derive_seed
from amrjax.train import TrainConfig, fit
from amrjax.train.batchnorm import (batch_statistics_logits, has_batchnorm,
                                    population_batch_stats, running_stat_offsets)
from amrjax.train.loop import RUNNING

LENGTH = 128
CLASSES = ('BPSK', 'QPSK', 'QAM16', 'GFSK', 'AM-DSB', 'WBFM')
SNRS = (12, 16)
TRAIN_PER_CELL, TEST_PER_CELL = 160, 32
BATCH = 32  # zoo_checks.BATCH: ClST's, IQFormer's and the students' own tests step fit's
# train step at these settings, so one compile serves both (the compilation cache)
STEPS = 60  # a constant rate: no decay lets the running statistics catch up at the end

BATCHNORM_MODELS = tuple(n for n in models.names()
                         if has_batchnorm(models.get(n, len(CLASSES), LENGTH), LENGTH))


def _pool(per_cell: int, seed: int) -> SignalPool:
  """RML2016.10a-scaled stand-in vectors (sum |x| = 1 per vector), class by class."""
  xs, ys, snrs = [], [], []
  for c, name in enumerate(CLASSES):
    for s, snr in enumerate(SNRS):
      rng = np.random.default_rng([seed, c, s])
      xs.append(synth.synthesize(name, snr, LENGTH, rng, count=per_cell,
                                 normalisation=specs.L1_NORM))
      ys.append(np.full(per_cell, c))
      snrs.append(np.full(per_cell, snr))
  return SignalPool.from_arrays(np.concatenate(xs), np.concatenate(ys), np.concatenate(snrs),
                                CLASSES)


@pytest.fixture(scope='module')
def data():
  return _pool(TRAIN_PER_CELL, seed=1), _pool(TEST_PER_CELL, seed=2)


def test_every_model_known_to_use_batchnorm_is_checked():
  assert {'cnn1d', 'signet', 'afnet', 'clst', 'iqformer', 'kd_cnn',
          'kd_mobilenet'} <= set(BATCHNORM_MODELS)
  assert 'cnn2d' not in BATCHNORM_MODELS


def test_the_data_are_at_rml2016_scale(data):
  train, _ = data
  x = train.signals()
  np.testing.assert_allclose(np.abs(x[:, 0] + 1j * x[:, 1]).sum(axis=1), 1.0, rtol=1e-4)
  assert x.std() < 1e-2


def _biased_layers_feeding_batchnorm(model) -> list[str]:
  """Paths of layers with a bias whose output is a BatchNorm's input, found by tracing
  ``model`` once (``jax.eval_shape``, nothing compiled) with every module call intercepted."""
  produced_by, found = {}, []

  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name == '__call__' and isinstance(module, nn.BatchNorm) and args:
      source = produced_by.get(id(args[0]))
      if source is not None:
        found.append(f'{"/".join(source.path)} -> {"/".join(module.path)}')
    out = next_fun(*args, **kwargs)
    if context.method_name == '__call__' and getattr(module, 'use_bias', False):
      produced_by[id(out)] = module
    return out

  def trace():
    with nn.intercept_methods(interceptor):
      return model.init(jax.random.key(0), jnp.zeros((2, 2, LENGTH)), train=True)

  jax.eval_shape(trace)
  return found


@pytest.mark.parametrize('name', BATCHNORM_MODELS)
def test_no_layer_with_a_bias_feeds_a_batchnorm(name):
  """Such a bias has an exactly zero gradient (the batch mean takes it away), yet Adam moves
  it by ~lr a step, faster than the running mean follows on RML2016-scaled activations:
  the 1D-CNN's and ClST's defect."""
  assert _biased_layers_feeding_batchnorm(models.get(name, len(CLASSES), LENGTH)) == []


def test_the_bias_check_finds_a_biased_convolution_before_batchnorm():
  class BiasedConvNorm(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      h = nn.Conv(4, (3,))(jnp.swapaxes(x, 1, 2))
      h = nn.BatchNorm(use_running_average=not train)(h)
      return nn.Dense(3)(nn.BatchNorm(use_running_average=not train)(
          nn.Conv(4, (3,), use_bias=False)(h)).mean(axis=1))

  assert _biased_layers_feeding_batchnorm(BiasedConvNorm()) == ['Conv_0 -> BatchNorm_0']


@pytest.mark.parametrize('name', BATCHNORM_MODELS)
def test_eval_mode_matches_batch_statistics_after_constant_rate_training(data, name):
  train, test = data
  model = models.get(name, len(CLASSES), LENGTH)
  epochs = -(-STEPS // -(-len(train) // BATCH))
  # Running statistics kept, to check them; fit's default then replaces them by exactly
  # these population statistics (tests/train/test_loop.py).
  config = TrainConfig(epochs, BATCH, 1e-3, batchnorm_statistics=RUNNING)
  state, _ = fit(model, train, config, seed=0)
  population = population_batch_stats(model, state.variables, train, BATCH,
                                      seed=derive_seed(0, 'batchnorm'))
  order = np.random.default_rng(0).permutation(len(test))  # mixed batches: the pool is sorted
  x, y = jnp.asarray(test.signals(order)), test.y[order]
  # Jitted: op by op, ClST's eval pass took 33 s on a loaded core.
  logits = jax.jit(lambda v, x: model.apply(v, x, train=False))(
      {'params': state.params, 'batch_stats': population}, x)
  eval_accuracy = float(np.mean(np.argmax(logits, -1) == y))
  batch_logits = batch_statistics_logits(model, state.variables, x, BATCH)
  batch_accuracy = float(np.mean(np.argmax(batch_logits, -1) == y[:len(batch_logits)]))
  assert batch_accuracy > 2.0 / len(CLASSES), 'the model did not learn; the check is void'
  # One-sided: dropout (KD-CNN, ClST) and batch noise lower the batch-statistics accuracy.
  assert eval_accuracy >= batch_accuracy - 0.05, (eval_accuracy, batch_accuracy)
  # The running means themselves track the parameters (a bias that Adam moves in front of a
  # BatchNorm, the 1D-CNN's defect, puts them 1.5 standard deviations off).
  offsets = running_stat_offsets(state.batch_stats, population)
  worst = max(offsets, key=lambda k: offsets[k]['mean_offset'])
  assert offsets[worst]['mean_offset'] < 0.5, (worst, offsets[worst])
