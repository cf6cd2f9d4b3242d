"""Name -> object registries with aliases and a one-line error for unknown names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from amrjax.errors import ConfigError

T = TypeVar('T')


class Registry(Generic[T]):
  """Objects under case-insensitive names; ``kind`` names them in error messages."""

  def __init__(self, kind: str):
    self.kind = kind
    self._items: dict[str, T] = {}
    self._aliases: dict[str, str] = {}

  @staticmethod
  def _key(name: str) -> str:
    return name.strip().lower()

  def register(self, name: str, item: T, aliases: Iterable[str] = ()) -> T:
    key = self._key(name)
    self._items[key] = item
    for alias in aliases:
      self._aliases[self._key(alias)] = key
    return item

  def names(self) -> tuple[str, ...]:
    return tuple(self._items)

  def canonical(self, name: str) -> str:
    """The registered name that ``name`` (or its alias) stands for."""
    key = self._key(name)
    key = self._aliases.get(key, key)
    if key not in self._items:
      raise ConfigError(f'unknown {self.kind} {name!r}; choose one of '
                        f'{", ".join(self.names())}')
    return key

  def get(self, name: str) -> T:
    return self._items[self.canonical(name)]
