r"""DUSE data expansion (Lu et al. 2025): target only vs random vs DUSE, over seeds.

  python -m experiments.duse --dataset=sig2019                 # quick preset
  python -m experiments.duse --dataset=rml2016.10a --preset=paper --setting=balance

Flags left unset take the preset's value (``amrjax.experiments.duse.PRESETS``).
"""

from __future__ import annotations

from absl import flags

from amrjax.experiments import duse
from experiments import common

flags.DEFINE_multi_string('strategy_option', [], 'A baseline\'s option as '
                          'STRATEGY.OPTION=VALUE, e.g. forgetting.never_learned=0 or '
                          'grand.runs=5; repeat the flag for several. Added to the preset\'s.')
# --dataset, --preset, --workdir, and one flag per DuseConfig field, its help from the
# DuseConfig docstring; strategy_options comes from --strategy_option.
SETTINGS = common.define_driver_flags(
    duse.DuseConfig, duse.PRESETS, dataset='sig2019',
    dataset_help='rml2016.10a, rml2016.10b, rml2016.04c, rml2018.01a or sig2019.',
    preset_help='quick: minutes on a laptop CPU; study: the paper\'s data scale, epochs and '
                'baselines at 4 % and 9 % with the 1D-CNN (hours on a CPU); paper: DUSE '
                'Sec. IV-D.',
    skip=('strategy_options',))
FLAGS = flags.FLAGS


def run_from_flags(kind: str, defaults: dict | None = None) -> None:
  """Builds the config from the preset, ``defaults`` and the flags set, and runs it.

  ``kind`` names the run directory's parent (runs/<kind>/...).
  """

  def overrides():
    given = {**(defaults or {}), **common.config_overrides([*SETTINGS, 'dataset'])}
    # A preset that names its dataset (study) takes it unless --dataset is given.
    given.setdefault('dataset', duse.PRESETS[FLAGS.preset].get('dataset', FLAGS.dataset))
    if FLAGS.strategy_option:
      given['strategy_options'] = common.strategy_options(
          FLAGS.strategy_option, duse.PRESETS[FLAGS.preset]['strategy_options'])
    return given

  common.run_config(kind, duse.DuseConfig, duse.run, overrides)


def main(argv):
  del argv
  run_from_flags('duse')


if __name__ == '__main__':
  common.main(main)
