"""AFNet's confidence-weighted (CW) loss and its two-stage training (Shi et al. 2022, Sec. III-B).

Stage one (confidence evaluation) trains the model with plain cross-entropy. The trained
model then scores every training vector once more, in eval mode, and turns its softmax
output p_i (C,) into a weight w_i in [0, 1] (Eq. 9-10; ``amrjax.scoring.uncertainty
.topk_entropy_weight``):

  q = the k largest entries of p_i, renormalised;  H_k = -sum q log q  (Eq. 9)
  w_i = 1 - H_k / log k                                              (Eq. 10)

Stage two retrains with the weighted cross-entropy (1/B) sum_i w_i CE_i (Eq. 11;
``amrjax.train.WeightedCrossEntropy``). For AFNet's Table II the weights come from AFNet's
stage-one model and other models are trained with them (``weights=`` of
:func:`train_two_stage`).

Choices the paper leaves open:

- Stage two starts from scratch by default, from the same initialisation and with the same
  batch order as stage one (same ``seed``), so that the loss is the only difference between
  the "w/o CW loss" and "CW loss" models. The paper calls stage two a "re-training" that "is
  the same as the normal way ... when the model converges, the optimal parameters are
  learned", and in Table II other models are "re-trained" with AFNet's weights, where there is
  no stage-one model of theirs to continue from; both read as a full training run.
  ``warm_start=True`` instead continues from the stage-one state (parameters, BatchNorm
  statistics and Adam moments), the other reading of "pre-trained" in Sec. III-B.
- The weights are computed for the training vectors only (not the vectors held out for early
  stopping), in eval mode (dropout off, BatchNorm frozen), and clipped to [0, 1] against
  float rounding of Eq. 10.
- Early stopping (Sec. IV: patience 15) monitors the *unweighted* cross-entropy of a
  validation pool in both stages, as Keras does when sample weights are given to ``fit`` but
  not to the validation data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from amrjax.data.pool import SignalPool
from amrjax.errors import ConfigError
from amrjax.scoring.uncertainty import topk_entropy_weight
from amrjax.train import (TrainConfig, TrainState, WeightedCrossEntropy, fit, predict_logits)

PAPER_K = 3
"""AFNet Table I: k = 3 gave the best average and maximum accuracy."""

CW_LOSS = WeightedCrossEntropy()


def weights_from_logits(logits: np.ndarray | jax.Array, k: int = PAPER_K) -> np.ndarray:
  """Confidence weights (Eq. 9-10) of logits (n, C): float32 (n,) in [0, 1].

  Args:
    logits: (n, C) model outputs before the softmax, C >= k.
    k: how many of the largest probabilities enter the top-k entropy (k >= 2).

  Returns:
    (n,) weights; 1 = all top-k mass on one class (confident), 0 = the top k equal.
  """
  logits = jnp.asarray(logits, jnp.float32)
  if logits.ndim != 2:
    raise ConfigError(f'logits must be (n, C), got shape {logits.shape}')
  weights = topk_entropy_weight(jax.nn.softmax(logits, axis=-1), k)
  return np.clip(np.asarray(weights, np.float32), 0.0, 1.0)


def confidence_weights(model: nn.Module, variables, pool: SignalPool, k: int = PAPER_K, *,
                       batch_size: int = 1024) -> np.ndarray:
  """Stage one's scoring pass: the weight w_i (Eq. 10) of every member of ``pool``.

  Args:
    model: the stage-one model.
    variables: its trained variables (``state.variables``).
    pool: the vectors to weight, n of them (the training pool of stage two).
    k: the top-k entropy's k (AFNet: 3).
    batch_size: rows per eval-mode forward pass.

  Returns:
    float32 (n,) weights in [0, 1], in pool order.
  """
  return weights_from_logits(predict_logits(model, variables, pool, batch_size=batch_size), k)


def _check_weights(weights, pool: SignalPool) -> np.ndarray:
  weights = np.asarray(weights, np.float32)
  if weights.shape != (len(pool),):
    raise ConfigError(f'confidence weights must be one value per training vector, shape '
                      f'({len(pool)},), got {weights.shape}; compute them on this training '
                      'pool')
  if not np.all(np.isfinite(weights)) or weights.min() < 0:
    raise ConfigError('confidence weights must be finite and non-negative; check the model '
                      'that produced them')
  return weights


def copy_state(state: TrainState) -> TrainState:
  """A device copy of ``state``, so that donating one to ``fit`` keeps the other usable."""
  return jax.tree.map(jnp.copy, state)


def train_stage_two(model: nn.Module, train: SignalPool, weights: np.ndarray,
                    config: TrainConfig, *, seed: int, state: TrainState | None = None,
                    validation: SignalPool | None = None,
                    on_epoch: Callable[[dict], None] | None = None,
                    checkpoint: Path | str | None = None,
                    ) -> tuple[TrainState, list[dict]]:
  """Stage two: trains ``model`` with the weighted cross-entropy of Eq. 11.

  Args:
    model: the model to train (AFNet, or another model with AFNet's weights: Table II).
    train: the training pool, n vectors.
    weights: (n,) per-vector weights w_i >= 0 in pool order.
    config: epochs, batch size, learning rate, patience.
    seed: initialisation (when ``state`` is None), shuffling and dropout; the stage-one seed
      gives stage one's initialisation and batch order.
    state: continue from this state (warm start); it is donated, do not reuse it.
    validation: the early-stopping pool (monitored with the unweighted cross-entropy).
    on_epoch: receives every epoch's metrics.
    checkpoint: a folder for epoch checkpoints (``amrjax.train.fit``).

  Returns:
    The trained state and one metrics dict per epoch (``amrjax.train.fit``).
  """
  weights = _check_weights(weights, train)
  return fit(model, train, config, seed=seed, state=state, on_epoch=on_epoch,
             objective=CW_LOSS, targets=weights, validation=validation, checkpoint=checkpoint)


@dataclasses.dataclass(frozen=True)
class TwoStageResult:
  """Both stages of a CW-loss training.

  Attributes:
    stage_one: the cross-entropy model (AFNet's "w/o CW loss").
    stage_one_history: its per-epoch metrics.
    weights: (n,) the weights stage two trained with, in training-pool order.
    stage_two: the CW-loss model.
    stage_two_history: its per-epoch metrics.
  """

  stage_one: TrainState
  stage_one_history: list[dict]
  weights: np.ndarray
  stage_two: TrainState
  stage_two_history: list[dict]


def train_two_stage(model: nn.Module, train: SignalPool, config: TrainConfig, *, seed: int,
                    k: int = PAPER_K, weights: np.ndarray | None = None,
                    validation: SignalPool | None = None, warm_start: bool = False,
                    stage_two_config: TrainConfig | None = None,
                    on_epoch: Callable[[str, dict], None] | None = None,
                    stage_one: TrainState | None = None,
                    checkpoint: Path | str | None = None) -> TwoStageResult:
  """AFNet's two-stage learning (Fig. 3): cross-entropy, confidence weights, CW loss.

  Args:
    model: the model of both stages.
    train: the training pool, n vectors.
    config: the training settings of stage one (and of stage two unless
      ``stage_two_config`` is given).
    seed: both stages' seed: from scratch, stage two starts from stage one's initialisation.
    k: the top-k entropy's k for the weights (ignored when ``weights`` is given).
    weights: (n,) weights to train stage two with instead of this model's own, e.g. those of
      AFNet's stage-one model (Table II); stage one still runs, as the "w/o CW loss" model.
    validation: the early-stopping pool for both stages (needed with ``config.patience``).
    warm_start: stage two continues from the stage-one state instead of starting afresh.
    stage_two_config: stage two's settings, if they differ.
    on_epoch: ``on_epoch(stage, metrics)`` with stage ``'stage_one'`` or ``'stage_two'``.
    stage_one: the stage-one state, when stage one was trained before (with this ``seed``
      and ``config``): AFNet's Table I trains one stage-one model and a stage two per k.
      Stage one is then not trained again and its history is empty.
    checkpoint: a folder for stage two's epoch checkpoints (``amrjax.train.fit``).

  Returns:
    A :class:`TwoStageResult`.
  """
  if weights is not None:
    weights = _check_weights(weights, train)
  tagged = (lambda stage: None if on_epoch is None else
            (lambda metrics: on_epoch(stage, metrics)))
  history_one = []
  if stage_one is None:
    stage_one, history_one = fit(model, train, config, seed=seed, validation=validation,
                                 on_epoch=tagged('stage_one'))
  if weights is None:
    weights = confidence_weights(model, stage_one.variables, train, k)
  stage_two, history_two = train_stage_two(
      model, train, weights, stage_two_config or config, seed=seed,
      state=copy_state(stage_one) if warm_start else None, validation=validation,
      on_epoch=tagged('stage_two'), checkpoint=checkpoint)
  return TwoStageResult(stage_one, history_one, weights, stage_two, history_two)


@dataclasses.dataclass(frozen=True)
class SnrSummary:
  """Accuracy over SNR levels, as AFNet's Tables I and II report it.

  Attributes:
    average: mean of the per-SNR accuracies, each SNR level counting once ("average
      accuracy under all SNRs"; equals the overall accuracy when every level has as many
      test vectors, as in RML2016.10a).
    maximum: the highest per-SNR accuracy ("maximum accuracy").
    best_snr: the SNR (dB) where the maximum is reached (the lowest such SNR on a tie).
    levels: how many SNR levels were averaged.
  """

  average: float
  maximum: float
  best_snr: int
  levels: int

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def snr_summary(per_snr: Mapping[int | str, float]) -> SnrSummary:
  """Average and maximum accuracy over SNR levels.

  Args:
    per_snr: {SNR in dB: accuracy at that SNR}, e.g. ``Evaluation.per_snr``; keys may be
      strings (as read back from JSON).

  Returns:
    An :class:`SnrSummary`.
  """
  if not per_snr:
    raise ConfigError('no per-SNR accuracies to summarise; the test pool is empty')
  snrs = np.array([int(s) for s in per_snr], np.int64)
  acc = np.array([float(v) for v in per_snr.values()], np.float64)
  order = np.argsort(snrs, kind='stable')
  snrs, acc = snrs[order], acc[order]
  best = int(np.argmax(acc))
  return SnrSummary(float(acc.mean()), float(acc[best]), int(snrs[best]), len(acc))


__all__ = ['CW_LOSS', 'PAPER_K', 'SnrSummary', 'TwoStageResult', 'confidence_weights',
           'copy_state', 'snr_summary', 'train_stage_two', 'train_two_stage',
           'weights_from_logits']
