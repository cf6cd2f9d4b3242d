import jax
import jax.numpy as jnp
import pytest
from jax import lax

from amrjax import models
from amrjax.models.flops import count_flops, xla_flops


def test_matmul_and_bias_closed_form():
  w, b, x = jnp.ones((16, 8)), jnp.ones((8,)), jnp.ones((3, 16))
  assert count_flops(lambda w, b, x: x @ w + b, w, b, x) == 2 * 3 * 16 * 8 + 3 * 8


def test_convolution_counts_window_times_channels_per_group():
  x = jnp.ones((2, 1, 20, 6))  # NHWC
  k = jnp.ones((1, 5, 3, 12))  # HWIO, two groups of 3 input channels
  conv = lambda x, k: lax.conv_general_dilated(
      x, k, (1, 1), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=2)
  out_elements = 2 * 1 * 16 * 12
  assert count_flops(conv, x, k) == 2 * out_elements * 5 * 3


def test_scan_bodies_count_once_per_step_where_xla_counts_once():
  w, x = jnp.ones((32, 32)), jnp.ones((1, 32))
  step = lambda c, _: (jnp.tanh(c @ w), None)
  one = count_flops(lambda x: lax.scan(step, x, None, length=1)[0], x)
  fifty = count_flops(lambda x: lax.scan(step, x, None, length=50)[0], x)
  assert one == 2 * 32 * 32 + 32 and fifty == 50 * one
  assert xla_flops(lambda x: lax.scan(step, x, None, length=50)[0], x) < 2 * one


def test_while_loops_are_refused():
  with pytest.raises(ValueError, match='while loop'):
    count_flops(lambda x: lax.while_loop(lambda c: c < 10, lambda c: c + 1, x), 0)


@pytest.mark.parametrize('name', ['cnn2d', 'cnn1d'])
def test_agrees_with_xla_on_loop_free_models(name):
  model = models.get(name, 11, 128)
  x = jnp.zeros((1, 2, 128))
  variables = model.init(jax.random.key(0), x)
  forward = lambda v, x: model.apply(v, x)
  ours, xla = count_flops(forward, variables, x), xla_flops(forward, variables, x)
  assert abs(ours - xla) / xla < 0.05
