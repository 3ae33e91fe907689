"""Old import paths kept alive: a module `__getattr__` that forwards moved names with a `FutureWarning`."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def moved_names(old_module: str, new_locations: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `old_module` whose names now live elsewhere.

    `new_locations` maps each old name to `"new.module:new_name"` (or `"new.module"` when the name is unchanged).
    Accessing an old name warns once per access site and returns the object from its new home.
    """

    def __getattr__(name: str) -> Any:
        if name not in new_locations:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        module_name, _, new_name = new_locations[name].partition(":")
        new_name = new_name or name
        warnings.warn(
            f"`{old_module}.{name}` moved to `{module_name}.{new_name}`; the old path will be removed in a future "
            "release",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module_name), new_name)

    return __getattr__


__all__ = ["moved_names"]
