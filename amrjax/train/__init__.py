"""Training and evaluation: optax Adam, one jitted train step, per-class and per-SNR accuracy."""

from amrjax.train.loop import (Evaluation, TrainConfig, TrainingDivergedError, diverged_where,
                               evaluate, fit,
                               fit_recording, init_state, predict_logits, validation_metrics)
from amrjax.train.losses import CROSS_ENTROPY, CrossEntropy, Objective, WeightedCrossEntropy
from amrjax.train.state import TrainState

__all__ = ['CROSS_ENTROPY', 'CrossEntropy', 'Evaluation', 'Objective', 'TrainConfig',
           'TrainState', 'TrainingDivergedError', 'WeightedCrossEntropy', 'diverged_where',
           'evaluate', 'fit',
           'fit_recording', 'init_state', 'predict_logits', 'validation_metrics']
