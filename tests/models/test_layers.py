import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax.models.layers import Conv2D, Dropout, conv2d_matmul_kernel_grad


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
