"""A registry of named constructors: `"arml"`, `"cifar10"`, `"wrn28_2"` instead of if/else chains.

A registry may also read an entry-point group (`importlib.metadata`): plug-ins installed from other
packages are loaded the first time a name is looked up, and one that fails to load is an error naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that is not in a registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PluginError(ImportError):
    """An entry point of a registry's group that could not be loaded or is not of the registry's kind."""


class Registry(Generic[T]):
    """Maps names to objects (usually classes or factories) of one kind.

    `entry_points`: an entry-point group whose entries (`name = "module:object"`) are added on the first
    lookup; `check(name, obj)` may refuse an object (raise TypeError or ValueError) before it is added.
    """

    def __init__(self, kind: str, *, entry_points: str | None = None,
                 check: Callable[[str, T], None] | None = None) -> None:
        self.kind = kind
        self.group = entry_points
        self._check = check
        self._items: dict[str, T] = {}
        self._plugins_loaded = entry_points is None

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if self._items.get(name) is obj:
                return obj   # a plug-in module that registers itself and is also an entry point
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if self._check is not None:
                self._check(name, obj)
            self._items[name] = obj
            return obj

        return add

    def load_plugins(self) -> None:
        """Adds every entry point of the group (once); a failing one raises PluginError naming it."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for entry in metadata.entry_points(group=self.group):
            where = f"entry point {entry.name!r} = {entry.value!r} of group {self.group!r}"
            try:
                obj = entry.load()
            except Exception as error:
                raise PluginError(f"{self.kind} plug-in {where} failed to load: "
                                  f"{type(error).__name__}: {error}") from error
            try:
                self.register(entry.name)(obj)
            except (TypeError, ValueError) as error:
                raise PluginError(f"{self.kind} plug-in {where}: {error}") from error

    def get(self, name: str) -> T:
        if name not in self._items:
            self.load_plugins()
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items))
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        if name not in self._items:
            self.load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
