"""Errors amrjax raises for bad input: one line that says what was wrong and what to do.

Drivers catch :class:`AmrjaxError` and print its message without a traceback.
"""


class AmrjaxError(Exception):
  """Base class of the errors a user can fix (bad names, bad files, bad settings)."""


class ConfigError(AmrjaxError, ValueError):
  """A setting is invalid: an unknown name, a rate out of range, a budget too large."""


class DataFormatError(AmrjaxError, ValueError):
  """A data file is missing, truncated, corrupt, unsafe or not in the expected layout."""
