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

common.define_flag('tier_shares', tuple[float, ...], 'FoQuS: share of the budget drawn '
                   'from the top, middle and bottom score tier (default 0.5,0.3,0.2, our '
                   'choice).')
flags.DEFINE_float('beta', None, 'FoQuS: weight of the mean cross-entropy in the quality '
                   'score (Eq. 7; paper 0.1).')
# --dataset, --preset, --workdir, and one flag per CoresetConfig field, its help from the
# CoresetConfig docstring; strategy_options comes from --tier_shares and --beta.
SETTINGS = common.define_driver_flags(
    foqus.CoresetConfig, foqus.PRESETS, dataset='rml2016.10a',
    dataset_help='rml2016.10a, sig2019 or rml2018.01a (FoQuS); any registered dataset works.',
    preset_help='quick: minutes on a laptop CPU; paper: FoQuS Sec. IV-B; study: the paper cut '
                'to fit a 2-core CPU (docs/results.md).',
    skip=('strategy_options',))
FLAGS = flags.FLAGS


def _overrides() -> dict:
  """The flags given, with --tier_shares and --beta as FoQuS's strategy options."""
  overrides = {**common.config_overrides(SETTINGS), 'dataset': FLAGS.dataset}
  foqus_options = {}
  if FLAGS.tier_shares is not None:
    foqus_options['shares'] = FLAGS.tier_shares
  if FLAGS.beta is not None:
    foqus_options['beta'] = FLAGS.beta
  if foqus_options:
    overrides['strategy_options'] = {'foqus': foqus_options}
  return overrides


def main(argv):
  del argv
  common.run_config('foqus', foqus.CoresetConfig, foqus.run, _overrides)


if __name__ == '__main__':
  common.main(main)
