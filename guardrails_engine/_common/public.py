"""Public names report the package they are imported from, not the private module
they are defined in (as anyio's do): a reader, a traceback and ``help()`` then
show where to import them from."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["report_as"]


def report_as(module: str, namespace: Mapping[str, Any], names: Iterable[str]) -> None:
    """Set ``__module__`` to ``module`` on the classes and functions ``names`` name.

    A class's own annotations are resolved first, in the module that wrote them,
    so that ``typing.get_type_hints`` still works (it would look them up in
    ``module``, which does not hold the names they use).
    """
    for name in names:
        obj = namespace[name]
        if isinstance(obj, type):
            own = inspect.get_annotations(obj)
            if own:
                hints = typing.get_type_hints(obj, include_extras=True)
                obj.__annotations__ = {key: hints[key] for key in own}
        elif not callable(obj) or not hasattr(obj, "__code__"):
            continue  # a type alias, a constant
        obj.__module__ = module
