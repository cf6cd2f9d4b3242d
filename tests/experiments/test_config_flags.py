"""Every setting is defined once: each driver's flags are made from the fields of its config
dataclass (``experiments.common.define_config_flags``), their help from the ``Attributes:``
section of the dataclass docstring.

- Every field of each config, but the few skipped on purpose, is a flag of its driver whose
  help text is the field's docstring entry; the shared data flags are listed under
  ``experiments.common`` (``--helpfull``), the driver's own under the driver (``--help``).
- Drivers define their flags when run, not when imported: two drivers run in one process.
- The docstring parser reads one entry per ``name: text`` line (or ``a, b: text``) with its
  continuation lines; a field with no entry, or a skipped name that is no field, is refused.
"""

import dataclasses
import importlib

import pytest
from absl import flags

from amrjax.experiments import clst, cwloss, duse, foqus
from experiments import common
from tests.helpers import run_driver, run_script

CONFIGS = {'duse': duse.DuseConfig, 'foqus': foqus.CoresetConfig,
           'cwloss': cwloss.CwLossConfig, 'clst': clst.ClstConfig}
# The fields that are no flag of their driver: --dataset is written by hand in each driver
# (it has a default), --preset too; strategy_options is a nested dict (duse's
# --strategy_option, foqus's --tier_shares and --beta write it).
SKIPPED = {
    'duse': {'dataset', 'preset', 'strategy_options'},
    'foqus': {'dataset', 'preset', 'strategy_options'},
    'cwloss': {'dataset', 'preset'},
    'clst': {'dataset', 'preset'},
}


def _flag_helps(driver: str) -> tuple[dict[str, str], dict[str, str]]:
  """``({flag: help} of the driver's own flags (its --help), {flag: help} of every flag
  (its --helpfull))``, defined on a fresh ``FlagValues`` as ``main`` does."""
  flag_values = flags.FlagValues()
  importlib.import_module(f'experiments.{driver}').define_flags(flag_values)
  shared = {f.name: f.help for f in flag_values.flags_by_module_dict()['experiments.common']}
  own = {name: flag_values[name].help for name in flag_values if name not in shared}
  return own, {**shared, **own}


@pytest.mark.parametrize('driver', sorted(CONFIGS))
def test_every_config_field_is_a_flag_with_its_docstring_help(driver):
  config = CONFIGS[driver]
  own, every = _flag_helps(driver)
  docs = common.attribute_docs(config)
  fields = {f.name for f in dataclasses.fields(config)}
  assert SKIPPED[driver] <= fields
  for name in sorted(fields - SKIPPED[driver]):
    if name in common.SHARED_FLAGS:
      assert name not in own and every.get(name, '').strip(), f'--{name} has no help'
      continue
    assert own.get(name, '').strip(), f'--{name} is not among the flags of {driver}'
    assert own[name] == common.flag_help(docs[name]), (name, own[name])
  for name in ('dataset', 'preset', 'workdir'):  # written by hand, still there
    assert own[name].strip()


def test_the_real_help_lists_the_drivers_flags_and_helpfull_the_shared_ones():
  """``python -m experiments.duse --help`` for real, as absl prints it."""
  short = run_script('experiments.duse', '--help').stdout
  full = run_script('experiments.duse', '--helpfull').stdout
  rates = common.flag_help(common.attribute_docs(duse.DuseConfig)['rates'])
  assert f'--rates: {rates}' in ' '.join(short.split())
  assert '--data_dir' not in short and '--data_dir' in full


def test_two_drivers_share_a_process_and_a_driver_runs_twice():
  """Flags are defined per call (``common.Driver.main``): importing every driver defines
  nothing global, and runs of two drivers in one process do not see each other's flags."""
  for name in ('duse', 'crossarch', 'foqus', 'cwloss', 'clst', 'duse_study', 'foqus_study',
               'report'):
    importlib.import_module(f'experiments.{name}')
  assert not [m for m in flags.FLAGS.flags_by_module_dict() if m.startswith('experiments')]
  for driver in ('duse', 'foqus', 'duse'):
    proc = run_driver(driver, '--preset=nope')
    assert proc.returncode == 2 and 'flag --preset=nope' in proc.stderr
  with pytest.raises(ValueError, match='program name'):
    importlib.import_module('experiments.duse').main(['--rates=0.1'])


def test_attribute_docs_reads_entries_and_continuations():

  class Settings:
    """Settings.

    Attributes:
      rates: expansion rates
        as fractions (``0.04``).
      batch_size, learning_rate: Adam settings.

    Returns:
      nothing: not an attribute.
    """

  assert common.attribute_docs(Settings) == {
      'rates': 'expansion rates as fractions (``0.04``).',
      'batch_size': 'Adam settings.', 'learning_rate': 'Adam settings.'}
  assert common.flag_help('expansion rates as fractions (``0.04``)') == (
      'Expansion rates as fractions (0.04).')


def test_a_field_without_help_or_an_unknown_skip_is_refused():

  @dataclasses.dataclass
  class Settings:
    """Settings.

    Attributes:
      rates: expansion rates.
    """
    undocumented_setting: int = 0
    rates: tuple[float, ...] = ()

  with pytest.raises(ValueError, match='undocumented_setting has no entry'):
    common.define_config_flags(flags.FlagValues(), Settings, skip=())
  with pytest.raises(ValueError, match='no field.* not_a_field'):
    common.define_config_flags(flags.FlagValues(), Settings, skip=('not_a_field',))
