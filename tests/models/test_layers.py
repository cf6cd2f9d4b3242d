import hashlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from amrjax import models
from amrjax.errors import ConfigError
from amrjax.models.layers import (Conv2D, DepthwiseConv1D, Dropout, GroupedConv1D,
                                  conv2d_matmul_kernel_grad)


def _reference(x, k, padding):
  return jax.lax.conv_general_dilated(x, k, (1, 1), padding,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@pytest.mark.parametrize('shape,kshape', [((3, 2, 20, 1), (1, 3, 1, 8)),
                                          ((2, 2, 17, 5), (2, 3, 5, 4))])
def test_matmul_kernel_grad_matches_xla(shape, kshape):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  k = jnp.asarray(rng.standard_normal(kshape), jnp.float32)
  padding = ((0, 0), (2, 2))
  y_ref, vjp_ref = jax.vjp(lambda x, k: _reference(x, k, padding), x, k)
  y, vjp = jax.vjp(lambda x, k: conv2d_matmul_kernel_grad(x, k, padding), x, k)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
  for got, want in zip(vjp(g), vjp_ref(g)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv2d_is_parameter_compatible_with_flax_conv():
  x = jnp.ones((2, 2, 16, 1))
  ours = Conv2D(8, (1, 3), padding=((0, 0), (2, 2)), matmul_kernel_grad=True)
  theirs = nn.Conv(8, (1, 3), padding=((0, 0), (2, 2)))
  params = ours.init(jax.random.key(0), x)
  ref_params = theirs.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, ref_params)
  np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), rtol=1e-5)


def test_dropout_keeps_the_expected_fraction_and_the_mean():
  x = jnp.ones((64, 1000))
  layer = Dropout(0.5)
  y = layer.apply({}, x, deterministic=False, rngs={'dropout': jax.random.key(0)})
  kept = np.asarray(y != 0)
  assert abs(kept.mean() - 0.5) < 0.01
  np.testing.assert_allclose(np.asarray(y)[kept], 2.0)
  y3 = Dropout(0.3).apply({}, x, deterministic=False, rngs={'dropout': jax.random.key(1)})
  assert abs(float(jnp.mean(y3)) - 1.0) < 0.01  # inverted scaling keeps the mean
  assert abs(float(jnp.mean(y3 != 0)) - 179 / 256) < 0.01
  np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
  other = layer.apply({}, x, deterministic=False, rngs={'dropout': jax.random.key(2)})
  assert not np.array_equal(np.asarray(y), np.asarray(other))
  assert float(jnp.abs(Dropout(1.0).apply({}, x, deterministic=False,
                                          rngs={'dropout': jax.random.key(0)})).sum()) == 0


_DEPTHWISE_CASES = [(length, use_bias, padding) for length in (15, 16)
                    for use_bias in (False, True)
                    for padding in ('SAME', 'VALID', 'same-int', (2, 0))]


def _grouped_and_shifted(kernel_size, stride, channels=6):
  """For every case (odd and even length, with and without bias, four paddings): both
  layers' initial variables from one key, and their outputs and input/parameter gradients
  on the same parameters. One jitted program per (kernel_size, stride)."""

  @jax.jit
  def run(key):
    out = []
    for length, use_bias, padding in _DEPTHWISE_CASES:
      if padding == 'same-int':  # the explicit (k // 2, k // 2) of ClST and KD-MobileNet
        padding = (kernel_size // 2, kernel_size // 2)
      x = jnp.asarray(np.random.default_rng(length).standard_normal((2, length, channels)),
                      jnp.float32)
      ours = DepthwiseConv1D(kernel_size, strides=stride, padding=padding, use_bias=use_bias)
      flax_padding = padding if isinstance(padding, str) else (tuple(padding),)
      theirs = nn.Conv(channels, (kernel_size,), strides=(stride,), padding=flax_padding,
                       feature_group_count=channels, use_bias=use_bias)
      ours_init, theirs_init = ours.init(key, x), theirs.init(key, x)
      params = dict(ours_init['params'])
      if use_bias:  # a non-zero bias, so that adding it is checked too
        params['bias'] = jax.random.normal(jax.random.fold_in(key, 1), params['bias'].shape)
      results = []
      for layer in (ours, theirs):
        y, vjp = jax.vjp(layer.apply, {'params': params}, x)
        g = jnp.cos(jnp.arange(y.size, dtype=y.dtype)).reshape(y.shape)  # a fixed cotangent
        results.append((y, vjp(g)))
      out.append((ours_init, theirs_init, results))
    return out

  return run(jax.random.key(0, impl='rbg'))


@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('kernel_size', [1, 2, 3, 5])
def test_depthwise_conv_equals_a_grouped_flax_conv(kernel_size, stride):
  for case, (ours_init, flax_init, results) in zip(_DEPTHWISE_CASES,
                                                   _grouped_and_shifted(kernel_size, stride)):
    # Same parameter tree, initialisers and draw order: the same seed gives the same values.
    assert jax.tree.map(jnp.shape, ours_init) == jax.tree.map(jnp.shape, flax_init), case
    assert ours_init['params']['kernel'].shape == (kernel_size, 1, 6)
    np.testing.assert_array_equal(ours_init['params']['kernel'],
                                  flax_init['params']['kernel'])
    (y, grads), (y_ref, grads_ref) = results
    assert y.shape == y_ref.shape, case
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5, err_msg=str(case))
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=str(case))


