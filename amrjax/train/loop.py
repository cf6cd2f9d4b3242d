"""``fit`` and ``evaluate``: the training loop every experiment uses.

Optimiser: optax Adam with the papers' defaults (learning rate 1e-3, batch 128; DUSE
Sec. IV-D), at a constant rate or with cosine decay to zero over the run (ClST). One jitted
train step per (model, optimiser, objective), with the state donated, runs on fixed-shape
batches; the last batch of an epoch is padded and masked (see
``amrjax.data.pool.iter_batches``). Metrics are summed on the device and read once per
epoch. A non-finite loss or gradient norm stops training with the epoch and step.

The loss is an *objective*: a hashable callable ``(logits (B, C), labels (B,), extra) ->
(B,)`` per-example loss (``amrjax.train.losses``), where ``extra`` is the batch rows of a
per-sample ``targets`` array given to :func:`fit` (AFNet's confidence weights, a teacher's
logits) or None. With a validation pool, every epoch is validated and ``patience`` stops
training early and returns the best epoch's state (AFNet Sec. IV: patience 15).

BatchNorm: training updates running averages as Keras and PyTorch do, but by default
(``TrainConfig.batchnorm_statistics='population'``) the state ``fit`` returns, and the state
each validation sees, carries statistics re-estimated under its final parameters
(``amrjax.train.batchnorm``): every score, embedding and test accuracy is computed with
statistics that match the parameters, however fast Adam moved them.

Resuming: with ``checkpoint=folder``, ``fit`` saves an orbax checkpoint after an epoch when
``checkpoint_interval`` seconds (default :data:`CHECKPOINT_INTERVAL_SECONDS`) have passed
since the last one, and after the last epoch (unless ``checkpoint_last=False``): the model
and optimiser state, the best state so far under patience and the recorded dynamics, with a
JSON record (the epoch, the metrics so far, the shuffling generator's state; dropout keys
are folded from the step count, which is in the state). Only the latest epoch is kept.
Called again with the same folder, ``fit`` continues after that epoch and returns what an
uninterrupted call returns, bit for bit on CPU; a finished training is returned at once. A
divergence raises before its epoch is saved, so the last good checkpoint stays. ``on_epoch``
is called before the epoch is saved. A damaged checkpoint (cut-off JSON, unreadable or
altered orbax data) is reported in one line and the training starts afresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from amrjax import parallel, progress
from amrjax.data.pool import SignalPool
from amrjax.errors import AmrjaxError, ConfigError
from amrjax.scoring import dynamics as dynamics_lib
from amrjax.seeding import derive_seed
from amrjax.train import batchnorm
from amrjax.train.checkpoint import RoundCheckpoints
from amrjax.train.losses import (CROSS_ENTROPY, FEATURES, Objective, cross_entropy,
                                 masked_mean)
from amrjax.train.state import TrainState, create_state


class TrainingDivergedError(AmrjaxError, FloatingPointError):
  """The loss or the gradient norm became NaN or infinite."""


@contextlib.contextmanager
def diverged_where(where: str) -> Iterator[None]:
  """Puts ``where`` (the round, method, seed, model) in front of a divergence's message."""
  try:
    yield
  except TrainingDivergedError as e:
    raise TrainingDivergedError(f'{where}: {e}') from None


# An orbax save has a fixed cost whatever the model's size, a large share of a small model's
# epoch (benchmarks/README.md, "Initialisation and checkpoint times"), so epochs are saved at
# most this often; a kill loses at most this long plus one epoch.
CHECKPOINT_INTERVAL_SECONDS = 60.0

CONSTANT, COSINE = 'constant', 'cosine'
SCHEDULES = (CONSTANT, COSINE)

