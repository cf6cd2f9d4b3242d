r"""FoQuS coreset selection (forgetting, persistent error, quality) against 10 baselines.

  python -m experiments.foqus --dataset=rml2016.10a                  # quick preset
  python -m experiments.foqus --dataset=sig2019 --preset=paper       # FoQuS Table I
  python -m experiments.foqus --ablation --rates=0.01                # FoQuS Table V
  python -m experiments.foqus --selection_models=cnn1d --eval_models=cnn2d,signet

Flags left unset take the preset's value (``amrjax.experiments.foqus.PRESETS``).
"""

from __future__ import annotations

from absl import flags

from amrjax.experiments import foqus
from experiments import common

flags.DEFINE_string('dataset', 'rml2016.10a', 'rml2016.10a, sig2019 or rml2018.01a (FoQuS); '
                    'any registered dataset works.')
flags.DEFINE_enum('preset', 'quick', list(foqus.PRESETS),
                  'quick: minutes on a laptop CPU; paper: FoQuS Sec. IV-B; study: the paper cut '
                  'to fit a 2-core CPU (docs/results.md).')
flags.DEFINE_list('rates', None, 'Coreset rates as fractions (paper: 0.01,0.05,0.1,0.2,0.3).')
flags.DEFINE_list('seeds', None, 'Seeds (paper: 3 repeats).')
flags.DEFINE_list('selection_models', None, 'Models that select (paper: cnn1d,cnn2d).')
flags.DEFINE_list('eval_models', None, 'Models that train on the coresets; default: each '
                  'selection model evaluates its own (A -> A). Given, every pair A -> B.')
flags.DEFINE_list('methods', None, 'Methods (default: the 10 baselines and foqus): uniform, '
                  'cal, cd, forgetting, grand, herding, kcenter, least_confidence, entropy, '
                  'margin, foqus, el2n, deepfool, glister, foqus:<terms> (e.g. '
                  'foqus:forgetting+quality), full (the whole training split).')
flags.DEFINE_boolean('ablation', None, 'FoQuS Table V: every single score term, every pair '
                     'and all three, instead of --methods.')
flags.DEFINE_integer('selection_epochs', None, 'T: epochs the selection model trains on the '
                     'full training split while its dynamics are recorded.')
flags.DEFINE_integer('eval_epochs', None, 'Epochs each coreset trains an evaluation model '
                     '(paper: 50).')
flags.DEFINE_integer('batch_size', None, 'Training batch size.')
flags.DEFINE_float('learning_rate', None, 'Adam learning rate.')
flags.DEFINE_enum('eval_schedule', None, ['cosine', 'constant'], 'Learning-rate schedule of '
                  'the evaluation trainings (default cosine decay to 0, as DeepCore).')
flags.DEFINE_string('min_snr', None, "Keep vectors with SNR above this many dB ('none' keeps "
                    "all; default 10, the high-SNR data of Sec. IV-A).")
flags.DEFINE_string('max_per_cell', None, "Vectors kept per (class, SNR) cell ('all' keeps "
                    "every one).")
flags.DEFINE_boolean('class_balanced', None, 'Equal class counts in every coreset (paper).')
flags.DEFINE_list('tier_shares', None, 'FoQuS: share of the budget drawn from the top, '
                  'middle and bottom score tier (default 0.5,0.3,0.2, our choice).')
flags.DEFINE_float('beta', None, 'FoQuS: weight of the mean cross-entropy in the quality '
                   'score (Eq. 7; paper 0.1).')
flags.DEFINE_string('workdir', None, 'Run directory; default runs/foqus/<dataset>-<preset>-'
                    '<time>.')

FLAGS = flags.FLAGS
_PARSERS = {
    'rates': common.floats, 'seeds': common.ints, 'selection_models': tuple,
    'eval_models': tuple, 'methods': tuple, 'max_per_cell': common.optional_int,
    'synthetic_per_cell': common.optional_int, 'min_snr': common.optional_float,
}
OVERRIDABLE = ['dataset', 'data_dir', 'cache_dir', 'synthetic_per_cell', 'allow_synthetic',
               'drop_nonfinite',
               'rates', 'seeds', 'selection_models', 'eval_models', 'methods', 'ablation',
               'selection_epochs', 'eval_epochs', 'batch_size', 'learning_rate',
               'eval_schedule', 'min_snr',
               'max_per_cell', 'class_balanced']


def main(argv):
  del argv

  def body():
    overrides = common.explicit_flags(OVERRIDABLE, _PARSERS)
    overrides.setdefault('dataset', FLAGS.dataset)
    foqus_options = {}
    if FLAGS.tier_shares is not None:
      foqus_options['shares'] = common.floats(FLAGS.tier_shares)
    if FLAGS.beta is not None:
      foqus_options['beta'] = FLAGS.beta
    if foqus_options:
      overrides['strategy_options'] = {'foqus': foqus_options}
    config = foqus.CoresetConfig.from_preset(FLAGS.preset, **overrides)
    workdir = FLAGS.workdir or common.default_workdir('foqus', config.dataset, config.preset)
    foqus.run(config, workdir, log=common.log, write_report=FLAGS.report)

  common.run_reporting_errors(body)


if __name__ == '__main__':
  common.main(main)
