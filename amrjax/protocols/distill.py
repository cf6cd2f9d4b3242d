"""Signal knowledge distillation (SKD, ClST paper): the loss, the distilling fit, the cost.

Hou et al. 2024 (arXiv:2312.17446) distil a pre-trained ClST teacher into the small KD-CNN
and KD-MobileNet students (``amrjax.models.kd``) with their SKD algorithm. The paper's
abstract and the passages of its text we could read name three loss weights (a, b, c) and
two learning rates (gamma, beta) but give no equation and no value. What can be recovered:
three weighted terms is the shape of the usual "hard + soft + hint" distillation, so SKD is
implemented here as, per example i,

  loss_i = a * CE(y_i, softmax(z_s,i))                                (hard, label term)
         + b * T^2 * KL(softmax(z_t,i / T) || softmax(z_s,i / T))      (soft, Hinton et al.)
         + c * || W h_s,i / |W h_s,i| - h_t,i / |h_t,i| ||^2            (feature, FitNets)

with student and teacher logits z_s, z_t, temperature T, student and teacher penultimate
embeddings h_s (64 or 128 wide) and h_t (ClST: 128), and W a linear "hint" projection
from the student's width to the teacher's, learned with the student (Romero et al. 2015,
"FitNets: Hints for Thin Deep Nets", whose regressor maps the student's hint layer onto
the teacher's). The soft term is Hinton, Vinyals & Dean 2015 ("Distilling the Knowledge
in a Neural Network"); its T^2 factor keeps the gradient magnitude independent of T (their
Sec. 2). Our choices where the paper is silent:

- the feature term compares unit-normalised embeddings (squared distance = 2 - 2 cos, in
  [0, 4]), so its weight does not depend on the two networks' activation scales (FitNets
  compares raw activations; normalising is the common fix when the widths and scales of
  teacher and student differ, e.g. Tian et al. 2020's CRD benchmark);
- defaults a = 0.1, b = 0.9, T = 4 (the KD setting of Tian et al.'s RepDistiller
  benchmark; Hinton et al. found a "considerably lower weight" on the hard term best) and
  c = 0, which is two-term Hinton KD, kept as the option it was before; c = 1 puts the
  feature term on the scale of the other two (``--feature_weights`` of the ClST driver
  trains both and compares, ``docs/results.md``);
- both learning rates are the student's one Adam rate (the projection W trains with the
  student); the paper's two rates are not recovered.

With c > 0 the student is wrapped in :class:`HintedStudent` for training only: the hint
projection is dropped afterwards and the returned state is the bare student's. Because the
wrapper nests the student's parameters one level down, its initialisation draw differs
from the bare student's of the same seed (the batch order and dropout keys do not).

The teacher is fixed and in eval mode (dropout off, BatchNorm frozen), so its logits (and,
with c > 0, its embeddings) are computed once for the whole training pool (:func:`distill`)
and passed to ``fit`` as the per-sample targets the objective reads; it is never run in
the train step.
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
from amrjax.scoring import pools
from amrjax.train import TrainConfig, TrainState, fit, predict_logits
from amrjax.train.loop import logits_fn
from amrjax.train.losses import FEATURES, cross_entropy


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


def feature_distance(student_features: jax.Array, teacher_features: jax.Array) -> jax.Array:
  """|| s / |s| - t / |t| ||^2 = 2 - 2 cos(s, t) per row, (B,), in [0, 4].

  Args:
    student_features: (B, D), the student's projected embedding.
    teacher_features: (B, D); treated as constants (no gradient flows into them).
  """
  teacher_features = jax.lax.stop_gradient(teacher_features.astype(student_features.dtype))
  unit = lambda v: v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
  return jnp.sum(jnp.square(unit(student_features) - unit(teacher_features)), axis=-1)


@dataclasses.dataclass(frozen=True)
class DistillationLoss:
  """The SKD objective for ``amrjax.train.fit`` (see the module docstring).

  ``extra`` holds the batch rows' teacher outputs: (B, C) teacher logits, followed, when
  ``feature_weight > 0``, by the (B, D_t) teacher embeddings, i.e. (B, C + D_t). With
  ``feature_weight > 0`` the objective also reads the (B, D_t) projected student
  embedding the :class:`HintedStudent` sows (``reads_features``). Returns the per-example
  loss (B,).

  Attributes:
    hard_weight: a, weight of the cross-entropy with the true labels (>= 0).
    soft_weight: b, weight of the T^2-scaled KL to the teacher's softened outputs (>= 0).
    temperature: softmax temperature T (> 0) of both teacher and student in the soft term.
    feature_weight: c, weight of the feature term (>= 0); 0 is two-term Hinton KD.
  """

  hard_weight: float = 0.1
  soft_weight: float = 0.9
  temperature: float = 4.0
  feature_weight: float = 0.0

  def __post_init__(self):
    if not (self.hard_weight >= 0 and self.soft_weight >= 0 and self.feature_weight >= 0):
      raise ConfigError(f'distillation weights must be non-negative, got hard '
                        f'{self.hard_weight}, soft {self.soft_weight}, feature '
                        f'{self.feature_weight}')
    if self.hard_weight == 0 and self.soft_weight == 0 and self.feature_weight == 0:
      raise ConfigError('the hard, soft and feature distillation weights are all 0; give one '
                        'a positive weight')
    if not self.temperature > 0:
      raise ConfigError(f'the distillation temperature must be positive, got '
                        f'{self.temperature}')

  @property
  def reads_features(self) -> bool:
    return self.feature_weight > 0

  def __call__(self, logits, labels, extra, features=None):
    if extra is None:
      raise ConfigError('the distillation loss needs the teacher logits: pass '
                        'targets=teacher_logits to fit (or use amrjax.protocols.distill.distill)')
    num_classes = logits.shape[-1]
    width = num_classes + (0 if features is None else features.shape[-1])
    if extra.shape != logits.shape[:1] + (width,):
      raise ConfigError(f'teacher outputs {extra.shape} do not match the student\'s logits '
                        f'{logits.shape}' + ('' if features is None else
                                            f' and features {features.shape}') +
                        '; teacher and student need the same classes')
    if self.reads_features and features is None:
      raise ConfigError('the feature term needs the student wrapped in HintedStudent (use '
                        'amrjax.protocols.distill.distill)')
    loss = jnp.zeros(logits.shape[:1], logits.dtype)
    if self.hard_weight:
      loss = loss + self.hard_weight * cross_entropy(logits, labels)
    if self.soft_weight:
      loss = loss + self.soft_weight * soft_target_loss(logits, extra[:, :num_classes],
                                                        self.temperature)
    if self.feature_weight:
      loss = loss + self.feature_weight * feature_distance(features, extra[:, num_classes:])
    return loss


class HintedStudent(nn.Module):
  """A student with a linear hint projection of its embedding to the teacher's width.

  ``__call__(x (B, 2, L), train) -> logits (B, C)`` are the student's own; in train mode
  it also sows ``W embed(x)`` (B, teacher_width) as ``('intermediates', FEATURES)`` for
  the feature term of :class:`DistillationLoss`. The student must have ``embed`` and
  ``classify`` (logits from the embedding), as the KD students do.

  Attributes:
    student: the student model; its variables sit under ``'student'``.
    teacher_width: D_t, the width of the teacher's embedding.
  """

  student: nn.Module
  teacher_width: int

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.student.embed(x, train=train)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    h = self.student.embed(x, train=train)
    self.sow('intermediates', FEATURES, nn.Dense(self.teacher_width, name='hint')(h))
    return self.student.classify(h, train=train)


def distill(teacher: nn.Module, teacher_variables, student: nn.Module, pool: SignalPool,
            config: TrainConfig, *, seed: int, loss: DistillationLoss = DistillationLoss(),
            state: TrainState | None = None, validation: SignalPool | None = None,
            on_epoch: Callable[[dict], None] | None = None, eval_batch_size: int = 1024,
            checkpoint: Path | str | None = None) -> tuple[TrainState, list[dict]]:
  """Trains ``student`` on ``pool`` against the fixed ``teacher``'s logits.

  The teacher's eval-mode logits for every member of ``pool`` (and, with the feature term,
  its embeddings) are computed once and passed to ``fit`` as targets of
  :class:`DistillationLoss`; with the feature term the student trains wrapped in
  :class:`HintedStudent` and the bare student's state is returned.

  Args:
    teacher: the trained teacher model (ClST).
    teacher_variables: its variables (``state.variables``).
    student: the model to train (KD-CNN, KD-MobileNet); same classes as the teacher.
    pool: the training set (with labels for the hard term).
    config: epochs, batch size, learning rate, schedule (as for ``fit``).
    seed: drives the student's initialisation, the shuffling and dropout; the same seed
      as a plain ``fit`` of the student gives the same batch order, and without the
      feature term the same initialisation.
    loss: the distillation weights and temperature.
    state: continue from this student state instead of a fresh one (donated; not with a
      cosine schedule, which decays over one call from a fresh state; not with the
      feature term).
    validation: evaluated after every epoch (cross-entropy with the labels, accuracy).
    on_epoch: called with each epoch's metrics.
    eval_batch_size: rows per call of the teacher's forward pass.
    checkpoint: a folder for the student's epoch checkpoints (``amrjax.train.fit``).

  Returns:
    The student's final state (with the feature term: without optimiser state, for
    evaluation) and one metrics dict per epoch (``fit``'s history; its 'loss' is the
    distillation loss).
  """
  if not loss.reads_features:
    teacher_logits = predict_logits(teacher, teacher_variables, pool,
                                    batch_size=eval_batch_size)
    _check_classes(teacher_logits, pool)
    return fit(student, pool, config, seed=seed, state=state, on_epoch=on_epoch,
               objective=loss, targets=teacher_logits, validation=validation,
               checkpoint=checkpoint)
  if not hasattr(student, 'classify'):
    raise ConfigError(f'the SKD feature term needs a student with embed and classify (KD-CNN, '
                      f'KD-MobileNet); {type(student).__name__} has no classify')
  if state is not None:
    raise ConfigError('a distillation with the feature term starts from a fresh student')
  out = pools.pool_outputs(teacher, teacher_variables, pool, batch_size=eval_batch_size)
  _check_classes(out['log_probs'], pool)
  # log-softmax differs from the logits by a per-row constant: the same softened softmax.
  targets = np.concatenate([out['log_probs'], out['embedding']], axis=-1)
  hinted = HintedStudent(student, out['embedding'].shape[-1])
  trained, history = fit(hinted, pool, config, seed=seed, on_epoch=on_epoch, objective=loss,
                         targets=targets, validation=validation, checkpoint=checkpoint)
  bare = trained.replace(params=trained.params['student'],
                         batch_stats=(trained.batch_stats['student'] if trained.batch_stats
                                      else {}),
                         opt_state=None)  # the hint's optimiser state has no bare meaning
  return bare, history


def _check_classes(teacher_outputs: np.ndarray, pool: SignalPool) -> None:
  if teacher_outputs.shape[-1] != pool.num_classes:
    raise ConfigError(f'the teacher predicts {teacher_outputs.shape[-1]} classes but the pool '
                      f'has {pool.num_classes}')


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
