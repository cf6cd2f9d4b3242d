"""Signal knowledge distillation (SKD, ClST paper): the loss, the distilling fit, the cost.

Hou et al. 2024 (arXiv:2312.17446, ``papers/clst-summary.md``) distil a pre-trained ClST
teacher into the small KD-CNN and KD-MobileNet students (``amrjax.models.kd``) with their
SKD algorithm. The text we have names the loss terms' weights (a, b, c) and two learning
rates but gives none of their values and no equation, so SKD is implemented here as the
classic logit distillation of Hinton, Vinyals & Dean 2015 ("Distilling the Knowledge in a
Neural Network"), per example i:

  loss_i = hard_weight * CE(y_i, softmax(z_s,i))
         + soft_weight * T^2 * KL(softmax(z_t,i / T) || softmax(z_s,i / T))

with student logits z_s, teacher logits z_t and temperature T. The T^2 factor keeps the
soft term's gradient magnitude independent of T (Hinton et al. Sec. 2). Defaults
``hard_weight = 0.1, soft_weight = 0.9, T = 4``: Hinton et al. found a "considerably lower
weight" on the hard term best, and (0.1, 0.9, 4) is the KD setting of the RepDistiller
benchmark (Tian et al. 2020, "Contrastive Representation Distillation"), the usual
reference configuration. Every weight is a parameter.

Not implemented: an intermediate (feature) term. ``amrjax.train.fit``'s objective sees
only the student's logits, and a feature term would need the student's embedding out of
the train step plus a learned projection to the teacher's width (128 vs 64 for KD-CNN) -
a change to the training loop, not an objective.

The teacher is fixed and in eval mode (dropout off, BatchNorm frozen), so its logits are
computed once for the whole training pool (:func:`distill`) and passed to ``fit`` as the
per-sample targets the objective reads; it is never run in the train step.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.train import TrainConfig, TrainState, fit, predict_logits
from amrjax.train.losses import cross_entropy
from amrjax.train.loop import logits_fn


def soft_target_loss(student_logits: jax.Array, teacher_logits: jax.Array,
                     temperature: float) -> jax.Array:
  """T^2 KL(softmax(teacher / T) || softmax(student / T)) in nats, (B,).

  Args:
    student_logits: (B, C).
    teacher_logits: (B, C); treated as constants (no gradient flows into them).
    temperature: T > 0.
  """
  teacher_logits = jax.lax.stop_gradient(teacher_logits.astype(student_logits.dtype))
  log_q = jax.nn.log_softmax(student_logits / temperature, axis=-1)
  p = jax.nn.softmax(teacher_logits / temperature, axis=-1)
  # xlogy(p, p) = 0 where p = 0, so a saturated teacher gives no 0 * log 0 = NaN.
  kl = jnp.sum(xlogy(p, p) - p * log_q, axis=-1)
  return temperature**2 * kl


@dataclasses.dataclass(frozen=True)
class DistillationLoss:
  """The SKD objective for ``amrjax.train.fit`` (see the module docstring).

  ``extra`` is the (B, C) teacher logits of the batch rows (``fit(..., targets=teacher
  logits of the whole pool)``). Returns the per-example loss (B,).

  Attributes:
    hard_weight: weight of the cross-entropy with the true labels (>= 0).
    soft_weight: weight of the T^2-scaled KL to the teacher's softened outputs (>= 0).
    temperature: softmax temperature T (> 0) of both teacher and student in the soft term.
  """

  hard_weight: float = 0.1
  soft_weight: float = 0.9
  temperature: float = 4.0

  def __post_init__(self):
    if not (self.hard_weight >= 0 and self.soft_weight >= 0):
      raise ConfigError(f'distillation weights must be non-negative, got hard '
                        f'{self.hard_weight}, soft {self.soft_weight}')
    if self.hard_weight == 0 and self.soft_weight == 0:
      raise ConfigError('the hard and the soft distillation weights are both 0; give one a '
                        'positive weight')
    if not self.temperature > 0:
      raise ConfigError(f'the distillation temperature must be positive, got '
                        f'{self.temperature}')

  def __call__(self, logits, labels, extra):
    if extra is None:
      raise ConfigError('the distillation loss needs the teacher logits: pass '
                        'targets=teacher_logits to fit (or use amrjax.distill.distill)')
    if extra.shape != logits.shape:
      raise ConfigError(f'teacher logits {extra.shape} and student logits {logits.shape} '
                        'differ in shape; teacher and student need the same classes')
    loss = jnp.zeros(logits.shape[:1], logits.dtype)
    if self.hard_weight:
      loss = loss + self.hard_weight * cross_entropy(logits, labels)
    if self.soft_weight:
      loss = loss + self.soft_weight * soft_target_loss(logits, extra, self.temperature)
    return loss


def distill(teacher: nn.Module, teacher_variables, student: nn.Module, pool: SignalPool,
            config: TrainConfig, *, seed: int, loss: DistillationLoss = DistillationLoss(),
            state: TrainState | None = None, validation: SignalPool | None = None,
            on_epoch: Callable[[dict], None] | None = None, eval_batch_size: int = 1024,
            checkpoint: Path | str | None = None) -> tuple[TrainState, list[dict]]:
  """Trains ``student`` on ``pool`` against the fixed ``teacher``'s logits.

  The teacher's eval-mode logits for every member of ``pool`` are computed once
  (``predict_logits``) and passed to ``fit`` as targets of :class:`DistillationLoss`.

  Args:
    teacher: the trained teacher model (ClST).
    teacher_variables: its variables (``state.variables``).
    student: the model to train (KD-CNN, KD-MobileNet); same classes as the teacher.
    pool: the training set (with labels for the hard term).
    config: epochs, batch size, learning rate, schedule (as for ``fit``).
    seed: drives the student's initialisation, the shuffling and dropout; the same seed
      as a plain ``fit`` of the student gives the same initialisation and batch order.
    loss: the distillation weights and temperature.
    state: continue from this student state instead of a fresh one (donated; not with a
      cosine schedule, which decays over one call from a fresh state).
    validation: evaluated after every epoch (cross-entropy with the labels, accuracy).
    on_epoch: called with each epoch's metrics.
    eval_batch_size: rows per call of the teacher's forward pass.
    checkpoint: a folder for the student's epoch checkpoints (``amrjax.train.fit``).

  Returns:
    The student's final state and one metrics dict per epoch (``fit``'s history; its
    'loss' is the distillation loss).
  """
  teacher_logits = predict_logits(teacher, teacher_variables, pool,
                                  batch_size=eval_batch_size)
  if teacher_logits.shape[-1] != pool.num_classes:
    raise ConfigError(f'the teacher predicts {teacher_logits.shape[-1]} classes but the pool '
                      f'has {pool.num_classes}')
  return fit(student, pool, config, seed=seed, state=state, on_epoch=on_epoch,
             objective=loss, targets=teacher_logits, validation=validation,
             checkpoint=checkpoint)


@dataclasses.dataclass(frozen=True)
class InferenceTime:
  """Eval-mode forward time of one jitted batch, divided by its size.

  Attributes:
    microseconds_per_sample: median batch time / batch_size, in microseconds.
    batch_size: rows per timed call.
    repeats: timed calls (the median is over these).
    warmup: untimed calls before them (the first one compiles).
    batch_seconds: every timed call's wall time, in seconds.
    device: the device the calls ran on.
  """

  microseconds_per_sample: float
  batch_size: int
  repeats: int
  warmup: int
  batch_seconds: tuple[float, ...]
  device: str

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def inference_time(model: nn.Module, variables, *, length: int, batch_size: int = 256,
                   repeats: int = 10, warmup: int = 2, seed: int = 0) -> InferenceTime:
  """Per-sample inference time of ``model`` in eval mode at ``batch_size``.

  The forward pass is the jitted eval-mode function the evaluation uses
  (``amrjax.train.loop.logits_fn``), on one random (batch_size, 2, length) batch already on
  the default device. ``warmup`` calls (compilation included) are not timed; each of the
  ``repeats`` timed calls waits for its result (``block_until_ready``), and the median is
  reported, so one slow call (another process, a page fault) does not move it.
  """
  if batch_size < 1 or repeats < 1 or warmup < 1:
    raise ConfigError(f'inference timing needs batch_size, repeats and warmup of at least 1, '
                      f'got {batch_size}, {repeats}, {warmup}')
  forward = logits_fn(model)
  x = jax.device_put(np.random.default_rng(seed).standard_normal(
      (batch_size, 2, length)).astype(np.float32))
  variables = jax.device_put(variables)
  for _ in range(warmup):
    jax.block_until_ready(forward(variables, x))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(forward(variables, x))
    times.append(time.perf_counter() - t0)
  return InferenceTime(statistics.median(times) / batch_size * 1e6, batch_size, repeats,
                       warmup, tuple(times), str(next(iter(x.devices()))))
