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

flags.DEFINE_string('dataset', 'rml2016.10a', 'rml2016.10a (AFNet), rml2016.10b, '
                    'rml2016.04c, rml2018.01a or sig2019.')
flags.DEFINE_enum('preset', 'quick', list(cwloss.PRESETS),
                  'quick: minutes on a laptop CPU; paper: AFNet Sec. IV; study: the paper cut '
                  'to fit a 2-core CPU (docs/results.md).')
flags.DEFINE_list('tables', None, 'Which tables to run: table1 (k sweep on the weight '
                  'model), table2 (other models with its weights). Default both.')
flags.DEFINE_list('ks', None, 'k values of the top-k entropy for Table I (paper: 2,3,4).')
flags.DEFINE_integer('table2_k', None, 'k of the weights Table II trains with (paper: 3).')
flags.DEFINE_string('weight_model', None, 'Model whose stage one computes the weights '
                    '(paper: afnet).')
flags.DEFINE_list('models', None, 'Table II models (paper: resnet,cldnn,lstm2,icamcnet).')
flags.DEFINE_list('seeds', None, 'Seeds; each trains every model afresh.')
flags.DEFINE_integer('epochs', None, 'Most epochs per training (early stopping may stop '
                     'sooner).')
flags.DEFINE_string('patience', None, "Early-stopping patience in epochs (paper: 15); "
                    "'none' trains every epoch.")
flags.DEFINE_float('validation_fraction', None, 'Share of every training (class, SNR) cell '
                   'held out for early stopping (not given by the paper; default 0.1).')
flags.DEFINE_string('max_per_cell', None, "Vectors kept per (class, SNR) cell before "
                    "splitting ('all' keeps every one).")
flags.DEFINE_integer('batch_size', None, 'Training batch size (paper: 512).')
flags.DEFINE_float('learning_rate', None, 'Adam learning rate (paper: 1e-3).')
flags.DEFINE_boolean('warm_start', None, 'Stage two continues from the stage-one model '
                     'instead of retraining from the same initialisation.')
flags.DEFINE_string('workdir', None, 'Run directory; default runs/cwloss/<dataset>-<preset>-'
                    '<time>.')

FLAGS = flags.FLAGS
_PARSERS = {
    'ks': common.ints, 'seeds': common.ints, 'tables': tuple, 'models': tuple,
    'patience': common.optional_int, 'max_per_cell': common.optional_int,
    'synthetic_per_cell': common.optional_int,
}
OVERRIDABLE = ['dataset', 'data_dir', 'cache_dir', 'synthetic_per_cell', 'allow_synthetic',
               'drop_nonfinite',
               'tables', 'ks', 'table2_k', 'weight_model', 'models', 'seeds', 'epochs',
               'patience', 'validation_fraction', 'max_per_cell', 'batch_size',
               'learning_rate', 'warm_start']


def main(argv):
  del argv

  def body():
    overrides = common.explicit_flags(OVERRIDABLE, _PARSERS)
    overrides.setdefault('dataset', FLAGS.dataset)
    config = cwloss.CwLossConfig.from_preset(FLAGS.preset, **overrides)
    workdir = FLAGS.workdir or common.default_workdir('cwloss', config.dataset, config.preset)
    cwloss.run(config, workdir, log=common.log, write_report=FLAGS.report)

  common.run_reporting_errors(body)


if __name__ == '__main__':
  common.main(main)