def test_depthwise_conv_rejects_bad_settings():
  x = jnp.ones((1, 4, 3))
  with pytest.raises(ConfigError):
    DepthwiseConv1D(3, padding='CIRCULAR').init(jax.random.key(0), x)
  with pytest.raises(ConfigError):
    DepthwiseConv1D(7, padding='VALID').init(jax.random.key(0), x)


@pytest.mark.parametrize('dilation,padding', [(1, 'SAME'), (2, 'SAME'), (2, 'VALID'),
                                              (1, ((2, 0),))])
def test_grouped_conv_equals_a_grouped_flax_conv(dilation, padding):
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 9, 8)), jnp.float32)
  ours = GroupedConv1D(6, 3, dilation, groups=2, padding=padding)
  theirs = nn.Conv(6, (3,), padding=padding, kernel_dilation=(dilation,),
                   feature_group_count=2, use_bias=False)
  key = jax.random.key(0)
  ours_init, theirs_init = ours.init(key, x), theirs.init(key, x)
  assert ours_init['params']['kernel'].shape == (3, 4, 6)
  np.testing.assert_array_equal(ours_init['params']['kernel'], theirs_init['params']['kernel'])
  results = []
  for layer in (ours, theirs):
    y, vjp = jax.vjp(layer.apply, ours_init, x)
    results.append((y, vjp(jnp.cos(jnp.arange(y.size, dtype=y.dtype)).reshape(y.shape))))
  (y, grads), (y_ref, grads_ref) = results
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_grouped_conv_rejects_channels_that_groups_do_not_divide():
  with pytest.raises(ConfigError, match='divisible by groups'):
    GroupedConv1D(6, groups=4).init(jax.random.key(0), jnp.ones((1, 5, 8)))


def _tree_digest(variables) -> tuple[int, str]:
  lines = sorted(f'{path} {tuple(leaf.shape)}' for path, leaf in
                 traverse_util.flatten_dict(variables, sep='/').items())
  return len(lines), hashlib.sha256('\n'.join(lines).encode()).hexdigest()


# Every variable's path and shape ('params' and 'batch_stats') at L = 128, C = 11, recorded
# from the models as they were before their grouped nn.Conv convolutions became
# DepthwiseConv1D (ClST, KD-MobileNet) or GroupedConv1D (AFNet): the same names and shapes,
# hence the same initial values from a seed and loadable old checkpoints.
_TREES_BEFORE_SHIFTED_CONVS = {
    'afnet': (133, '2bd37c24a547660a0fc3f7924a01f80464fba05fc4732bf268adaee95d64f4d1'),
    'clst': (189, '021c3841d64efb6794513dc6df01d70ad38bfaa0f57d8d0dafa7d026ef3e4c40'),
    'kd_mobilenet': (112, 'dfe0973d9784faea0aca5d3d0963841b8f820a51407f31900262dc462fb8fc61'),
}


@pytest.mark.parametrize('name', sorted(_TREES_BEFORE_SHIFTED_CONVS))
def test_rewritten_conv_call_sites_keep_the_grouped_conv_variable_tree(name):
  model = models.get(name, 11, 128)
  variables = jax.eval_shape(lambda key: model.init(key, jnp.zeros((2, 2, 128)), train=False),
                             jax.random.key(0))
  assert _tree_digest(variables) == _TREES_BEFORE_SHIFTED_CONVS[name], '\n'.join(sorted(
      f'{p} {tuple(v.shape)}' for p, v in traverse_util.flatten_dict(variables, sep='/').items()))
