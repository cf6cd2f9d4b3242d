"""The AMR model zoo: Flax linen modules looked up by name.

Every model maps float32 (B, 2, L) I/Q to logits (B, num_classes) through
``model.apply(variables, x, train=False)`` and exposes its penultimate features through
``model.apply(variables, x, method='embed')``. Dropout takes the ``'dropout'`` rng;
models with BatchNorm keep a ``'batch_stats'`` collection.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn

from amrjax.errors import ConfigError
from amrjax.models.cnn1d import CNN1D
from amrjax.models.cnn2d import CNN2D

_REGISTRY: dict[str, Callable[[int, int], nn.Module]] = {
    'cnn2d': lambda num_classes, length: CNN2D(num_classes),
    'cnn1d': lambda num_classes, length: CNN1D(num_classes),
}
_ALIASES = {
    '2d-cnn': 'cnn2d', '2dcnn': 'cnn2d', 'vtcnn2': 'cnn2d', 'vt-cnn2': 'cnn2d',
    '1d-cnn': 'cnn1d', '1dcnn': 'cnn1d', 'vgg10': 'cnn1d',
}


def names() -> tuple[str, ...]:
  """Registered model names."""
  return tuple(_REGISTRY)


def canonical_name(name: str) -> str:
  key = name.strip().lower()
  key = _ALIASES.get(key, key)
  if key not in _REGISTRY:
    raise ConfigError(f'unknown model {name!r}; choose one of {", ".join(names())}')
  return key


def get(name: str, num_classes: int, length: int) -> nn.Module:
  """The model registered under ``name`` for ``num_classes`` classes and length-L input."""
  if num_classes < 2:
    raise ConfigError(f'a classifier needs at least 2 classes, got {num_classes}')
  return _REGISTRY[canonical_name(name)](num_classes, length)


def register(name: str, factory: Callable[[int, int], nn.Module]) -> None:
  """Adds ``factory(num_classes, length) -> nn.Module`` under ``name``."""
  _REGISTRY[name.strip().lower()] = factory


__all__ = ['CNN1D', 'CNN2D', 'canonical_name', 'get', 'names', 'register']
