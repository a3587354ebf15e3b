"""The state a streaming schema check keeps: open containers, the branches of
``anyOf``/``oneOf`` still alive, violations pending on a member; and the small
value rules it shares with jsonschema (JSON equality, ``multipleOf``)."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from contextvars import ContextVar
from fractions import Fraction
from typing import Any

import regex

from ..._common.deadline import Deadline
from .paths import _Path, _Where

#: The deadline of the schema check's work in this context (its session's, set while
#: the session works): every jsonschema keyword looks at it (see ``dialect.extended``),
#: and :func:`search` bounds the ``regex`` engine by it.
DEADLINE: ContextVar[Deadline | None] = ContextVar("schema_deadline", default=None)


class _Group:
    """An ``anyOf``/``oneOf`` being followed: which branches are still alive."""

    __slots__ = ("alive", "born", "guard", "keyword", "kids", "ok_at", "path")

    def __init__(self, n: int, guard: _Guard | None, keyword: str, path: _Path, born: int) -> None:
        self.alive = [True] * n
        #: The member serial when the group was made (see JsonScan._violate).
        self.born = born
        self.guard = guard
        self.keyword = keyword
        self.path = path
        self.kids = [False] * n  # whether a group was made inside each branch
        self.ok_at = -1  # the epoch at which the branches above were last seen alive
        if guard is not None:
            guard[0].kids[guard[1]] = True


_Guard = tuple[_Group, int]
# A schema that applies to the current value, and the branch it belongs to.
_Ctx = tuple[Mapping[str, Any] | bool, "_Guard | None"]


def _equal(a: Any, b: Any) -> bool:
    """JSON equality as jsonschema sees it: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b)


class _Frame:
    __slots__ = (
        "comma",
        "comma_open",
        "count",
        "ctxs",
        "depth",
        "drop",
        "key",
        "keys",
        "kind",
        "member",
        "path",
        "pending",
        "pending_drop",
        "present",
        "required",
        "start",
        "value_start",
        "watch",
    )

    def __init__(self, kind: str, ctxs: list[_Ctx], path: _Path, start: int, depth: int) -> None:
        self.kind = kind
        self.ctxs = ctxs
        self.path = path
        self.start = start
        self.depth = depth  # (the number of frames around it)
        self.count = 0  # elements, or distinct property names kept
        self.keys: set[str] | None = None  # the property names so far (objects)
        # The member being read (objects): its serial (-1: none, a name is being
        # read), its name, and where its value starts.
        self.member = -1
        self.key = ""
        self.value_start = start
        # Violations in the values of members, pending until the object closes
        # (by name, in the order of their values).
        self.pending: OrderedDict[str, _Held] | None = None
        self.comma = -1  # the last comma between members
        self.comma_open = False  # a repair may still remove it
        self.drop = -1  # start of a member being dropped (repair), or -1
        self.pending_drop: tuple[int, int] | None = None  # a dropped first member
        # Required keys still missing, per context (bounded by the schema).
        self.required: list[set[str]] = [
            set(s.get("required", ())) if type(s) is dict or isinstance(s, Mapping) else set()
            for s, _ in ctxs
        ]
        # Keys that ``dependentRequired`` names, and those of them present so far.
        self.watch: set[str] = set()
        self.present: set[str] = set()
        if kind == "object":
            for s, _ in ctxs:
                for name, needed in _dependent_required(s).items():
                    self.watch.add(name)
                    self.watch.update(needed)


class _Held:
    """Violations pending on one member: dropped if its name comes again."""

    __slots__ = ("entries", "start")

    def __init__(self, start: int) -> None:
        self.start = start  # where the member's value starts
        # (guard, start, end, where, what) by the branch they kill (None: the document).
        self.entries: dict[tuple[int, int] | None, tuple[_Guard | None, int, int, _Where, str]] = {}


def _dependent_required(s: Any) -> Mapping[str, list[str]]:
    """A schema's ``dependentRequired``, if it is well formed (else nothing)."""
    if not (type(s) is dict or isinstance(s, Mapping)):
        return {}
    deps = s.get("dependentRequired")
    if not isinstance(deps, Mapping):
        return {}
    return {
        k: v for k, v in deps.items() if isinstance(v, list) and all(isinstance(x, str) for x in v)
    }


def not_multiple(value: float, step: float) -> bool:
    """``multipleOf``: whether ``value`` fails it, as jsonschema decides, and exactly
    where jsonschema cannot (an integer too large for a float, which it fails on).

    A float step divides in floats (jsonschema's rule, so ``0.3`` is not a multiple
    of ``0.1``), falling back to exact fractions of the float when the quotient
    overflows (jsonschema's fallback).  An integer too large to divide by a float is
    divided exactly by the step as the schema writes it (``0.1`` is 1/10).

    :raises ArithmeticError: if it cannot be decided (not reached for JSON numbers).
    """
    if isinstance(step, float):
        try:
            quotient = value / step
        except OverflowError:  # (jsonschema fails here)
            return (Fraction(value) / Fraction(repr(step))).denominator != 1
        try:
            return int(quotient) != quotient
        except OverflowError:
            return (Fraction(value) / Fraction(step)).denominator != 1
    try:
        return bool(value % step)
    except OverflowError:  # a float by an integer too large for a float (jsonschema fails)
        return Fraction(value) % step != 0


def _not_multiple(value: float, step: float) -> bool | None:
    """:func:`not_multiple`, or None when it cannot say (left to the final validation)."""
    try:
        return not_multiple(value, step)
    except (ArithmeticError, ValueError):
        return None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text``: with Python's ``re``, as
    jsonschema reads it, and, for a pattern ``re`` cannot read (``\\p{Letter}``,
    ``\\p{Script=Greek}``), with the ``regex`` package.

    A pattern ``re`` reads passed the load-time ReDoS analysis; one only ``regex``
    reads is not analysed, and its search is bounded by :data:`DEADLINE`.

    :raises ValueError: if neither reads it.
    :raises TimeoutError: past the deadline.
    """
    try:
        return re.search(pattern, text) is not None
    except re.error:
        pass
    deadline = DEADLINE.get()
    timeout = None if deadline is None else deadline.cpu_left()
    try:
        return regex.search(pattern, text, timeout=timeout) is not None
    except regex.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
