r"""DUSE data expansion (Lu et al. 2025): target only vs random vs DUSE, over seeds.

  python -m experiments.duse --dataset=sig2019                 # quick preset
  python -m experiments.duse --dataset=rml2016.10a --preset=paper --setting=balance

Flags left unset take the preset's value (``amrjax.experiments.duse.PRESETS``). In Python,
``main(['duse', '--dataset=sig2019'])`` runs the same command in the calling process.
"""

from __future__ import annotations

from collections.abc import Mapping

from absl import flags

from amrjax.experiments import duse
from experiments import common


def define_flags(flag_values: flags.FlagValues) -> tuple[str, ...]:
  """--dataset, --preset, --workdir, --strategy_option and one flag per DuseConfig field,
  its help from the DuseConfig docstring; returns the fields' flag names."""
  flags.DEFINE_multi_string('strategy_option', [], 'A baseline\'s option as '
                            'STRATEGY.OPTION=VALUE, e.g. forgetting.never_learned=0 or '
                            'grand.runs=5; repeat the flag for several. Added to the preset\'s.',
                            flag_values=flag_values)
  return common.define_driver_flags(
      flag_values, duse.DuseConfig, duse.PRESETS, dataset='sig2019',
      dataset_help='rml2016.10a, rml2016.10b, rml2016.04c, rml2018.01a or sig2019.',
      preset_help='quick: minutes on a laptop CPU; study: the paper\'s data scale, epochs and '
                  'baselines at 4 % and 9 % with the 1D-CNN (hours on a CPU); paper: DUSE '
                  'Sec. IV-D.',
      skip=('strategy_options',))


def run_from_flags(flag_values: flags.FlagValues, settings: tuple[str, ...], kind: str,
                   defaults: Mapping | None = None) -> None:
  """Builds the config from the preset, ``defaults`` and the flags set, and runs it.

  ``kind`` names the run directory's parent (runs/<kind>/...).
  """
  f = flag_values

  def overrides():
    given = {**(defaults or {}), **common.config_overrides(f, [*settings, 'dataset'])}
    # A preset that names its dataset (study) takes it unless --dataset is given.
    given.setdefault('dataset', duse.PRESETS[f.preset].get('dataset', f.dataset))
    if f.strategy_option:
      given['strategy_options'] = common.strategy_options(
          f.strategy_option, duse.PRESETS[f.preset]['strategy_options'])
    return given

  common.run_config(f, kind, duse.DuseConfig, duse.run, overrides)


DRIVER = common.Driver(define_flags, lambda f, settings, argv: run_from_flags(f, settings, 'duse'))
main = DRIVER.main

if __name__ == '__main__':
  DRIVER.script()