RUNNING, POPULATION = 'running', 'population'
BATCHNORM_STATISTICS = (RUNNING, POPULATION)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How to train (DUSE Sec. IV-D defaults).

  Attributes:
    epochs: passes over the training pool (the most, with early stopping).
    batch_size: rows per step.
    learning_rate: Adam's (peak) learning rate.
    schedule: ``'constant'``, or ``'cosine'``: decay from ``learning_rate`` to 0 over the
      ``epochs`` of one ``fit`` call from a fresh state (ClST: lr 0.01, cosine, 100
      epochs).
    patience: with a validation pool, stop after this many epochs without a lower
      validation loss and return the best epoch's state (AFNet: 15); None trains every
      epoch.
    batchnorm_statistics: what eval mode normalises with in a model with BatchNorm.
      ``'running'``: the running averages updated during training (Keras, PyTorch).
      ``'population'`` (default): after training, and for each validation, every layer's
      statistics are re-estimated under the final parameters from
      ``amrjax.train.batchnorm.POPULATION_BATCHES`` train-mode batches ("precise BN",
      Wu & Johnson 2021). Running averages trail parameters that Adam moves at a constant
      rate; on the RML2016.10a stand-in after 315 constant-rate steps, SigNet scored 60 %
      with them and 71 % with population statistics (``benchmarks/batchnorm_eval_gap.py``).
      Training itself is the same either way.
  """

  epochs: int = 20
  batch_size: int = 128
  learning_rate: float = 1e-3
  schedule: str = CONSTANT
  patience: int | None = None
  batchnorm_statistics: str = POPULATION

  def __post_init__(self):
    if self.epochs < 0 or self.batch_size < 1 or not self.learning_rate > 0:
      raise ConfigError(f'invalid training settings: {self}')
    if self.schedule not in SCHEDULES:
      raise ConfigError(f'unknown learning-rate schedule {self.schedule!r}; choose one of '
                        f'{", ".join(SCHEDULES)}')
    if self.patience is not None and self.patience < 1:
      raise ConfigError(f'patience must be at least 1 epoch (or None), got {self.patience}')
    if self.batchnorm_statistics not in BATCHNORM_STATISTICS:
      raise ConfigError(f'unknown BatchNorm statistics {self.batchnorm_statistics!r}; choose '
                        f'one of {", ".join(BATCHNORM_STATISTICS)}')


@functools.lru_cache(maxsize=None)
def optimizer(learning_rate: float, schedule: str = CONSTANT,
              decay_steps: int | None = None) -> optax.GradientTransformation:
  """Adam, at a constant rate or cosine-decayed to 0 over ``decay_steps``; cached so that
  equal settings share one compiled train step."""
  if schedule == CONSTANT:
    return optax.adam(learning_rate)
  if schedule == COSINE and decay_steps:
    return optax.adam(optax.cosine_decay_schedule(learning_rate, decay_steps))
  raise ConfigError(f'schedule {schedule!r} with {decay_steps} decay steps is not a valid '
                    'optimiser setting')


def init_state(model: nn.Module, *, length: int, learning_rate: float, seed: int,
               schedule: str = CONSTANT, decay_steps: int | None = None) -> TrainState:
  """Fresh parameters for (B, 2, length) inputs and a fresh Adam state.

  The Adam state's layout depends on the schedule (a cosine schedule keeps a step count),
  so ``schedule`` and ``decay_steps`` must be those the state will be trained with; ``fit``
  builds its own fresh state that way. Initialised under ``jax.jit``, compiled once per
  (model, optimiser, length) with :data:`INIT_COMPILER_OPTIONS`: a large model's
  initialisation (ClST's) takes less time jitted than op by op (benchmarks/README.md,
  "Initialisation and checkpoint times").
  """
  tx = optimizer(learning_rate, schedule, decay_steps)
  return _init_fn(model, tx, length)(jax.random.key(seed))


INIT_COMPILER_OPTIONS = {'xla_backend_optimization_level': 1}
"""XLA options of the jitted initialisations (``init_state``; the zoo's tests use them too).

The initialisation runs once, so its compile time is what counts: optimisation level 1
(LLVM's -O1; XLA's default is 3) compiles the zoo's initialisations in a fraction of the
default level's time, and their variables came out bit for bit the default level's for all
fifteen zoo models (6 classes, L = 128) on the CPU of that comparison (benchmarks/README.md,
"Initialisation and checkpoint times"). ``tests/train/test_loop.py`` checks the 1D-CNN and
LSTM2 on whatever CPU runs it; at level 0 LSTM2's orthogonal kernels differ, so
that check has teeth. A train step compiled at level 1 is not bit for bit the default's, so
training keeps the default.
"""


@functools.lru_cache(maxsize=None)
def _init_fn(model: nn.Module, tx: optax.GradientTransformation, length: int) -> Callable:
  return jax.jit(lambda key: create_state(model, tx, length=length, key=key),
                 compiler_options=INIT_COMPILER_OPTIONS)


def global_norm(tree) -> jax.Array:
  """sqrt of the sum of squares of every leaf of ``tree``."""
  return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree)))


def train_step_fn(model: nn.Module, learning_rate: float, length: int,
                  record: bool = False, objective: Objective = CROSS_ENTROPY,
                  schedule: str = CONSTANT, decay_steps: int | None = None) -> Callable:
  """The jitted train step; the state (and the dynamics, when recorded) are donated.

  ``record=False``: ``(state, x, y, mask, key, extra=None) -> (state, metrics)``.
  ``record=True``: ``(state, x, y, mask, key, extra, dynamics, positions) -> (state,
  metrics, dynamics)``, which also records each row's correctness and cross-entropy at
  this presentation (the train-mode forward pass the gradient comes from, as Toneva et al.
  record it) into ``dynamics`` (``amrjax.scoring.dynamics.update``).

  ``extra`` is the batch rows of the per-sample targets the objective reads (or None).
  Metrics: the objective summed and the correct count over the real rows, the real-row
  count, and the global gradient norm.

  One step function (and one compiled program per input shape) per setting, however the
  arguments are passed: ``fit`` and a caller's ``train_step_fn(model, 1e-3, 128)`` share it.
  """
  return _train_step_fn(model, float(learning_rate), int(length), bool(record), objective,
                        schedule, decay_steps)


@functools.lru_cache(maxsize=None)
def _train_step_fn(model, learning_rate, length, record, objective, schedule, decay_steps):
  tx = optimizer(learning_rate, schedule, decay_steps)
  reads_features = getattr(objective, 'reads_features', False)
  mutable = ((['batch_stats'] if batchnorm.has_batchnorm(model, length) else []) +
             (['intermediates'] if reads_features else [])) or False

  def step(state: TrainState, x, y, mask, key, extra=None, dynamics=None, positions=None):
    dropout_key = jax.random.fold_in(key, state.step)

    def loss_fn(params):
      variables = {'params': params}
      if mutable:
        variables['batch_stats'] = state.batch_stats
      out = model.apply(variables, x, train=True, rngs={'dropout': dropout_key},
                        mutable=mutable)
      logits, updates = out if mutable else (out, {})
      if reads_features:  # what the model sowed as ('intermediates', FEATURES)
        per_example = objective(logits, y, extra, updates['intermediates'][FEATURES][0])
      else:
        per_example = objective(logits, y, extra)
      return masked_mean(per_example, mask), (per_example, logits, updates)

    (loss, (per_example, logits, updates)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(step=state.step + 1,
                              params=optax.apply_updates(state.params, param_updates),
                              batch_stats=updates.get('batch_stats', state.batch_stats),
                              opt_state=opt_state)
    maskf = mask.astype(jnp.float32)
    correct = jnp.argmax(logits, -1) == y
    metrics = {
        'loss_sum': jnp.sum(per_example * maskf),
        'correct': jnp.sum(correct * maskf),
        'count': jnp.sum(maskf),
        'grad_norm': global_norm(grads),
        'loss': loss,
    }
    if not record:
      return new_state, metrics
    ce = per_example if objective == CROSS_ENTROPY else cross_entropy(logits, y)
    dynamics = dynamics_lib.update(dynamics, positions, correct, ce, mask)
    return new_state, metrics, dynamics

  return jax.jit(step, donate_argnums=(0, 6) if record else (0,))


def fit(model: nn.Module, pool: SignalPool, config: TrainConfig, *, seed: int,
        state: TrainState | None = None,
        on_epoch: Callable[[dict], None] | None = None,
        objective: Objective = CROSS_ENTROPY, targets: np.ndarray | None = None,
        validation: SignalPool | None = None, checkpoint: Path | str | None = None,
        checkpoint_interval: float | None = None,
        checkpoint_last: bool = True) -> tuple[TrainState, list[dict]]:
  """Trains ``model`` on ``pool`` for ``config.epochs`` epochs.

  Args:
    model: a registry model.
    pool: the training set; read into memory once if its store is lazy.
    config: epochs, batch size, learning rate, schedule, patience.
    seed: drives the initialisation (when ``state`` is None), the shuffling and dropout.
    state: continue from this state (warm start) instead of a fresh one. It is donated
      to the train step: do not use it after the call.
    on_epoch: called after each epoch with that epoch's metrics.
    objective: the per-example loss (default cross-entropy); see the module docstring.
    targets: (len(pool), ...) per-sample values the objective reads, row i for pool
      position i (AFNet weights (n,), teacher logits (n, C)); None when it reads none.
    validation: evaluated after every epoch (cross-entropy and accuracy, eval mode); needed
      for ``config.patience``.
    checkpoint: a folder for epoch checkpoints, one per training (see the module
      docstring); a training found there is continued (``state`` is then ignored), and one
      of other settings is refused. None: no checkpoints.
    checkpoint_interval: the least seconds between two epoch checkpoints; None:
      :data:`CHECKPOINT_INTERVAL_SECONDS`; 0: every epoch.
    checkpoint_last: also save after the last epoch, so that a finished training is
      returned at once when called again; False when the caller keeps the result itself
      right away (a test result written, a round checkpoint saved).

  Returns:
    The final state (with patience: the state of the epoch with the lowest validation
    loss) and one metrics dict per epoch trained (epoch, loss, accuracy, max_grad_norm,
    steps; val_loss and val_accuracy with a validation pool).
  """
  state, history, _ = _train(model, pool, config, seed=seed, state=state, on_epoch=on_epoch,
                             dynamics=None, objective=objective, targets=targets,
                             validation=validation, checkpoint=checkpoint,
                             checkpoint_interval=checkpoint_interval,
                             checkpoint_last=checkpoint_last)
  return state, history


def fit_recording(model: nn.Module, pool: SignalPool, config: TrainConfig, *, seed: int,
                  state: TrainState | None = None,
                  dynamics: dynamics_lib.Dynamics | None = None,
                  on_epoch: Callable[[dict], None] | None = None,
                  checkpoint: Path | str | None = None,
                  checkpoint_interval: float | None = None,
                  ) -> tuple[TrainState, list[dict], dynamics_lib.Dynamics]:
  """:func:`fit` that also records every sample's training dynamics.

  Each epoch presents every pool sample once, so after E epochs each sample has T = E
  presentations (forgetting, FoQuS). Same arguments and results as :func:`fit`, plus
  ``dynamics``: counters to continue (default: fresh ones for ``len(pool)`` samples,
  indexed by pool position), returned updated. Like ``state``, a ``dynamics`` passed in is
  donated to the train step: use the returned one. With ``checkpoint`` the dynamics are
  saved with every epoch and continued on resume.
  """
  if dynamics is None:
    dynamics = dynamics_lib.init(len(pool))
  if dynamics.size != len(pool):
    raise ConfigError(f'dynamics hold {dynamics.size} samples but the pool has {len(pool)}')
  if config.patience is not None:
    raise ConfigError('training dynamics are recorded over every epoch; early stopping '
                      '(patience) does not apply to fit_recording')
  return _train(model, pool, config, seed=seed, state=state, on_epoch=on_epoch,
                dynamics=dynamics, objective=CROSS_ENTROPY, targets=None, validation=None,
                checkpoint=checkpoint, checkpoint_interval=checkpoint_interval)


def _check_targets(targets, pool):
  if targets is None:
    return None
  targets = np.asarray(targets)
  if targets.ndim == 0 or targets.shape[0] != len(pool):
    raise ConfigError(f'targets must have one row per training sample ({len(pool)}), got '
                      f'shape {targets.shape}')
  if np.issubdtype(targets.dtype, np.floating) and not np.all(np.isfinite(targets)):
    raise ConfigError('targets hold NaN or infinite values; check the weights or teacher '
                      'outputs they came from')
  return jnp.asarray(targets)


def _checkpoint_settings(model, pool, config, seed, objective, record, validation) -> dict:
  """What an epoch checkpoint must match to be continued by this ``fit`` call."""
  return {'model': repr(model), 'train_size': len(pool), 'length': pool.length,
          'config': dataclasses.asdict(config), 'seed': seed, 'objective': repr(objective),
          'recording': record,
          'validation_size': None if validation is None else len(validation)}


_RESUME_KEYS = ('settings', 'history', 'stopped', 'rng', 'best')


def _resume_epochs(saved: RoundCheckpoints, settings: dict, tree: dict):
  """(epoch, restored tree, record) of the latest sound epoch checkpoint; (0, tree, None)
  if none is (a damaged one is reported and skipped: ``RoundCheckpoints.load_latest``)."""

  def check(record: dict) -> None:
    missing = [k for k in _RESUME_KEYS if k not in record]
    if missing:
      raise KeyError(f'no {", ".join(missing)}')  # damaged
    if record['settings'] != settings:
      keys = sorted(k for k in settings if record['settings'].get(k) != settings[k])
      raise ConfigError(f'{saved.folder} holds a training with other settings (differs in: '
                        f'{", ".join(keys)}); delete that folder or use a new --workdir')
  epoch, restored, record = saved.load_latest(tree, check)
  return (epoch, restored, record) if epoch else (0, tree, None)


def _train(model, pool, config, *, seed, state, on_epoch, dynamics, objective, targets,
           validation, checkpoint=None, checkpoint_interval=None, checkpoint_last=True):
  if len(pool) == 0:
    raise ConfigError('cannot train on an empty pool')
  if config.patience is not None and validation is None:
    raise ConfigError(f'early stopping (patience {config.patience}) needs a validation pool')
  if validation is not None and len(validation) == 0:
    raise ConfigError('the validation pool is empty')
  pool = pool.in_memory()
  targets = _check_targets(targets, pool)
  decay_steps = (config.epochs * -(-len(pool) // config.batch_size)
                 if config.schedule == COSINE else None)
  if state is None:
    state = init_state(model, length=pool.length, learning_rate=config.learning_rate,
                       seed=seed, schedule=config.schedule, decay_steps=decay_steps)
  elif config.schedule == COSINE:
    raise ConfigError('a cosine schedule decays over one fit call from a fresh state; pass '
                      'state=None (or train the continuation at a constant rate)')
  record = dynamics is not None
  step_fn = train_step_fn(model, config.learning_rate, pool.length, record, objective,
                          config.schedule, decay_steps)
  rng = np.random.default_rng(derive_seed(seed, 'shuffle'))
  key = jax.random.key(derive_seed(seed, 'dropout'))
  history = []
  best = None  # (val_loss, epoch, host copy of the state)
  first_epoch, stopped = 1, False
  if checkpoint_interval is None:
    checkpoint_interval = CHECKPOINT_INTERVAL_SECONDS
  last_save = time.monotonic()
  saved = (None if checkpoint is None else
           RoundCheckpoints(checkpoint, prefix='epoch', keep_only_latest=True))
  if saved is not None:
    settings = _checkpoint_settings(model, pool, config, seed, objective, record, validation)
    # Under patience every saved epoch holds a best state (epoch 1 is the first best).
    tree = {'state': state, 'dynamics': dynamics,
            'best': state if config.patience is not None else None}
    done, tree, resumed = _resume_epochs(saved, settings, _without_none(tree))
    if resumed is not None:
      state, dynamics = tree['state'], tree.get('dynamics')
      history, stopped, first_epoch = resumed['history'], resumed['stopped'], done + 1
      rng.bit_generator.state = resumed['rng']
      if resumed['best'] is not None:
        best = (resumed['best'][0], resumed['best'][1], jax.device_get(tree['best']))
  steps_per_epoch = -(-len(pool) // config.batch_size)

  def eval_state() -> TrainState:
    """``state`` with the BatchNorm statistics eval mode uses (``batchnorm_statistics``)."""
    if config.batchnorm_statistics == RUNNING or not state.batch_stats:
      return state
    return state.replace(batch_stats=batchnorm.population_batch_stats(
        model, state.variables, pool, config.batch_size, seed=derive_seed(seed, 'batchnorm')))

  evaluated = None  # eval_state() of the latest validated epoch
  with progress.task(f'training {type(model).__name__}', unit='step',
                     total=0 if stopped else
                     max(config.epochs - first_epoch + 1, 0) * steps_per_epoch) as shown:
    for epoch in range(first_epoch, config.epochs + 1):
      if stopped:
        break
      sums = None
      for batch in pool.batches(config.batch_size, rng=rng):
        extra = None if targets is None else targets[batch.positions]
        if record:
          state, metrics, dynamics = step_fn(state, batch.x, batch.y, batch.mask, key, extra,
                                             dynamics, batch.positions)
        else:
          state, metrics = step_fn(state, batch.x, batch.y, batch.mask, key, extra)
        sums = metrics if sums is None else _accumulate(sums, metrics)
        shown.advance()
      host = jax.device_get(sums)
      epoch_record = {
          'epoch': epoch,
          'loss': float(host['loss_sum'] / host['count']),
          'accuracy': float(host['correct'] / host['count']),
          'max_grad_norm': float(host['grad_norm']),
          'steps': int(state.step),
      }
      if not (np.isfinite(epoch_record['loss']) and np.isfinite(epoch_record['max_grad_norm'])):
        raise TrainingDivergedError(
            f'training diverged in epoch {epoch} (by step {epoch_record["steps"]}): loss '
            f'{epoch_record["loss"]}, max gradient norm {epoch_record["max_grad_norm"]}; lower the '
            'learning rate or check the inputs for NaN/inf')
      if validation is not None:
        evaluated = eval_state()
        val_loss, val_accuracy = validation_metrics(model, evaluated.variables, validation)
        epoch_record.update(val_loss=val_loss, val_accuracy=val_accuracy)
      history.append(epoch_record)
      if config.patience is not None:
        if best is None or epoch_record['val_loss'] < best[0]:
          # A host copy: the device buffers of ``state`` are donated to the next step.
          best = (epoch_record['val_loss'], epoch, jax.device_get(evaluated))
        elif epoch - best[1] >= config.patience:
          stopped = True
      last = stopped or epoch == config.epochs
      # Reported before it is saved: a resumed call never starts after an epoch it did not
      # report (a killed run's log then holds every epoch the resumed one continues from).
      if on_epoch is not None:
        on_epoch(epoch_record)
      if saved is not None and ((last and checkpoint_last) or
                                (not last and time.monotonic() - last_save >= checkpoint_interval)):
        saved.save(epoch, _without_none({'state': state, 'dynamics': dynamics,
                                          'best': None if best is None else best[2]}),
                   {'settings': settings, 'history': history, 'stopped': stopped,
                    'rng': rng.bit_generator.state,
                    'best': None if best is None else [best[0], best[1]]})
        last_save = time.monotonic()
  # With patience the best epoch's state, whose statistics were settled when it was validated;
  # with validation the last epoch's, settled the same way; otherwise settled now.
  if best is not None:
    state = jax.device_put(best[2])
  else:
    state = evaluated if evaluated is not None else eval_state()
  return state, history, dynamics


def _without_none(tree: dict) -> dict:
  return {k: v for k, v in tree.items() if v is not None}


@jax.jit
def _accumulate(sums, metrics):
  out = {k: sums[k] + metrics[k] for k in ('loss_sum', 'correct', 'count')}
  out['grad_norm'] = jnp.maximum(sums['grad_norm'], metrics['grad_norm'])
  out['loss'] = metrics['loss']
  return out


@functools.lru_cache(maxsize=None)
def logits_fn(model: nn.Module) -> Callable:
  """Jitted ``(variables, x) -> logits`` in eval mode (dropout off, BatchNorm frozen)."""
  return jax.jit(lambda variables, x: model.apply(variables, x, train=False))


@functools.lru_cache(maxsize=None)
def loss_and_correct_fn(model: nn.Module) -> Callable:
  def fn(variables, x, y):
    logits = model.apply(variables, x, train=False)
    return {'loss': cross_entropy(logits, y), 'correct': jnp.argmax(logits, -1) == y}

  return jax.jit(fn)


def validation_metrics(model: nn.Module, variables, pool: SignalPool, *,
                       batch_size: int | None = None) -> tuple[float, float]:
  """Mean cross-entropy and accuracy of ``model`` on ``pool`` in eval mode.

  ``batch_size`` defaults to the pool size rounded up to a power of two, at most 1024: a
  small validation pool, evaluated every epoch, is not padded to 1024 rows, and the few
  distinct sizes compile once each.
  """
  if batch_size is None:
    batch_size = min(1024, 1 << max(len(pool) - 1, 1).bit_length())
  out = parallel.map_pool(loss_and_correct_fn(model), variables, pool,
                          batch_size=batch_size, with_labels=True)
  return float(np.mean(out['loss'])), float(np.mean(out['correct']))


def predict_logits(model: nn.Module, variables, pool: SignalPool, *,
                   batch_size: int = 1024) -> np.ndarray:
  """Logits (n, C) for every member of ``pool``, in pool order."""
  return parallel.map_pool(logits_fn(model), variables, pool, batch_size=batch_size)


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """Test accuracy overall, per class and per SNR, and the confusion matrix.

  ``confusion[i, j]`` counts vectors of true class i predicted as j.
  """

  accuracy: float
  per_class: dict[str, float]
  per_snr: dict[int, float]
  confusion: np.ndarray
  count: int

  def to_json(self) -> dict:
    return {
        'accuracy': self.accuracy,
        'count': self.count,
        'per_class': self.per_class,
        'per_snr': {str(k): v for k, v in self.per_snr.items()},
        'confusion': self.confusion.tolist(),
    }


def accuracy_report(predicted: np.ndarray, pool: SignalPool) -> Evaluation:
  """Scores predicted class indices (n,) against the pool's labels."""
  correct = predicted == pool.y
  c = pool.num_classes
  confusion = np.zeros((c, c), np.int64)
  np.add.at(confusion, (pool.y, predicted), 1)
  per_class = {name: float(correct[pool.y == i].mean()) for i, name in enumerate(pool.classes)
               if np.any(pool.y == i)}
  per_snr = {int(s): float(correct[pool.snr == s].mean()) for s in np.unique(pool.snr)}
  return Evaluation(float(correct.mean()), per_class, per_snr, confusion, len(pool))


def evaluate(model: nn.Module, variables, pool: SignalPool, *,
             batch_size: int = 1024) -> Evaluation:
  """Accuracy of ``model`` on ``pool`` (eval mode)."""
  logits = predict_logits(model, variables, pool, batch_size=batch_size)
  return accuracy_report(np.argmax(logits, axis=-1), pool)
