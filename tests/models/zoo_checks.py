"""Helpers the zoo models' tests share: parameter counts and a few real training steps."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from amrjax import models
from amrjax.train import loop
from amrjax.train.state import TrainState


def count(params) -> int:
  """Number of scalars in a parameter tree."""
  return models.parameter_count(params)


def normal(*shape, seed: int = 1) -> jax.Array:
  """float32 N(0, 1) of ``shape``, drawn with NumPy: an eager ``jax.random.normal`` compiles a
  program for every shape."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def signal(batch: int, length: int, seed: int = 1) -> jax.Array:
  """A (batch, 2, length) :func:`normal` I/Q input."""
  return normal(batch, 2, length, seed=seed)


def _variables(model, length: int, batch: int, key):
  return model.init(key, jnp.zeros((batch, 2, length)), train=False)


def init(model, length: int, batch: int = 2):
  """Variables of ``model`` for (batch, 2, length) inputs, initialised under ``jax.jit`` with
  the library's initialisation options (``loop.INIT_COMPILER_OPTIONS``): for every model
  whose tests use this, one compile is quicker than op by op's many."""
  return jax.jit(functools.partial(_variables, model, length, batch),
                 compiler_options=loop.INIT_COMPILER_OPTIONS)(jax.random.key(0))


def shapes(model, length: int):
  """``init``'s shapes and dtypes, without compiling or running anything."""
  return jax.eval_shape(functools.partial(_variables, model, length, 2), jax.random.key(0))


# fit's settings (and test_batchnorm_eval.py's): a step at them on a BATCH-row batch runs the
# very program fit compiled for the same model and length, from memory or from the compilation
# cache (tests/conftest.py). ClST's train step alone takes ~20 s to compile.
LEARNING_RATE = 1e-3
BATCH = 32


def fit_state(model, length: int) -> TrainState:
  """``fit``'s fresh state of ``model`` for (B, 2, length) inputs (seed 0), through fit's own
  compiled initialisation."""
  return loop.init_state(model, length=length, learning_rate=LEARNING_RATE, seed=0)


def state_of(variables) -> TrainState:
  """A fresh Adam state (fit's optimiser) around ``variables`` (params, batch_stats)."""
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}),
                    opt_state=_adam_init(LEARNING_RATE)(params))


@functools.lru_cache(maxsize=None)
def _adam_init(learning_rate: float):
  return jax.jit(loop.optimizer(learning_rate).init)  # op by op: a compile per leaf shape


def fit_batch(num_classes: int, length: int, batch: int = BATCH, seed: int = 0):
  """A (batch, 2, length) batch of N(0, 1) noise as fit's loader yields it: (x, y, mask),
  NumPy, every row real; the labels cycle through the classes."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, 2, length)).astype(np.float32)
  return x, np.arange(batch) % num_classes, np.ones(batch, bool)


def step_from(model, state: TrainState, batch, key: int, *,
              keep: bool = True) -> tuple[TrainState, dict]:
  """fit's train step (``loop.train_step_fn`` at fit's settings) from ``state`` on ``batch``
  with dropout key ``key``: (new state, metrics). The step donates its input: with ``keep``
  it gets a copy and ``state`` stays usable."""
  step = loop.train_step_fn(model, LEARNING_RATE, batch[0].shape[-1])
  if keep:
    state = jax.device_put(jax.device_get(state))
  return step(state, *batch, jax.random.key(key), None)


def train_step_against_eval(model, state: TrainState, length: int = 128):
  """fit's train step from ``state`` on a ``fit_batch`` (times 3, plus 1), checked against
  eval mode (``loop.logits_fn``): eval mode repeats exactly, the step's train-mode loss is
  not eval mode's, another dropout key gives another loss (so ``model`` must use dropout),
  and the step changes every BatchNorm statistic.

  Returns the BatchNorm statistics before the step (leaves) and the state after it.
  """
  x, y, mask = fit_batch(_num_classes(state.params), length)
  x = x * 3 + 1  # off-centre: train mode's batch statistics are not the initial running ones
  batch = x, y, mask
  forward = loop.logits_fn(model)
  eval_logits = forward(state.variables, x)
  np.testing.assert_array_equal(eval_logits, forward(state.variables, x))
  eval_loss = float(optax.softmax_cross_entropy_with_integer_labels(eval_logits, y).mean())
  after, metrics = step_from(model, state, batch, key=2)
  assert not np.isclose(float(metrics['loss']), eval_loss), (metrics['loss'], eval_loss)
  # Same batch statistics, another dropout rng: only dropout changes the loss.
  assert not np.isclose(float(step_from(model, state, batch, key=3)[1]['loss']),
                        float(metrics['loss']))
  before = jax.tree.leaves(state.batch_stats)
  # Exact inequality: a BatchNorm fed by another's output sees a batch mean of ~1e-8 (zero
  # up to rounding), so its running mean moves by less than allclose's atol (KD-MobileNet's
  # InvertedResidual_2 on an AVX2 CPU), but it does move.
  assert before and all(not np.array_equal(u, w)
                        for u, w in zip(before, jax.tree.leaves(after.batch_stats)))
  return before, after


def _num_classes(params) -> int:
  return params['head']['bias'].shape[0]


def training_losses(model, variables, length: int, steps: int = 6,
                    rows: int = 12) -> list[float]:
  """Losses of ``steps`` of fit's train steps from ``variables`` (dropout on, BatchNorm
  statistics updated) on one fixed ``fit_batch`` of ``rows`` rows (``BATCH``: the program
  test_batchnorm_eval.py compiles); a model that trains drives them down."""
  state = state_of(variables)
  batch = fit_batch(_num_classes(variables['params']), length, rows)
  losses = []
  for i in range(steps):  # the caller's variables copied once, then each new state donated
    state, metrics = step_from(model, state, batch, key=i, keep=i == 0)
    losses.append(float(metrics['loss']))
  return losses


def forward_with_dropout(model, variables, length: int, batch: int = 2):
  """Eval-mode logits and embedding of a random (batch, 2, length) input, checked: the
  logits are finite, the head of the embedding gives them, and train mode (dropout on)
  gives other logits. Returns (logits, embedding)."""
  x = jax.random.normal(jax.random.key(1), (batch, 2, length))

  @jax.jit
  def outputs(variables, x, key):
    def run(m, x):
      emb = m.embed(x)
      return m(x), emb, m.head(emb), m(x, train=True)
    return model.apply(variables, x, method=run, rngs={'dropout': key})

  logits, emb, head_of_emb, train_logits = outputs(variables, x, jax.random.key(2))
  assert np.isfinite(logits).all()
  np.testing.assert_allclose(logits, head_of_emb, rtol=1e-5, atol=1e-6)
  assert not np.allclose(logits, train_logits)
  return logits, emb
