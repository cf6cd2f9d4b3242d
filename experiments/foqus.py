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


def define_flags(flag_values: flags.FlagValues) -> tuple[str, ...]:
  """--dataset, --preset, --workdir, --tier_shares, --beta and one flag per CoresetConfig
  field, its help from the CoresetConfig docstring; returns the fields' flag names."""
  common.define_flag(flag_values, 'tier_shares', tuple[float, ...], 'FoQuS: share of the '
                     'budget drawn from the top, middle and bottom score tier (default '
                     '0.5,0.3,0.2, our choice).')
  flags.DEFINE_float('beta', None, 'FoQuS: weight of the mean cross-entropy in the quality '
                     'score (Eq. 7; paper 0.1).', flag_values=flag_values)
  return common.define_driver_flags(
      flag_values, foqus.CoresetConfig, foqus.PRESETS, dataset='rml2016.10a',
      dataset_help='rml2016.10a, sig2019 or rml2018.01a (FoQuS); any registered dataset works.',
      preset_help='quick: minutes on a laptop CPU; paper: FoQuS Sec. IV-B; study: the paper '
                  'cut to fit a 2-core CPU (docs/results.md).',
      skip=('strategy_options',))


def _overrides(f: flags.FlagValues, settings: tuple[str, ...]) -> dict:
  """The flags given, with --tier_shares and --beta as FoQuS's strategy options."""
  overrides = {**common.config_overrides(f, settings), 'dataset': f.dataset}
  foqus_options = {}
  if f.tier_shares is not None:
    foqus_options['shares'] = f.tier_shares
  if f.beta is not None:
    foqus_options['beta'] = f.beta
  if foqus_options:
    overrides['strategy_options'] = {'foqus': foqus_options}
  return overrides


DRIVER = common.Driver(define_flags, lambda f, settings, argv: common.run_config(
    f, 'foqus', foqus.CoresetConfig, foqus.run, lambda: _overrides(f, settings)))
main = DRIVER.main

if __name__ == '__main__':
  DRIVER.script()
