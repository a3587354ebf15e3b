"""Rules of the pii check on the policy document, reported with the format's problems."""

from __future__ import annotations

from typing import Any

import regex

from ..._common.errors import PolicyError
from ..._spec.located import Located, check_lists
from ..._spec.problems import did_you_mean
from .presidio import NER_ENTITIES, catalog

__all__ = ["unknown_entities"]


def unknown_entities(data: dict[str, Any], located: Located) -> list[PolicyError]:
    """An entity that neither presidio nor the NER recognizer knows, with the nearest
    known names; a per-entity ``min_score`` or ``repair`` for an entity the check does
    not look for (it would silently do nothing).  Read from the document, so that they
    are reported with the other problems."""
    out: list[PolicyError] = []
    known: frozenset[str] | None = None
    every = [
        ([*prefix, i], c) for prefix, checks in check_lists(data) for i, c in enumerate(checks)
    ]
    for where, check in every:
        if not (isinstance(check, dict) and check.get("type") == "pii"):
            continue
        listed = check.get("entities")
        entities = list(listed) if isinstance(listed, list) else []
        for j, entity in enumerate(entities):
            if not (isinstance(entity, str) and _ENTITY.fullmatch(entity)):
                continue  # the format's own rule says what is wrong with it
            if known is None:
                known = catalog().entities | NER_ENTITIES
            if entity not in known:
                hint = did_you_mean(entity, known) or (
                    " (`guardrails-engine entities` lists the known ones)"
                )
                out.append(
                    located.error([*where, "entities", j], f"unknown entity {entity!r}{hint}")
                )
        found = {e for e in entities if isinstance(e, str)} | _custom_entities(check)
        for key in ("min_score", "repair"):
            per_entity = check.get(key)
            for name in per_entity if isinstance(per_entity, dict) else ():
                if name == "default" or not isinstance(name, str) or name in found:
                    continue
                if not _ENTITY.fullmatch(name):
                    continue  # the format's own rule says what is wrong with it
                message = f"{name!r} is not an entity this check looks for" + did_you_mean(
                    name, found
                )
                out.append(located.error([*where, key, name], message))
    return out


def _custom_entities(check: dict[str, Any]) -> set[str]:
    """The entities a pii check's recognizers and deny lists add."""
    names: set[str] = set()
    recognizers = check.get("recognizers")
    for r in recognizers if isinstance(recognizers, list) else ():
        if isinstance(r, dict) and isinstance(r.get("entity"), str):
            names.add(r["entity"])
    deny = check.get("deny")
    names.update(k for k in (deny if isinstance(deny, dict) else ()) if isinstance(k, str))
    return names


_ENTITY = regex.compile(r"[A-Z][A-Z0-9_]*")
