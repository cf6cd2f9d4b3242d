r"""AFNet's confidence-weighted loss (Shi et al. 2022): Table I (k) and Table II (other models).

  python -m experiments.cwloss --dataset=rml2016.10a                  # quick preset
  python -m experiments.cwloss --dataset=rml2016.10a --preset=paper
  python -m experiments.cwloss --tables=table2 --models=resnet,cldnn --seeds=0,1,2

Flags left unset take the preset's value (``amrjax.experiments.cwloss.PRESETS``).
"""

from __future__ import annotations

from amrjax.experiments import cwloss
from experiments import common

# --dataset, --preset, --workdir, and one flag per CwLossConfig field, its help from the
# CwLossConfig docstring.
DRIVER = common.config_driver(
    'cwloss', cwloss.CwLossConfig, cwloss.run, dataset='rml2016.10a',
    dataset_help='rml2016.10a (AFNet), rml2016.10b, rml2016.04c, rml2018.01a or sig2019.',
    preset_help=('quick: minutes on a laptop CPU; paper: AFNet Sec. IV; study: the paper cut '
                 'to fit a 2-core CPU (docs/results.md).'))
define_flags = DRIVER.define
main = DRIVER.main

if __name__ == '__main__':
  DRIVER.script()
