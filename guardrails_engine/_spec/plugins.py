"""Check types that installed packages register (entry points), and a policy
document's ``type: <installed type>`` read as ``type: custom, entry_point: ...``."""

from __future__ import annotations

from typing import Any

from .config import BUILT_IN_TYPES, ENTRY_POINT_GROUP
from .located import check_lists

__all__ = ["installed_checks", "installed_types"]


def installed_checks() -> frozenset[str]:
    """The check types that installed packages register (entry points; nothing is
    imported until a policy uses one)."""
    from importlib import metadata  # (here: it costs an import, and few policies need it)

    found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    return frozenset(ep.name for ep in found if ep.name not in BUILT_IN_TYPES)


def installed_types(data: dict[str, Any]) -> dict[str, Any]:
    """The document with ``type: <installed check>`` read as ``type: custom,
    entry_point: <name>`` (a copy; the document itself is left as written)."""
    lists = check_lists(data)
    if not any(
        isinstance(c, dict) and isinstance(c.get("type"), str) and c["type"] not in BUILT_IN_TYPES
        for _, checks in lists
        for c in checks
    ):
        return data
    installed = installed_checks()

    def read(check: Any) -> Any:
        kind = check.get("type") if isinstance(check, dict) else None
        if isinstance(kind, str) and kind in installed:
            return {**check, "type": "custom", "entry_point": kind}
        return check

    out = dict(data)
    if isinstance(out.get("checks"), list):
        out["checks"] = [read(c) for c in out["checks"]]
    tools = out.get("tools")
    if isinstance(tools, dict):
        out["tools"] = {
            name: {**tool, "checks": [read(c) for c in tool["checks"]]}
            if isinstance(tool, dict) and isinstance(tool.get("checks"), list)
            else tool
            for name, tool in tools.items()
        }
    return out
