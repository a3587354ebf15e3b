"""Checks of your own: found by import path or entry point, configured, and guarded.

A ``type: custom`` check names a unit check (a function) or a check class with
``function: package.module:name`` (its module must be trusted, as for
``model:``), or an installed package registers one under a type name in the
entry-point group ``guardrails_engine.checks``.  Its ``options:`` are
validated by the model it declares.  An incremental check's sessions are
wrapped so that a finding outside the text, or before the session's own hold,
is a failure of the check (``on_error``), never text released unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from .._common.errors import PolicyError
from .._common.model import Action
from .._common.trust import UntrustedModule, import_trusted
from .._spec.config import ENTRY_POINT_GROUP, CustomSpec, PolicySpec
from .._spec.located import Located
from .._spec.plugins import installed_checks
from ..checks._base import Check, CheckConfig, Hit, RunContext, Session
from ..checks._unit import USER_CODE, Compiled, MalformedFinding, UnitCheck, quotes

__all__ = ["compile_custom"]


def compile_custom(
    c: CustomSpec,
    spec: PolicySpec,
    located: Located,
    where: list[Any],
    trusted: tuple[str, ...],
) -> Check:
    """The check a ``type: custom`` (or installed type) entry describes."""
    obj, type_name, field = _resolve(c, located, where, trusted)
    cap = spec.stream.max_holdback_chars
    if isinstance(obj, UnitCheck):
        declared = obj
    elif isinstance(obj, type) and issubclass(obj, Check):
        declared = None
    elif isinstance(obj, type) or not callable(obj):
        raise located.error(
            [*where, field],
            f"{_name(c)} is not a check: expected a function, a unit_check or a Check "
            f"subclass, got {type(obj).__name__}",
        )
    else:
        declared = UnitCheck(obj)  # a plain function: a sentence check without options
    model = declared.options if declared is not None else obj.Options
    options = _options(model, c, located, where)
    config = CheckConfig(
        id=c.id,
        type=type_name,
        action=Action(c.action),
        on_error=c.on_error or spec.on_error,
        options=options,
        replacement=c.replacement,
        max_holdback_chars=cap,
    )
    if declared is not None:
        unit = c.unit or declared.unit
        if c.max_unit_chars is not None and c.max_unit_chars > cap:
            raise located.error(
                [*where, "max_unit_chars"],
                f"at most stream.max_holdback_chars ({cap:,}): a stream holds a unit until it ends",
            )
        if unit == "text" and c.max_unit_chars is not None:
            raise located.error(
                [*where, "max_unit_chars"],
                "a text check sees the whole text: it is not checked in parts",
            )
        return Compiled(config, declared, unit=unit, max_unit_chars=c.max_unit_chars or cap)
    for key in ("unit", "max_unit_chars"):
        if getattr(c, key) is not None:
            raise located.error([*where, key], f"only unit checks take `{key}`")
    try:
        check = obj(config)
    except Exception as exc:
        raise located.error(
            [*where, field], f"cannot build the check {_name(c)}: {type(exc).__name__}: {exc}"
        ) from None
    return Guarded(check)


def _name(c: CustomSpec) -> str:
    return repr(c.function if c.function is not None else c.entry_point)


def _resolve(
    c: CustomSpec, located: Located, where: list[Any], trusted: tuple[str, ...]
) -> tuple[Any, str, str]:
    """The object the entry names, its check type, and the field that named it."""
    if c.function is not None:
        try:
            return import_trusted(c.function, trusted), "custom", "function"
        except UntrustedModule as exc:
            raise located.error([*where, "function"], str(exc)) from None
        except ImportError as exc:
            raise located.error(
                [*where, "function"], f"cannot import {c.function!r}: {exc}"
            ) from None
        except AttributeError:
            module, _, attr = c.function.partition(":")
            raise located.error(
                [*where, "function"], f"module {module!r} has no attribute {attr!r}"
            ) from None
        except Exception as exc:  # the module raised as it was imported
            raise located.error(
                [*where, "function"], f"cannot import {c.function!r}: {type(exc).__name__}"
            ) from None
    name = c.entry_point
    assert name is not None
    written = _written(located, where)
    field = "entry_point" if isinstance(written, dict) and "entry_point" in written else "type"
    from importlib import metadata  # (here: it costs an import, and few policies need it)

    found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = ", ".join(sorted(installed_checks())) or "none"
        raise located.error(
            [*where, field],
            f"no installed check {name!r} (entry points {ENTRY_POINT_GROUP!r}: {known})",
        )
    try:
        return found[0].load(), name, field
    except Exception as exc:
        raise located.error(
            [*where, field], f"cannot load the installed check {name!r}: {type(exc).__name__}"
        ) from None


def _written(located: Located, where: list[Any]) -> Any:
    node: Any = located.data
    for part in where:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _options(model: Any, c: CustomSpec, located: Located, where: list[Any]) -> BaseModel | None:
    if model is None:
        if c.options:
            raise located.error([*where, "options"], "this check takes no options")
        return None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise located.error(
            [*where, "function" if c.function else "type"],
            f"the check's Options must be a pydantic model, got {model!r}",
        )
    try:
        return model.model_validate(c.options)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [*where, "options", *(p for p in err["loc"] if isinstance(p, int | str))]
            message = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown option"
            elif err["type"] == "missing":
                name = ".".join(str(p) for p in err["loc"])
                message = f"required option `{name}` is missing"
            problems.append(located.error(loc, message))
        raise PolicyError.of(problems) from None
    except Exception as exc:  # a validator of the check's that raised something else
        raise located.error(
            [*where, "options"], f"cannot validate the options: {type(exc).__name__}"
        ) from None


# -- incremental checks of your own: their contract, enforced ---------------------------------


class Guarded(Check):
    """An incremental check of your own, whose sessions are held to the contract."""

    def __init__(self, inner: Check) -> None:
        self.inner = inner
        self.id = inner.id
        self.type = inner.type
        self.action = inner.action
        self.on_error = inner.on_error
        self.blocking = bool(getattr(inner, "blocking", False))
        self.json_output = bool(inner.json_output)

    def session(self) -> Session:
        try:
            with USER_CODE:
                session = self.inner.session()
        except Exception as exc:  # a failure of the check in this run: on_error decides
            return _BrokenSession(exc)
        if not isinstance(session, Session):
            return _BrokenSession(
                MalformedFinding(f"session() must return a Session, got {type(session).__name__}")
            )
        return _GuardedSession(self, session)

    def render(self, hit: Hit, context: RunContext) -> str:
        """The check's replacement; if it fails to give one, the default (the
        span is replaced all the same: a repair never leaves the text as it was)."""
        try:
            with USER_CODE:
                text = self.inner.render(hit, context)
        except Exception:
            text = None
        if not isinstance(text, str):
            return Check.render(self.inner, hit, context)
        return text

    def outcome(self, hit: Hit) -> str:
        try:
            with USER_CODE:
                text = self.inner.outcome(hit)
        except Exception:
            text = None
        return text if isinstance(text, str) else Check.outcome(self, hit)


class _BrokenSession(Session):
    """The session of a check that could not make one: it fails when first used."""

    def __init__(self, error: Exception) -> None:
        self._error = error
        self.hold = 0

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        raise self._error

    def finish(self, buf: str, base: int) -> Sequence[Hit]:
        raise self._error

    def force(self, buf: str, base: int, upto: int) -> Sequence[Hit]:
        raise self._error


_KINDS = frozenset({"span", "truncate", "whole"})


class _GuardedSession(Session):
    """Checks every hit and hold of a session of your own."""

    def __init__(self, check: Guarded, inner: Session) -> None:
        self._check = check
        self._inner = inner
        self.scans = bool(inner.scans)
        self.capped = bool(inner.capped)
        self._end = 0  # the end of the text so far, in the session's offsets
        self._inner_hold = 0  # the session's own hold, last seen
        self._forced = 0  # decided up to here by force()
        self._broken: MalformedFinding | None = None  # raised when first used
        try:
            self.hold = self._hold()
        except MalformedFinding as exc:
            self.hold, self._broken = 0, exc

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        self._usable()
        self._end = base + len(buf) if self.scans else self._end + len(chunk)
        with USER_CODE:
            hits = self._inner.feed(buf, base, chunk)
        return self._checked(hits, buf, base)

    def finish(self, buf: str, base: int) -> Sequence[Hit]:
        self._usable()
        if self.scans:
            self._end = base + len(buf)
        with USER_CODE:
            found = self._inner.finish(buf, base)
        hits = self._checked(found, buf, base)
        self.hold = self._end
        return hits

    def force(self, buf: str, base: int, upto: int) -> Sequence[Hit]:
        self._usable()
        # (A session without force() fails here, NotImplementedError: on_error decides.
        # Releasing the text it has not decided would release it unchecked.)
        with USER_CODE:
            found = self._inner.force(buf, base, upto)
        hits = self._checked(found, buf, base)
        if self._inner_hold < upto:  # (what it would find there later was released)
            raise MalformedFinding(
                f"force() must decide the text before {upto}: the hold stays at {self._inner_hold}"
            )
        self._forced = max(self._forced, upto)  # what comes later may not start before it
        self.hold = max(self.hold, upto)
        return hits

    def _usable(self) -> None:
        if self._broken is not None:
            raise self._broken

    def _checked(self, hits: Any, buf: str, base: int) -> list[Hit]:
        floor = self.hold
        if hits is None:
            hits = []
        if isinstance(hits, str | bytes) or not isinstance(hits, Sequence):
            raise MalformedFinding(f"a session returns a list of hits, got {type(hits).__name__}")
        out: list[Hit] = []
        for hit in hits:
            if not isinstance(hit, Hit):
                raise MalformedFinding(f"a hit must be a Hit, got {type(hit).__name__}")
            if not (_is_int(hit.start) and _is_int(hit.end) and _is_int(hit.floor)):
                raise MalformedFinding("a hit's start, end and floor must be integers")
            if hit.kind not in _KINDS:
                raise MalformedFinding(f"a hit's kind must be one of {', '.join(sorted(_KINDS))}")
            if hit.start < floor:
                raise MalformedFinding(
                    f"a hit at {hit.start} starts before the session's hold {floor}"
                )
            if not hit.start <= hit.end <= max(self._end, hit.start + 1) or (
                hit.kind == "span" and hit.end > self._end
            ):
                raise MalformedFinding(
                    f"a hit's span {hit.start}-{hit.end} is not inside the text (0-{self._end})"
                )
            if hit.check is not self._check.inner and hit.check is not self._check:
                raise MalformedFinding("a hit must name the check whose session found it")
            if not isinstance(hit.action, Action):
                raise MalformedFinding("a hit's action must be an Action")
            for name in ("what", "entity", "replacement", "proposed", "value"):
                field = getattr(hit, name)
                if not (isinstance(field, str) or (field is None and name != "what")):
                    raise MalformedFinding(f"a hit's `{name}` must be a str")
            score = hit.score
            if score is not None and not (
                isinstance(score, int | float)
                and not isinstance(score, bool)
                and math.isfinite(score)
            ):
                raise MalformedFinding("a hit's score must be a finite number")
            # A reason never quotes what was found (nor the text of the span).
            value = hit.value
            if value is None and self.scans and base <= hit.start:
                value = buf[hit.start - base : hit.end - base]
            if value is not None:
                if hit.entity is not None and quotes(value, hit.entity):
                    hit.entity = None
                if quotes(value, hit.what):
                    hit.what = hit.entity or "found"
            hit.check = self._check
            hit.joins = bool(hit.joins)
            out.append(hit)
        self.hold = self._hold()
        return out

    def _hold(self) -> int:
        hold = getattr(self._inner, "hold", None)
        if not _is_int(hold):
            raise MalformedFinding(f"a session's hold must be an int, got {type(hold).__name__}")
        assert isinstance(hold, int)
        if hold < self._inner_hold:
            raise MalformedFinding(f"a session's hold moved back from {self._inner_hold} to {hold}")
        self._inner_hold = hold
        return min(max(hold, self._forced), self._end)

    def __repr__(self) -> str:
        return f"<session of check {self._check.id!r}>"


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
