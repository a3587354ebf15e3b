"""Where a violation is, and how a reason shows it: JSON paths built only when a
reason is written, shortened in the middle, with keys the schema does not name
hidden (keys come from the document and may be personal data)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["PATH_ENDS", "Violation", "path_step", "render_path", "show"]


class Violation(Exception):
    """The document cannot be valid: where it was seen and why."""

    def __init__(self, start: int, end: int, reason: str) -> None:
        super().__init__(reason)
        self.start, self.end, self.reason = start, end, reason


#: A JSON path, built only when a reason is written: ``(parent, key or index)``, the
#: document itself is ``None``.  Each level costs one pair, never a copy of its parent.
_Path = tuple[Any, str | int] | None


class _NameOf:
    """Where a property name is checked: the object, shown with ``(property name)``."""

    __slots__ = ("path",)

    def __init__(self, path: _Path) -> None:
        self.path = path


_Where = _Path | _NameOf

#: A reason shows at most this many path segments at each end of a longer path.
PATH_ENDS = 10


def show(value: Any, limit: int = 60) -> str:
    """A value from the schema, as JSON, shortened (never a value from the document)."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def path_step(parent: str, part: str | int, known: frozenset[str] | None) -> str:
    """``parent`` extended by a key or index: ``$.items[3]``.  A key the schema does not
    name (``known``) is shown as ``[*]``: keys come from the document and may be personal."""
    if isinstance(part, int):
        return f"{parent}[{part}]"
    if known is not None and part not in known:
        return f"{parent}[*]"
    return f"{parent}.{part}" if part.isidentifier() else f"{parent}[{json.dumps(part)}]"


def render_path(steps: Sequence[str | int], known: frozenset[str] | None) -> str:
    """``$.items[3].price``, with the middle of a path longer than ``2 * PATH_ENDS``
    segments left out: ``$.a.b...(39,990 more)...x``."""
    if len(steps) <= 2 * PATH_ENDS:
        out = "$"
        for step in steps:
            out = path_step(out, step, known)
        return out
    head = render_path(steps[:PATH_ENDS], known)
    tail = "$"
    for step in steps[-PATH_ENDS:]:
        tail = path_step(tail, step, known)
    return f"{head}...({len(steps) - 2 * PATH_ENDS:,} more)...{tail[1:].removeprefix('.')}"


def _steps(path: _Path) -> list[str | int]:
    steps: list[str | int] = []
    while path is not None:
        path, step = path
        steps.append(step)
    steps.reverse()
    return steps
