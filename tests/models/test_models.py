import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax import models
from amrjax.errors import ConfigError
from tests.models.zoo_checks import shapes, training_losses


def _count(params):
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def _init(model, length, batch=2):
  return model.init(jax.random.key(0), jnp.zeros((batch, 2, length)), train=False)


def _params(model, length):
  """The parameter shapes, traced without compiling."""
  return shapes(model, length)['params']


def test_cnn2d_parameter_count_matches_vt_cnn2():
  # Keras VT-CNN2 on RML2016.10a: 2,830,427 parameters.
  assert _count(_params(models.get('cnn2d', 11, 128), 128)) == 2_830_427
  for length, classes in ((512, 12), (1024, 24)):
    expected = 1024 + 122_960 + (80 * (length + 4) + 1) * 256 + 257 * classes
    assert _count(_params(models.get('2d-cnn', classes, length), length)) == expected


def test_cnn1d_parameter_count_matches_its_spec():
  def expected(length, classes):
    convs = 3 * 2 * 64 + 6 * 3 * 64 * 64  # no bias before BatchNorm
    bns = 7 * 2 * 64
    flat = 64 * length // 128
    return convs + bns + (flat * 128 + 128) + (128 * 128 + 128) + (128 * classes + classes)
  for length, classes in ((128, 11), (512, 12), (1024, 24)):
    assert _count(_params(models.get('cnn1d', classes, length), length)) == expected(length,
                                                                              classes)


@pytest.mark.parametrize('name', ['cnn2d', 'cnn1d'])
@pytest.mark.parametrize('length', [128, 512, 1024])
def test_forward_shapes_and_embeddings(name, length):
  model = models.get(name, 5, length)
  x = jax.random.normal(jax.random.key(1), (3, 2, length))
  if length != 128:  # the longer lengths traced only: compiling them took most of the time
    variables = shapes(model, length)
    logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    emb = jax.eval_shape(lambda v, x: model.apply(v, x, method='embed'), variables, x)
  else:
    variables = _init(model, length)
    logits = model.apply(variables, x, train=False)
    emb = model.apply(variables, x, method='embed')
    assert np.isfinite(logits).all()
  assert logits.shape == (3, 5) and emb.shape[0] == 3 and emb.ndim == 2


def test_dropout_differs_between_train_and_eval():
  model = models.get('cnn2d', 4, 128)
  variables = _init(model, 128)
  x = jax.random.normal(jax.random.key(1), (2, 2, 128))
  # Embeddings, not logits: the 2D-CNN's head starts at zero, so its first logits are all 0.
  a = model.apply(variables, x, train=False, method='embed')
  np.testing.assert_array_equal(a, model.apply(variables, x, train=False, method='embed'))
  b = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)}, method='embed')
  assert not np.allclose(a, b)


def test_batchnorm_differs_between_train_and_eval():
  model = models.get('cnn1d', 4, 128)
  variables = _init(model, 128, batch=4)
  x = jax.random.normal(jax.random.key(1), (4, 2, 128)) * 3 + 1
  eval_out = model.apply(variables, x, train=False)
  train_out, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert not np.allclose(eval_out, train_out)
  before = jax.tree.leaves(variables['batch_stats'])
  after = jax.tree.leaves(updates['batch_stats'])
  assert any(not np.allclose(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize('name', ['cnn2d', 'cnn1d'])
def test_a_few_steps_lower_the_loss(name):
  model = models.get(name, 3, 128)
  losses = training_losses(model, _init(model, 128), 128, steps=8)
  assert losses[-1] < losses[0]


def test_unknown_model_and_short_signals():
  with pytest.raises(ConfigError, match="unknown model 'resnet9000'"):
    models.get('resnet9000', 3, 128)
  with pytest.raises(ConfigError, match='at least 128 samples'):
    _init(models.get('cnn1d', 3, 64), 64)


@pytest.mark.parametrize('name', models.names())
def test_every_registered_model_meets_the_selection_contract(name):
  """The scorers' view of every model: embeddings (B, D) under a Dense head (D, C).

  Traced, not compiled (compiling all 15 models took minutes); each family's own test checks
  numerically that eval-mode logits equal head(embed(x)).
  """
  from amrjax.scoring import features
  model = models.get(name, 5, 128)
  x = jax.ShapeDtypeStruct((3, 2, 128), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  out = jax.eval_shape(features.outputs_fn(model), variables, x)
  kernel, bias = features.head_params(variables)
  assert out['embedding'].shape == (3, kernel.shape[0]) and out['log_probs'].shape == (3, 5)
  assert kernel.shape[1] == 5 and bias.shape == (5,)
  assert models.label(name)
