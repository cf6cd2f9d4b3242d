r"""The DUSE study at the paper's data scale: run its named runs, print its tables.

  python -m experiments.duse_study --run=table1-seed0,table1-seed1   # hours each, resumable
  python -m experiments.duse_study                                    # the tables so far

Each named run (``amrjax.experiments.duse_study.RUNS``) is ``experiments.duse --preset=study
--dataset=rml2016.10a`` with a few settings changed, in its own run directory
``<workdir>/<name>``; a killed run resumes when started again. Without ``--run`` the
command only reads the run directories (finished or not) and prints Tables I, II and IV,
the protocol comparison and the 2D-CNN's key rows beside the paper's numbers
(docs/results.md).
"""

from __future__ import annotations

from amrjax.experiments import duse, duse_study
from experiments import common

DRIVER = common.Driver(lambda f: common.define_study_flags(f, duse_study),
                       lambda f, defined, argv: common.run_study(f, duse_study, duse.run))
main = DRIVER.main

if __name__ == '__main__':
  DRIVER.script()
