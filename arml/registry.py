"""A registry of named constructors: `"arml"`, `"cifar10"`, `"wrn28_2"` instead of if/else chains.

A registry may also read an entry-point group (`importlib.metadata`): plug-ins installed from other
packages are loaded the first time a name is looked up, and one that fails to load is an error naming it.
"""

from __future__ import annotations

import importlib
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
        self._lazy: dict[str, str] = {}        # name -> "module:attribute", imported on first use
        self._plugins_loaded = entry_points is None

    def register_lazy(self, name: str, target: str) -> None:
        """`name` for the object at `target` ("package.module:attribute"), imported on the first `get(name)`:
        listing and checking names never imports what they name (a registry of torch classes stays cheap)."""
        if name in self._items or name in self._lazy:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._lazy[name] = target

    def _resolve(self, name: str) -> None:
        target = self._lazy.pop(name)
        module_name, _, attribute = target.partition(":")
        self.register(name)(getattr(importlib.import_module(module_name), attribute))

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if self._items.get(name) is obj:
                return obj   # a plug-in module that registers itself and is also an entry point
            if name in self._items or name in self._lazy:
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
        if name in self._lazy:
            self._resolve(name)
        if name not in self._items:
            self.load_plugins()
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(self.names())
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted({*self._items, *self._lazy})

    def __contains__(self, name: object) -> bool:
        if name not in self._items and name not in self._lazy:
            self.load_plugins()
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
