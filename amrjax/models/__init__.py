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
from amrjax.registry import Registry

_REGISTRY: Registry[Callable[[int, int], nn.Module]] = Registry('model')
_REGISTRY.register('cnn2d', lambda num_classes, length: CNN2D(num_classes),
                   aliases=('2d-cnn', '2dcnn', 'vtcnn2', 'vt-cnn2'))
_REGISTRY.register('cnn1d', lambda num_classes, length: CNN1D(num_classes),
                   aliases=('1d-cnn', '1dcnn', 'vgg10'))


def names() -> tuple[str, ...]:
  """Registered model names."""
  return _REGISTRY.names()


def canonical_name(name: str) -> str:
  return _REGISTRY.canonical(name)


def get(name: str, num_classes: int, length: int) -> nn.Module:
  """The model registered under ``name`` for ``num_classes`` classes and length-L input."""
  if num_classes < 2:
    raise ConfigError(f'a classifier needs at least 2 classes, got {num_classes}')
  return _REGISTRY.get(name)(num_classes, length)


def register(name: str, factory: Callable[[int, int], nn.Module],
             aliases: tuple[str, ...] = ()) -> None:
  """Adds ``factory(num_classes, length) -> nn.Module`` under ``name``."""
  _REGISTRY.register(name, factory, aliases)


__all__ = ['CNN1D', 'CNN2D', 'canonical_name', 'get', 'names', 'register']
