r"""AFNet's confidence-weighted loss (Shi et al. 2022): Table I (k) and Table II (other models).

  python -m experiments.cwloss --dataset=rml2016.10a                  # quick preset
  python -m experiments.cwloss --dataset=rml2016.10a --preset=paper
  python -m experiments.cwloss --tables=table2 --models=resnet,cldnn --seeds=0,1,2

Flags left unset take the preset's value (``amrjax.experiments.cwloss.PRESETS``).
"""

from __future__ import annotations

from absl import flags

from amrjax.experiments import cwloss
from experiments import common


def define_flags(flag_values: flags.FlagValues) -> tuple[str, ...]:
  """--dataset, --preset, --workdir and one flag per CwLossConfig field, its help from the
  CwLossConfig docstring; returns the fields' flag names."""
  return common.define_driver_flags(
      flag_values, cwloss.CwLossConfig, cwloss.PRESETS, dataset='rml2016.10a',
      dataset_help='rml2016.10a (AFNet), rml2016.10b, rml2016.04c, rml2018.01a or sig2019.',
      preset_help='quick: minutes on a laptop CPU; paper: AFNet Sec. IV; study: the paper cut '
                  'to fit a 2-core CPU (docs/results.md).')


DRIVER = common.Driver(define_flags, lambda f, settings, argv: common.run_config(
    f, 'cwloss', cwloss.CwLossConfig, cwloss.run,
    lambda: {**common.config_overrides(f, settings), 'dataset': f.dataset}))
main = DRIVER.main

if __name__ == '__main__':
  DRIVER.script()
