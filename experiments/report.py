r"""Writes ``report.md`` and its plots for a finished run directory, and prints where.

  python -m experiments.report runs/duse/sig2019-quick-20261123-101500

Every driver does this at the end of its run; this command rebuilds a report (after
installing scikit-learn for the t-SNE plot, say). See ``amrjax.reporting.run_report``.
"""

from __future__ import annotations

from absl import flags

from amrjax.errors import ConfigError
from amrjax.reporting import run_report
from experiments import common


def _report(flag_values: flags.FlagValues, argv: list[str]) -> None:
  def body():
    if len(argv) != 2:
      raise ConfigError('give one run directory: python -m experiments.report RUN_DIR')
    common.log(f'report: {run_report.write_report(argv[1])}')
  common.run_reporting_errors(flag_values, body)


DRIVER = common.Driver(common.define_shared_flags, lambda f, defined, argv: _report(f, argv))
main = DRIVER.main

if __name__ == '__main__':
  DRIVER.script()
