"""The training state: step, parameters, BatchNorm statistics and optimiser state."""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


class TrainState(flax.struct.PyTreeNode):
  """A pytree of everything a training step updates.

  ``batch_stats`` is an empty dict for models without BatchNorm.
  """

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any

  @property
  def variables(self) -> dict[str, Any]:
    """The ``variables`` argument of ``model.apply`` in eval mode."""
    if self.batch_stats:
      return {'params': self.params, 'batch_stats': self.batch_stats}
    return {'params': self.params}


def create_state(model: nn.Module, tx: optax.GradientTransformation, *, length: int,
                 key: jax.Array) -> TrainState:
  """Initialises ``model`` for (1, 2, length) inputs and ``tx`` for its parameters."""
  variables = model.init({'params': key}, jnp.zeros((1, 2, length), jnp.float32),
                         train=False)
  params = variables['params']
  batch_stats = variables.get('batch_stats', {})
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params))
