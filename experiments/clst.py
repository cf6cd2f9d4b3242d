r"""ClST and signal knowledge distillation (Hou et al. 2024): teacher, students alone and
distilled, trained on 3 % and 5 % of the data.

  python -m experiments.clst --dataset=rml2016.10a                  # quick preset
  python -m experiments.clst --dataset=rml2016.10a --preset=paper

Flags left unset take the preset's value (``amrjax.experiments.clst.PRESETS``).
"""

from __future__ import annotations

from amrjax.experiments import clst
from experiments import common

# --dataset, --preset, --workdir, and one flag per ClstConfig field, its help from the
# ClstConfig docstring.
DRIVER = common.config_driver(
    'clst', clst.ClstConfig, clst.run, dataset='rml2016.10a',
    dataset_help='rml2016.10a, rml2016.10b, rml2016.04c, rml2018.01a or sig2019.',
    preset_help=('quick: minutes on a laptop CPU; study: the paper cut to fit a 2-core CPU '
                 '(docs/results.md); paper: ClST Sec. IV (3 % and 5 %, Adam 0.01, batch 256, '
                 'cosine decay, 100 epochs).'))
define_flags = DRIVER.define
main = DRIVER.main

if __name__ == '__main__':
  DRIVER.script()
