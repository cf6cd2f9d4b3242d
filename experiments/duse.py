r"""DUSE data expansion (Lu et al. 2025): target only vs random vs DUSE, over seeds.

  python -m experiments.duse --dataset=sig2019                 # quick preset
  python -m experiments.duse --dataset=rml2016.10a --preset=paper --setting=balance

Flags left unset take the preset's value (``amrjax.experiments.duse.PRESETS``).
"""

from __future__ import annotations

from absl import flags

from amrjax.experiments import duse
from amrjax.protocols import expansion
from experiments import common

flags.DEFINE_string('dataset', 'sig2019', 'rml2016.10a, rml2016.10b, rml2016.04c, '
                    'rml2018.01a or sig2019.')
flags.DEFINE_enum('preset', 'quick', list(duse.PRESETS),
                  'quick: minutes on a laptop CPU; study: the paper\'s data scale, epochs and '
                  'baselines at 4 % and 9 % with the 1D-CNN (hours on a CPU); paper: DUSE '
                  'Sec. IV-D.')
flags.DEFINE_list('rates', None, 'Expansion rates as fractions, e.g. 0.04,0.09 '
                  '(budget = rate x |train|).')
flags.DEFINE_integer('rounds', None, 'Active-learning rounds R of DUSE.')
flags.DEFINE_enum('setting', 'imbalance', ['imbalance', 'balance'],
                  'imbalance: smallest margins overall; balance: equal class counts.')
flags.DEFINE_string('model', 'cnn2d', 'Scorer (selection) model.')
flags.DEFINE_list('eval_models', None, 'Evaluation models (default: the scorer model); '
                  'several give a cross-architecture table per rate (DUSE Table III).')
flags.DEFINE_list('seeds', None, 'Seeds; each draws its own target set.')
flags.DEFINE_integer('round_epochs', None, 'Scorer epochs per round (paper: 20).')
flags.DEFINE_integer('final_epochs', None, 'Evaluation epochs (paper: 50).')
flags.DEFINE_string('max_per_cell', None, "Vectors kept per (class, SNR) cell before "
                    "splitting ('all' keeps every one).")
flags.DEFINE_list('methods', None, 'Methods: target, random, duse_oneshot, duse, any strategy '
                  '(least_confidence, entropy, margin, deepfool, forgetting, glister, grand, '
                  'herding, kcenter, cal, cd, el2n, foqus, uniform) or a group: default, '
                  'baselines (DUSE\'s 8), table1 (target, random, the 8 baselines, duse).')
flags.DEFINE_integer('batch_size', None, 'Training batch size (paper: 128).')
flags.DEFINE_float('learning_rate', None, 'Adam learning rate (paper: 1e-3).')
flags.DEFINE_float('min_snr', None, 'Keep vectors with SNR above this (paper: 10 dB).')
flags.DEFINE_float('target_fraction', None, 'Size of D_T as a fraction of train (paper: '
                   '0.01).')
flags.DEFINE_boolean('warm_start', None, 'Keep training the scorer across rounds '
                     '(--nowarm_start: retrain it from scratch every round).')
flags.DEFINE_enum('budget_split', None, list(expansion.BUDGET_SPLITS), 'How DUSE splits its '
                  'budget over the rounds: even, or geometric (D_T grows by the same factor '
                  'every round).')
flags.DEFINE_multi_string('strategy_option', [], 'A baseline\'s option as '
                          'STRATEGY.OPTION=VALUE, e.g. forgetting.never_learned=0 or '
                          'grand.runs=5; repeat the flag for several. Added to the preset\'s.')
flags.DEFINE_string('workdir', None, 'Run directory; default runs/duse/<dataset>-<preset>-'
                    '<time>.')

FLAGS = flags.FLAGS
_PARSERS = {
    'rates': common.floats, 'seeds': common.ints, 'methods': tuple, 'eval_models': tuple,
    'max_per_cell': common.optional_int, 'synthetic_per_cell': common.optional_int,
}


OVERRIDABLE = ['dataset', 'data_dir', 'cache_dir', 'synthetic_per_cell', 'allow_synthetic',
               'drop_nonfinite',
               'rates', 'rounds', 'setting', 'model', 'eval_models', 'seeds', 'round_epochs',
               'final_epochs', 'max_per_cell', 'methods', 'batch_size', 'learning_rate',
               'min_snr', 'target_fraction', 'warm_start', 'budget_split']


def run_from_flags(kind: str, defaults: dict | None = None) -> None:
  """Builds the config from the preset, ``defaults`` and the flags set, and runs it.

  ``kind`` names the run directory's parent (runs/<kind>/...).
  """

  def body():
    overrides = {**(defaults or {}), **common.explicit_flags(OVERRIDABLE, _PARSERS)}
    # A preset that names its dataset (study) takes it unless --dataset is given.
    overrides.setdefault('dataset', duse.PRESETS[FLAGS.preset].get(
        'dataset', FLAGS.dataset))
    if FLAGS.strategy_option:
      overrides['strategy_options'] = common.strategy_options(
          FLAGS.strategy_option, duse.PRESETS[FLAGS.preset]['strategy_options'])
    config = duse.DuseConfig.from_preset(FLAGS.preset, **overrides)
    workdir = FLAGS.workdir or common.default_workdir(kind, config.dataset, config.preset)
    duse.run(config, workdir, log=common.log, write_report=FLAGS.report)

  common.run_reporting_errors(body)


def main(argv):
  del argv
  run_from_flags('duse')


if __name__ == '__main__':
  common.main(main)
