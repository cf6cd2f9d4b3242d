"""The AMR model zoo: Flax linen modules looked up by name.

Every model maps float32 (B, 2, L) I/Q to logits (B, num_classes) through
``model.apply(variables, x, train=False)`` and exposes its penultimate features through
``model.apply(variables, x, method='embed')``. Dropout takes the ``'dropout'`` rng;
models with BatchNorm keep a ``'batch_stats'`` collection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import numpy as np

from amrjax.errors import ConfigError
from amrjax.models.afnet import AFNet
from amrjax.models.alexnet import AlexNet
from amrjax.models.cldnn import CLDNN
from amrjax.models.clst import ClST
from amrjax.models.cnn1d import CNN1D
from amrjax.models.cnn2d import CNN2D
from amrjax.models.icamcnet import ICAMCNet
from amrjax.models.iqformer import IQFormer, for_length as _iqformer_for_length
from amrjax.models.kd import KDCNN, KDMobileNet
from amrjax.models.mcldnn import MCLDNN
from amrjax.models.recurrent import GRU2, LSTM2
from amrjax.models.resnet import ResNet
from amrjax.models.signet import SigNet
from amrjax.registry import Registry

_REGISTRY: Registry[Callable[[int, int], nn.Module]] = Registry('model')
_LABELS: dict[str, str] = {}


def register(name: str, factory: Callable[[int, int], nn.Module],
             aliases: tuple[str, ...] = (), *, label: str | None = None) -> None:
  """Adds ``factory(num_classes, length) -> nn.Module`` under ``name``.

  ``label`` is the name tables print (the papers' spelling); default ``name``.
  """
  _REGISTRY.register(name, factory, aliases)
  _LABELS[_REGISTRY.canonical(name)] = label or name


register('cnn2d', lambda num_classes, length: CNN2D(num_classes),
         aliases=('2d-cnn', '2dcnn', 'vtcnn2', 'vt-cnn2'), label='2D-CNN')
register('cnn1d', lambda num_classes, length: CNN1D(num_classes),
         aliases=('1d-cnn', '1dcnn', 'vgg10'), label='1D-CNN')
register('resnet', lambda num_classes, length: ResNet(num_classes),
         aliases=('resnet-oshea',), label='ResNet')
register('icamcnet', lambda num_classes, length: ICAMCNet(num_classes),
         aliases=('ic-amcnet', 'ic_amcnet'), label='IC-AMCNet')
register('alexnet', lambda num_classes, length: AlexNet(num_classes), label='AlexNet')
register('signet', lambda num_classes, length: SigNet(num_classes), label='SigNet')
register('gru2', lambda num_classes, length: GRU2(num_classes), aliases=('gru',),
         label='GRU')
register('lstm2', lambda num_classes, length: LSTM2(num_classes), aliases=('lstm',),
         label='LSTM2')
register('cldnn', lambda num_classes, length: CLDNN(num_classes), label='CLDNN')
register('mcldnn', lambda num_classes, length: MCLDNN(num_classes), label='MCLDNN')
register('afnet', lambda num_classes, length: AFNet(num_classes), aliases=('af-net',),
         label='AFNet')
register('clst', lambda num_classes, length: ClST(num_classes), label='ClST')
register('iqformer', _iqformer_for_length, aliases=('iq-former',), label='IQFormer')
register('kd_cnn', lambda num_classes, length: KDCNN(num_classes), aliases=('kd-cnn', 'kdcnn'),
         label='KD-CNN')
register('kd_mobilenet', lambda num_classes, length: KDMobileNet(num_classes),
         aliases=('kd-mobilenet', 'kdmobilenet'), label='KD-MobileNet')


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


def label(name: str) -> str:
  """The printed name of model ``name`` (e.g. '2D-CNN' for 'cnn2d')."""
  return _LABELS[_REGISTRY.canonical(name)]


def parameter_count(variables) -> int:
  """Trainable parameters: the sizes of every leaf of ``variables['params']``.

  BatchNorm statistics are not counted. Accepts the variables dict, the params tree itself
  or their ``jax.eval_shape`` shapes.
  """
  is_variables = isinstance(variables, Mapping) and 'params' in variables
  params = variables['params'] if is_variables else variables
  return sum(int(np.prod(np.shape(p))) for p in jax.tree.leaves(params))


__all__ = ['AFNet', 'AlexNet', 'CLDNN', 'ClST', 'CNN1D', 'CNN2D', 'GRU2', 'ICAMCNet', 'IQFormer',
           'KDCNN', 'KDMobileNet', 'LSTM2', 'MCLDNN', 'ResNet', 'SigNet', 'canonical_name', 'get',
           'label', 'names', 'parameter_count', 'register']
