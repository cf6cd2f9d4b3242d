import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amrjax.errors import ConfigError
from amrjax.models.clst import (PSCA, ClST, ConvAttention, ConvProjection, ConvTokenEmbedding)
from tests.models import zoo_checks


# Everything runs jitted, and each program is compiled once per shape: run op by op, ClST
# compiles hundreds of small programs (minutes on the CI machine). Do not lower XLA's
# optimisation level to save compile time: at level 0 the CPU backend returned NaN gradients
# for this model where the default level gives finite ones.



# fit's state at test_batchnorm_eval.py's settings (6 classes, L = 128): the initialisation
# and the train steps below are the programs fit compiles there (the compilation cache).
@pytest.fixture(scope='module')
def clst6():
  model = ClST(6)
  return model, zoo_checks.fit_state(model, 128)


_CACHE = {}


def _forward(model):
  """Jitted eval-mode (logits, embed, head(embed), sown attention weights)."""
  if ('forward', model) not in _CACHE:
    def forward(v, x):
      logits, state = model.apply(v, x, train=False, mutable=['intermediates'])
      return (logits, model.apply(v, x, method='embed'),
              model.apply(v, x, method=lambda m, x: m.head(m.embed(x))),
              state['intermediates'])
    _CACHE['forward', model] = jax.jit(forward)
  return _CACHE['forward', model]


def test_parameter_count_matches_the_closed_form():
  def psca(c):  # channel 1x1 pair (r = 4) + spatial conv 2 -> 1, kernel 7
    return c * (c // 4) + c // 4 + (c // 4) * c + c + 7 * 2 + 1

  def block(c):
    norms = 2 * 2 * c
    qkv = 3 * (3 * c + 2 * c + c * c + c)  # depthwise k3, BatchNorm, pointwise
    return norms + psca(c) + qkv + (c * c + c) + (c * 4 * c + 4 * c) + (4 * c * c + c)

  def expected(classes):
    embedding = 7 * 2 * 32 + 5 * 32 * 32 + 3 * 32 * 32 + 3 * 2 * 32  # no conv bias
    total, prev = embedding + psca(32), 32
    for d in (32, 64, 96, 128):
      total += 3 * prev * d + d + 2 * d + block(d)
      prev = d
    return total + 2 * 128 + 129 * classes

  for length, classes in ((128, 11), (1024, 24)):
    shapes = jax.eval_shape(ClST(classes).init, jax.random.key(0), jnp.zeros((2, 2, length)))
    assert zoo_checks.count(shapes['params']) == expected(classes)
  assert expected(11) == 469_966


@pytest.mark.parametrize('length', [128, 512, 1024])
def test_forward_shapes_and_embedding(clst6, length):
  model, variables = clst6[0], clst6[1].variables  # no parameter depends on L
  logits, emb, head_of_embed, inter = _forward(model)(variables, zoo_checks.signal(2, length))
  assert logits.shape == (2, 6) and np.isfinite(logits).all()
  assert emb.shape == (2, 128)
  np.testing.assert_allclose(head_of_embed, logits, rtol=1e-6, atol=1e-6)
  # Stage i attends from T_i = L / 2^i query tokens to T_i / 2 key/value tokens.
  for i, heads in enumerate((1, 2, 3, 4)):
    (weights,) = inter[f'stages_{i}_0']['attention']['attention_weights']
    tokens = length // 2**(i + 1)
    assert weights.shape == (2, heads, tokens, tokens // 2)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


def test_psca_map_is_a_sum_of_a_channel_and_a_spatial_term():
  x = zoo_checks.normal(2, 20, 4, seed=1) * jnp.arange(1.0, 3.0, 0.5)
  module = PSCA(reduction=4)
  variables = jax.jit(module.init)(jax.random.key(0), x)
  both = jax.jit(lambda v, x: (module.apply(v, x),
                               module.apply(v, x, method='attention_map')))
  out, att = both(variables, x)
  assert out.shape == x.shape
  assert att.shape == x.shape and (att > 0).all() and (att < 1).all()
  np.testing.assert_allclose(out, x * att, rtol=1e-6)
  # Parallel branches merged by a sum before the sigmoid: logit(att)[b, t, c] = a[b, c] + s[b, t].
  logit = jnp.log(att) - jnp.log1p(-att)
  diff = logit - logit[:, :1, :]  # s[b, t] - s[b, 0], the same for every channel
  np.testing.assert_allclose(diff, jnp.broadcast_to(diff[..., :1], diff.shape), atol=1e-4)


@pytest.mark.parametrize('tokens, kv_tokens', [(10, 5), (9, 5)])
def test_projection_halves_the_key_and_value_tokens(tokens, kv_tokens):
  x = zoo_checks.normal(2, tokens, 8, seed=0)
  module = ConvProjection(12)
  variables = jax.eval_shape(module.init, jax.random.key(1), x)  # shapes only
  q, k, v = jax.eval_shape(module.apply, variables, x)
  assert q.shape == (2, tokens, 12)
  assert k.shape == v.shape == (2, kv_tokens, 12)
  assert variables['params']['q_depthwise']['kernel'].shape == (3, 1, 8)  # depthwise


def test_attention_shapes():
  # Softmax rows are checked on the full model in test_forward_shapes_and_embedding.
  x = zoo_checks.normal(2, 13, 16, seed=0)
  module = ConvAttention(num_heads=2)
  variables = jax.eval_shape(module.init, jax.random.key(1), x)  # shapes only
  out, state = jax.eval_shape(lambda v, x: module.apply(v, x, mutable=['intermediates']),
                              variables, x)
  assert out.shape == x.shape
  (weights,) = state['intermediates']['attention_weights']
  assert weights.shape == (2, 2, 13, 7)
  with pytest.raises(ConfigError, match='3 heads do not divide width 16'):
    jax.eval_shape(ConvAttention(num_heads=3).init, jax.random.key(1), x)


def test_token_embedding_downsamples_with_overlap():
  x = zoo_checks.normal(2, 17, 4, seed=0)
  module = ConvTokenEmbedding(8)
  variables = jax.eval_shape(module.init, jax.random.key(1), x)  # shapes only
  assert jax.eval_shape(module.apply, variables, x).shape == (2, 9, 8)
  assert variables['params']['Conv_0']['kernel'].shape == (3, 4, 8)  # kernel 3 > stride 2
  assert variables['params']['LayerNorm_0']['scale'].shape == (8,)




def test_train_mode_differs_from_eval_and_batchnorm_updates(clst6):
  model, state = clst6
  before, _ = zoo_checks.train_step_against_eval(model, state)
  assert len(before) == 2 * (3 + 3 * 4)  # embedding convs + Q/K/V of four blocks


def test_a_few_steps_lower_the_loss(clst6):
  model, state = clst6
  losses = zoo_checks.training_losses(model, state.variables, 128, steps=8,
                                      rows=zoo_checks.BATCH)
  assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_short_signals_raise(clst6):
  model, variables = clst6[0], clst6[1].variables
  apply = lambda x: jax.eval_shape(model.apply, variables, x)  # traces, compiles nothing
  assert apply(zoo_checks.signal(2, 16)).shape == (2, 6)  # the shortest length works
  with pytest.raises(ConfigError, match='ClST needs signals of at least 16 samples, got 8'):
    apply(zoo_checks.signal(2, 8))
  with pytest.raises(ConfigError, match='4 entries'):
    jax.eval_shape(ClST(3, dims=(32, 64)).init, jax.random.key(0), jnp.zeros((2, 2, 128)))
