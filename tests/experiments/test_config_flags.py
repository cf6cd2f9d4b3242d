"""Every setting is defined once (issue 20): each driver's flags are made from the fields of
its config dataclass (``experiments.common.define_config_flags``), their help from the
``Attributes:`` section of the dataclass docstring.

- Every field of each config, but the few skipped on purpose, is a flag of its driver whose
  ``--help`` text is the field's docstring entry.
- The docstring parser reads one entry per ``name: text`` line (or ``a, b: text``) with its
  continuation lines; a field with no entry, or a skipped name that is no field, is refused.
"""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from amrjax.experiments import clst, cwloss, duse, foqus
from experiments import common

REPO = Path(__file__).resolve().parents[2]

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


def _flag_helps(driver: str, *args: str) -> dict[str, str]:
  """``{flag: help}`` as ``python -m experiments.<driver> --help`` prints them (whitespace
  made single spaces)."""
  proc = subprocess.run([sys.executable, '-m', f'experiments.{driver}', *args], cwd=REPO,
                        env={**os.environ, 'JAX_PLATFORMS': 'cpu'}, capture_output=True,
                        text=True, timeout=120)
  helps, name = {}, None
  for line in proc.stdout.splitlines():
    match = re.match(r'  --(?:\[no\])?(\w+): ?(.*)', line)
    if match:
      name = match.group(1)
      helps[name] = match.group(2)
    elif name and line.startswith('    '):
      helps[name] += ' ' + line.strip()
    else:
      name = None
  assert helps, proc.stdout + proc.stderr
  return {k: ' '.join(v.split()) for k, v in helps.items()}


@pytest.mark.parametrize('driver', sorted(CONFIGS))
def test_every_config_field_is_a_flag_with_its_docstring_help(driver):
  config = CONFIGS[driver]
  own = _flag_helps(driver, '--help')  # the driver's own flags: what --help lists
  every = _flag_helps(driver, '--helpfull')  # with the shared data flags
  docs = common.attribute_docs(config)
  fields = {f.name for f in dataclasses.fields(config)}
  assert SKIPPED[driver] <= fields
  for name in sorted(fields - SKIPPED[driver]):
    if name in common.SHARED_FLAGS:
      assert every.get(name, '').strip(), f'--{name} has no help'
      continue
    assert own.get(name, '').strip(), f'--{name} is not in the --help of {driver}'
    assert own[name].startswith(common.flag_help(docs[name])), (name, own[name])
  for name in ('dataset', 'preset', 'workdir'):  # written by hand, still there
    assert own[name].strip()


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
    common.define_config_flags(Settings, skip=())
  with pytest.raises(ValueError, match='no field.* not_a_field'):
    common.define_config_flags(Settings, skip=('not_a_field',))
