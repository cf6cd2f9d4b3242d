r"""Cross-architecture evaluation: select with one model, train and test others on the set.

DUSE Table III: the expanded set is chosen by the 2D-CNN at 4 % (class-imbalance setting)
and each evaluation model is trained on it from scratch and tested; the driver prints one
table per expansion rate, methods by evaluation model.

  python -m experiments.crossarch --dataset=sig2019
  python -m experiments.crossarch --model=cnn1d --eval_models=cnn2d,signet,gru2 \
      --methods=random,margin,duse --rates=0.04,0.09

Every flag of ``experiments.duse`` applies (``--model`` is the selecting model, A; the
methods may be any strategy); flags left unset take the crossarch defaults below, then the
preset's.
"""

from __future__ import annotations

from experiments import common, duse

DEFAULTS = {
    'rates': (0.04,),
    'methods': ('target', 'random', 'duse'),
    'eval_models': ('cnn1d', 'cnn2d', 'alexnet', 'signet', 'gru2', 'mcldnn'),
}
"""DUSE Table III: 2D-CNN selects at 4 %; the six evaluation models of the paper."""

DRIVER = common.Driver(
    duse.define_flags,
    lambda f, settings, argv: duse.run_from_flags(f, settings, 'crossarch', DEFAULTS))
main = DRIVER.main

if __name__ == '__main__':
  DRIVER.script()
