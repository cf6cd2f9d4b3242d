r"""ClST and signal knowledge distillation (Hou et al. 2024): teacher, students alone and
distilled, trained on 3 % and 5 % of the data.

  python -m experiments.clst --dataset=rml2016.10a                  # quick preset
  python -m experiments.clst --dataset=rml2016.10a --preset=paper

Flags left unset take the preset's value (``amrjax.experiments.clst.PRESETS``).
"""

from __future__ import annotations

from absl import flags

from amrjax.experiments import clst
from experiments import common

flags.DEFINE_string('dataset', 'rml2016.10a', 'rml2016.10a, rml2016.10b, rml2016.04c, '
                    'rml2018.01a or sig2019.')
flags.DEFINE_enum('preset', 'quick', list(clst.PRESETS),
                  'quick: minutes on a laptop CPU; study: the paper cut to fit a 2-core CPU '
                  '(docs/results.md); paper: ClST Sec. IV (3 % and 5 %, Adam '
                  '0.01, batch 256, cosine decay, 100 epochs).')
flags.DEFINE_list('fractions', None, 'Training fractions of the dataset, drawn per (class, '
                  'SNR) cell (paper: 0.03,0.05; quick: 0.05).')
flags.DEFINE_string('teacher', None, 'Teacher model (default clst).')
flags.DEFINE_list('students', None, 'Student models (default kd_cnn,kd_mobilenet).')
flags.DEFINE_list('seeds', None, 'Seeds; each draws its own split and trains every model.')
flags.DEFINE_integer('epochs', None, 'Student epochs, alone and distilled (paper: 100; '
                     'quick: 10).')
flags.DEFINE_integer('teacher_epochs', None, 'ClST teacher epochs (paper: 100; quick: 10).')
flags.DEFINE_integer('batch_size', None, 'Training batch size (paper: 256; quick: 64).')
flags.DEFINE_float('learning_rate', None, 'Adam peak learning rate, cosine-decayed to 0 '
                   '(paper: 0.01; quick: 0.0025, the paper\'s rate scaled to batch 64).')
flags.DEFINE_float('hard_weight', None, 'SKD weight of the cross-entropy with the labels '
                   '(default 0.1; not given in the paper).')
flags.DEFINE_float('soft_weight', None, 'SKD weight of the T^2-scaled KL to the teacher '
                   '(default 0.9; not given in the paper).')
flags.DEFINE_float('temperature', None, 'SKD softmax temperature T (default 4; not given in '
                   'the paper).')
flags.DEFINE_list('feature_weights', None, 'SKD feature-term weights c; each student is '
                  'distilled once per value (0: two-term Hinton KD; quick: 0; paper and '
                  'study: 0,1). Not given in the paper.')
flags.DEFINE_string('eval_per_cell', None, "At most this many validation and test vectors "
                    "per (class, SNR) cell ('all' keeps the whole remainder; quick: 5).")
flags.DEFINE_boolean('validate', None, 'Evaluate the validation set after every epoch '
                     '(paper preset: yes; quick: no).')
flags.DEFINE_integer('inference_batch_size', None, 'Batch size of the per-sample inference '
                     'timing (default 256).')
flags.DEFINE_integer('inference_repeats', None, 'Timed calls of the inference timing; the '
                     'median is reported (quick: 5, paper: 10).')
flags.DEFINE_float('min_snr', None, 'Keep vectors with SNR above this (default: all SNRs).')
flags.DEFINE_string('workdir', None, 'Run directory; default runs/clst/<dataset>-<preset>-'
                    '<time>.')

FLAGS = flags.FLAGS
_PARSERS = {
    'fractions': common.floats, 'seeds': common.ints, 'students': tuple,
    'feature_weights': common.floats,
    'synthetic_per_cell': common.optional_int, 'eval_per_cell': common.optional_int,
}
OVERRIDABLE = ['dataset', 'data_dir', 'cache_dir', 'synthetic_per_cell', 'allow_synthetic',
               'drop_nonfinite',
               'fractions', 'teacher', 'students', 'seeds', 'epochs', 'teacher_epochs',
               'batch_size', 'learning_rate', 'hard_weight', 'soft_weight', 'temperature',
               'feature_weights', 'eval_per_cell', 'validate', 'min_snr', 'inference_batch_size',
               'inference_repeats']


def main(argv):
  del argv

  def body():
    overrides = common.explicit_flags(OVERRIDABLE, _PARSERS)
    overrides.setdefault('dataset', FLAGS.dataset)
    config = clst.ClstConfig.from_preset(FLAGS.preset, **overrides)
    workdir = FLAGS.workdir or common.default_workdir('clst', config.dataset, config.preset)
    clst.run(config, workdir, log=common.log, write_report=FLAGS.report)

  common.run_reporting_errors(body)


if __name__ == '__main__':
  common.main(main)
