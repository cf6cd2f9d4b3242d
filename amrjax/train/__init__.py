"""Training and evaluation: optax Adam, one jitted train step, per-class and per-SNR accuracy."""

from amrjax.train.loop import (Evaluation, TrainConfig, TrainingDivergedError, evaluate, fit,
                               fit_recording, init_state, predict_logits)
from amrjax.train.state import TrainState

__all__ = ['Evaluation', 'TrainConfig', 'TrainState', 'TrainingDivergedError', 'evaluate',
           'fit', 'fit_recording', 'init_state', 'predict_logits']
