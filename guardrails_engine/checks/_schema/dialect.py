"""Where the schema check reads JSON Schema beyond jsonschema, and nowhere else.

* ``pattern``: a pattern Python's ``re`` cannot read but the ``regex`` package can
  (``\\p{Letter}``, ``\\p{Script=Greek}``: Unicode properties, as pydantic's Rust
  regex and ECMA-262 with the ``u`` flag read them) is accepted and matched with
  ``regex``; every pattern ``re`` reads is matched with ``re``, as jsonschema does.
  Such a pattern as a key of ``patternProperties`` is refused at load, naming it:
  jsonschema's ``additionalProperties`` and ``unevaluatedProperties`` would read
  it with ``re``.
* ``multipleOf``: an integer too large for a float (where jsonschema raises) is
  decided exactly (see :func:`.state.not_multiple`); elsewhere jsonschema's rule.
* ``$ref`` to an official metaschema resolves offline to jsonschema's bundled copy
  (see ``METASCHEMAS`` in :mod:`.check`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import regex
from jsonschema import FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator

from ..._scanning.redos import backtracking
from .state import DEADLINE, not_multiple, search

__all__ = ["backtracking_patterns", "check_schema", "extended", "unreadable_pattern_keys"]


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield ValidationError(f"does not match {pattern!r}")


def _multiple_of(
    validator: Any, step: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "number") and not_multiple(instance, step):
        yield ValidationError(f"is not a multiple of {step}")


_Keyword = Callable[..., Iterator[ValidationError]]


def _timed(keyword: _Keyword) -> _Keyword:
    """``keyword``, which first looks at the check's deadline (:data:`.state.DEADLINE`):
    a schema whose ``allOf``/``anyOf``/``$ref``s fan out (each branch read again at
    every level) stops at the check's time, as the check's other work does."""

    def timed(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        deadline = DEADLINE.get()
        if deadline is not None:
            deadline.check()
        return keyword(validator, value, instance, schema)

    return timed


def extended(cls: type[Validator]) -> type[Validator]:
    """``cls`` with ``pattern`` and ``multipleOf`` read as this module says, and every
    keyword bounded by the check's deadline."""
    keywords: dict[str, _Keyword] = dict(cls.VALIDATORS)
    keywords["pattern"] = _pattern
    if "multipleOf" in cls.VALIDATORS:
        keywords["multipleOf"] = _multiple_of
    timed = {name: _timed(keyword) for name, keyword in keywords.items()}
    return validators.extend(cls, timed)  # type: ignore[no-any-return,no-untyped-call]


def _is_regex(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    try:
        re.compile(instance)
    except re.error:
        regex.compile(instance)  # (raises regex.error: not a pattern in either)
    return True


def _schema_checker(cls: type[Validator]) -> FormatChecker:
    """The metaschema's format checker, with ``regex`` reading what ``pattern`` reads."""
    base = cls.FORMAT_CHECKER
    checker = FormatChecker(formats=())
    checker.checkers = dict(base.checkers)
    checker.checks("regex", raises=(re.error, regex.error))(_is_regex)
    return checker


def check_schema(schema: Any) -> None:
    """:raises jsonschema.exceptions.SchemaError: if ``schema`` is not a valid JSON Schema
    (with patterns read as :func:`extended` reads them)."""
    cls = validators.validator_for(schema)
    cls.check_schema(schema, format_checker=_schema_checker(cls))  # type: ignore[call-arg]


#: Keywords whose values are data, not schemas: a ``pattern`` key in them is not one.
_DATA = frozenset({"const", "enum", "default", "examples"})


def _schemas(schema: Any) -> Iterator[tuple[list[str | int], dict[str, Any]]]:
    """Every mapping of ``schema`` that may be a schema (not inside data): (where, it)."""
    stack: list[tuple[list[str | int], Any]] = [([], schema)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            yield where, node
            stack.extend(([*where, k], v) for k, v in node.items() if k not in _DATA)
        elif isinstance(node, list):
            stack.extend(([*where, i], v) for i, v in enumerate(node))


def unreadable_pattern_keys(schema: Any) -> Iterator[tuple[list[str | int], str]]:
    """The keys of ``patternProperties`` that Python's ``re`` cannot read: (where, key)."""
    for where, node in _schemas(schema):
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict):
            for key in patterns:
                try:
                    re.compile(key)
                except re.error:
                    yield [*where, "patternProperties"], key


def backtracking_patterns(schema: Any) -> Iterator[tuple[list[str | int], str, str]]:
    """The ``pattern`` values and ``patternProperties`` keys that may backtrack
    catastrophically, as the policy's own patterns are refused: (where, pattern, why).
    (jsonschema matches them with Python's ``re``, which no deadline interrupts.)"""
    for where, node in _schemas(schema):
        pattern = node.get("pattern")
        candidates = [("pattern", pattern)] if isinstance(pattern, str) else []
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict):
            candidates += [("patternProperties", k) for k in patterns if isinstance(k, str)]
        for keyword, candidate in candidates:
            why = backtracking(candidate)
            if why is not None:
                yield [*where, keyword], candidate, why


__all__ += ["SchemaError"]
