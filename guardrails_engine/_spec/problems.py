"""What is wrong with a policy document, in its own words: pydantic's errors mapped
to one message per field (with a suggestion for a misspelt name), and the rules
pydantic does not know (unique check ids)."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Sequence
from typing import Any

import regex
from pydantic import BaseModel

from .._common.errors import PolicyError
from .config import CHECK_SPECS, PiiSpec, PolicySpec
from .located import Located, check_lists, format_path
from .plugins import installed_checks

__all__ = ["described", "did_you_mean", "duplicate_ids", "nearest"]


def nearest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to a misspelt ``name`` (case-insensitive), best first:
    difflib's close matches, then names that contain it (``EMAIL`` -> ``EMAIL_ADDRESS``)."""
    folded: dict[str, str] = {}
    for k in sorted(known):
        folded.setdefault(k.casefold(), k)
    q = name.casefold()
    close = difflib.get_close_matches(q, list(folded), n=n, cutoff=0.6)
    if len(q) >= 3:
        close += [k for k in folded if q in k and k not in close and k != q]
    return [folded[c] for c in close[:n]]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean X?"`` (or ``X or Y``), or ``""`` when nothing is close."""
    names = nearest(name, known)
    if not names:
        return ""
    quoted = [f"{n!r}" for n in names]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"; did you mean {listed}?"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through lists, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        for m in _models_in(arg):
            if m not in out:
                out.append(m)
    return out


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _allowed_keys(loc: Sequence[int | str]) -> list[str]:
    """The keys the policy format allows in the mapping that holds ``loc``'s last key."""
    models: list[type[BaseModel]] = [PolicySpec]
    key_next = False  # the field just entered maps names (``tools``) to models
    for part in loc[:-1]:
        if isinstance(part, int) or key_next:
            key_next = False
            continue
        by_name = [m for m in models if m.__name__ == part]
        if part in CHECK_SPECS and PiiSpec in models:
            models = [CHECK_SPECS[part]]
        elif by_name:
            models = by_name
        else:
            fields = [
                f for m in models for name, f in m.model_fields.items() if part in (name, f.alias)
            ]
            if not fields:
                return []
            models = _models_in(fields[0].annotation)
            key_next = typing.get_origin(fields[0].annotation) is dict
    return sorted({k for m in models for k in _keys_of(m)})


def _literal_values(err: Any) -> list[str]:
    expected = str(err.get("ctx", {}).get("expected", ""))
    return regex.findall(r"'([^']*)'", expected)


def _is_type_error(err: Any) -> bool:
    return str(err["type"]).endswith(("_type", "_parsing"))


def _relevant(errors: list[Any], located: Located) -> list[tuple[Any, list[int | str]]]:
    """One error per field: an error about a union branch the value plainly is not
    (a mapping where a number is wanted) is dropped when another error is about the
    same field or a field inside it; pydantic's branch names are left out."""
    fielded = []
    for err in errors:
        loc = [p for p in err["loc"] if isinstance(p, (int, str))]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc.append("type")
        fielded.append((err, loc, located.field_of(loc)))
    # The fields at or above an error that is not about a type (a set: looking through
    # every error for each one took two minutes for 20,000 wrong fields).
    covered: set[str] = set()
    for other, _, f in fielded:
        if not _is_type_error(other):
            covered.add(f)
            covered.update(f[:i] for i, ch in enumerate(f) if ch in ".[")
    out: list[tuple[Any, list[int | str]]] = []
    seen: set[str] = set()
    for err, loc, field in fielded:
        if field in seen:
            continue
        if _is_type_error(err) and field in covered:
            continue
        seen.add(field)
        out.append((err, loc))
    return out


def _describe(err: Any, loc: Sequence[int | str]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else ""
        return "unknown key" + did_you_mean(key, _allowed_keys(err["loc"]))
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        known = [*CHECK_SPECS, *sorted(installed_checks())]
        hint = did_you_mean(str(tag), known)
        listed = ", ".join(f"'{k}'" for k in known)
        return f"unknown check type {tag!r} (expected one of {listed}){hint}"
    if kind == "union_tag_not_found":
        *first, last = CHECK_SPECS
        return f"a check needs a `type` ({', '.join(first)} or {last})"
    if kind == "literal_error" and err["loc"] and err["loc"][-1] == "version":
        return f"unsupported policy version {err.get('input')!r} (this library reads version 1)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "literal_error" and isinstance(err.get("input"), str):
        msg += did_you_mean(err["input"], _literal_values(err))
    return msg


def described(errors: list[Any], located: Located) -> list[PolicyError]:
    """pydantic's validation errors as problems of the document, one per field."""
    return [located.error(loc, _describe(err, loc)) for err, loc in _relevant(errors, located)]


def duplicate_ids(data: dict[str, Any], located: Located) -> list[PolicyError]:
    """Check ids name findings: two checks of one list may not share one."""
    out: list[PolicyError] = []
    for prefix, checks in check_lists(data):
        seen: dict[str, int] = {}
        for i, check in enumerate(checks):
            cid = check.get("id") if isinstance(check, dict) else None
            if not isinstance(cid, str):
                continue
            first = seen.setdefault(cid, i)
            if first != i:
                where = format_path([*prefix, first])
                message = f"duplicate check id '{cid}' (first at {where})"
                out.append(located.error([*prefix, i, "id"], message))
    return out
