r"""The FoQuS study at the paper's data scale: run its named runs, print its tables.

  python -m experiments.foqus_study --run=table1,table5   # about an hour each, resumable
  python -m experiments.foqus_study                       # the tables so far

Each named run (``amrjax.experiments.foqus_study.RUNS``) is ``experiments.foqus --preset=study
--dataset=rml2016.10a`` with a few settings changed, in its own run directory
``<workdir>/<name>``; a killed run resumes when started again. Without ``--run`` the
command only reads the run directories (finished or not) and prints Tables I, IV and V and
the tier-share comparison beside the paper's numbers (docs/results.md).
"""

from __future__ import annotations

from amrjax.experiments import foqus, foqus_study
from experiments import common

DRIVER = common.Driver(lambda f: common.define_study_flags(f, foqus_study),
                       lambda f, defined, argv: common.run_study(f, foqus_study, foqus.run))
main = DRIVER.main

if __name__ == '__main__':
  DRIVER.script()
