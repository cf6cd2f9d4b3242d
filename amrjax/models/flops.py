"""Forward FLOPs of a JAX function, counted from its jaxpr, loops times their trip count.

XLA's cost analysis (``jax.jit(f).lower(...).compile().cost_analysis()['flops']``) counts
the body of a ``while`` loop once, whatever its trip count: a 100-step ``lax.scan`` of a
64 x 64 matmul reports the FLOPs of one step (measured with jax 0.10). Recurrent models (GRU,
LSTM, the LSTM stages of CLDNN and MCLDNN) run their time steps in such a loop, so XLA
under-counts them by a factor of about L. ``count_flops`` walks the jaxpr instead and
multiplies every ``scan`` body by its length. Conventions, as XLA's:

- ``dot_general``: 2 x (output elements) x (contracted size), i.e. 2 FLOPs per
  multiply-accumulate;
- ``conv_general_dilated``: 2 x (output elements) x (kernel window x input channels per
  group), taps on zero padding included (XLA leaves those out: a 'SAME' 3 x 2 convolution on
  a 64 x 2 image counts 1,572,864 here and 1,167,360 in XLA; 'VALID' agrees exactly);
- elementwise arithmetic and transcendental functions: 1 per output element;
- reductions: 1 per input element;
- data movement (reshape, transpose, slice, pad, gather, ...): 0.

On models without loops the count agrees with XLA's to within a few per cent
(``tests/test_flops.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax

_ELEMENTWISE = frozenset({
    'add', 'sub', 'mul', 'div', 'neg', 'max', 'min', 'abs', 'sign', 'exp', 'exp2', 'log',
    'log1p', 'expm1', 'tanh', 'logistic', 'sin', 'cos', 'tan', 'atan2', 'sqrt', 'rsqrt',
    'cbrt', 'pow', 'integer_pow', 'square', 'erf', 'erfc', 'erf_inv', 'select_n', 'rem',
    'floor', 'ceil', 'round', 'nextafter', 'atan', 'asin', 'acos', 'sinh', 'cosh', 'asinh',
    'acosh', 'atanh', 'lt', 'le', 'gt', 'ge', 'eq', 'ne', 'and', 'or', 'not', 'xor',
    'clamp', 'is_finite', 'add_any', 'reciprocal',
})
_REDUCTIONS = frozenset({'reduce_sum', 'reduce_max', 'reduce_min', 'reduce_prod',
                         'argmax', 'argmin', 'reduce_and', 'reduce_or', 'cumsum', 'cummax',
                         'cumlogsumexp', 'reduce_precision'})
_SUBJAXPR_PARAMS = ('jaxpr', 'call_jaxpr', 'fun_jaxpr')


def _size(aval) -> int:
  return math.prod(getattr(aval, 'shape', ()))


def _dot_general_flops(eqn) -> int:
  (lhs_contract, _), _ = eqn.params['dimension_numbers']
  lhs_shape = eqn.invars[0].aval.shape
  contracted = math.prod(lhs_shape[d] for d in lhs_contract)
  return 2 * _size(eqn.outvars[0].aval) * contracted


def _conv_flops(eqn) -> int:
  rhs_spec = eqn.params['dimension_numbers'].rhs_spec  # (out, in, *spatial) positions
  kernel_shape = eqn.invars[1].aval.shape
  window = math.prod(kernel_shape[d] for d in rhs_spec[2:])
  in_per_group = kernel_shape[rhs_spec[1]]
  return 2 * _size(eqn.outvars[0].aval) * window * in_per_group


def _jaxpr_flops(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'dot_general':
      total += _dot_general_flops(eqn)
    elif name == 'conv_general_dilated':
      total += _conv_flops(eqn)
    elif name in _ELEMENTWISE:
      total += _size(eqn.outvars[0].aval)
    elif name in _REDUCTIONS:
      total += _size(eqn.invars[0].aval)
    elif name == 'scan':
      total += eqn.params['length'] * _jaxpr_flops(eqn.params['jaxpr'].jaxpr)
    elif name == 'while':
      raise ValueError('count_flops cannot count a while loop (its trip count is not '
                       'static); write the loop as lax.scan or lax.fori_loop with static '
                       'bounds')
    elif name == 'cond':
      total += max(_jaxpr_flops(branch.jaxpr) for branch in eqn.params['branches'])
    else:
      for param in _SUBJAXPR_PARAMS:
        sub = eqn.params.get(param)
        if sub is not None:
          total += _jaxpr_flops(getattr(sub, 'jaxpr', sub))
          break
  return total


def count_flops(fn: Callable, *args) -> int:
  """FLOPs of one call ``fn(*args)`` (see the module docstring for the conventions)."""
  closed = jax.make_jaxpr(fn)(*args)
  return _jaxpr_flops(closed.jaxpr)


def xla_flops(fn: Callable, *args) -> float:
  """XLA's own estimate for the compiled ``fn(*args)`` (loop bodies counted once)."""
  analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis['flops'])


__all__ = ['count_flops', 'xla_flops']
