"""A parsed policy document that can say where each of its fields is (file, line, path)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import regex
import yaml

from .._common.errors import PolicyError
from .config import CHECK_SPECS

__all__ = ["Located", "check_lists", "format_path"]


class Located:
    """A parsed policy document that can say where each of its fields is."""

    def __init__(self, data: Any, root: yaml.Node | None, source: str) -> None:
        self.data = data
        self.root = root
        self.source = source
        # Each mapping's keys, the first of a name (an error per field looked a key up
        # along the mapping: 20,000 wrong fields took two minutes to report).
        self._keys: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}

    def _lookup(self, node: yaml.MappingNode, name: str) -> tuple[yaml.Node, yaml.Node] | None:
        keys = self._keys.get(id(node))
        if keys is None:
            keys = self._keys[id(node)] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and isinstance(key.value, str):
                    keys.setdefault(key.value, (key, value))
        return keys.get(name)

    def _walk(self, loc: Sequence[int | str]) -> tuple[yaml.Node | None, list[int | str]]:
        """The deepest node along ``loc`` and the path elements that exist."""
        node = self.root
        path: list[int | str] = []
        for i, part in enumerate(loc):
            if isinstance(part, str) and (_is_branch(part) or self._is_tag(node, path, loc, i)):
                continue  # pydantic's name for a union branch or discriminator tag
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                found = self._lookup(node, part)
                path.append(part)
                if found is None:
                    break  # a missing key: stay here, but name it in the field
                node = found[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    node = node.value[part]
                    path.append(part)
                else:
                    break
        return node, path

    @staticmethod
    def _is_tag(
        node: yaml.Node | None, path: list[int | str], loc: Sequence[int | str], i: int
    ) -> bool:
        """pydantic puts the check type right after ``checks[i]``; a check can also
        have a key of that name (``schema``), which a location ending there means."""
        part = loc[i]
        if not (_in_check_list(path) and part in _TAGS):
            return False
        if i + 1 < len(loc):
            return True
        keys = [k.value for k, _ in node.value] if isinstance(node, yaml.MappingNode) else []
        return part not in keys

    def line_of(self, loc: Sequence[int | str], *, key: bool = False) -> int | None:
        node, path = self._walk(loc)
        if node is None:
            return None
        if key and path and isinstance(path[-1], str):
            parent, _ = self._walk(path[:-1])
            if isinstance(parent, yaml.MappingNode):
                found = self._lookup(parent, path[-1])
                if found is not None:
                    return int(found[0].start_mark.line) + 1
        return int(node.start_mark.line) + 1

    def field_of(self, loc: Sequence[int | str]) -> str:
        _, path = self._walk(loc)
        return format_path(path)

    def check_id(self, loc: Sequence[int | str]) -> str | None:
        for prefix, checks in check_lists(self.data):
            n = len(prefix)
            index = loc[n] if len(loc) > n and list(loc[:n]) == prefix else None
            if isinstance(index, int):
                if 0 <= index < len(checks):
                    item = checks[index]
                    if isinstance(item, dict):
                        cid = item.get("id")
                        if isinstance(cid, str):
                            return cid
        return None

    def error(self, loc: Sequence[int | str], message: str) -> PolicyError:
        return PolicyError(
            message,
            source=self.source,
            line=self.line_of(loc, key=True),
            field=self.field_of(loc) or None,
            check_id=self.check_id(loc),
        )


#: The check types: pydantic names one in an error's location, after ``checks[i]``.
_TAGS = frozenset(CHECK_SPECS)


_FIELD_NAME = regex.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_branch(part: str) -> bool:
    """A union branch in pydantic's error location (``constrained-float``, ``dict[str,...]``)."""
    return (
        not _FIELD_NAME.fullmatch(part)
        or part in ("str", "int", "float", "bool", "dict", "list")
        or part.endswith("Spec")
    )


def format_path(path: Sequence[int | str]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _in_check_list(path: Sequence[int | str]) -> bool:
    """Whether ``path`` names one check: ``checks[i]`` or ``tools.<name>.checks[i]``."""
    if len(path) == 2:
        return path[0] == "checks" and isinstance(path[1], int)
    return (
        len(path) == 4 and path[0] == "tools" and path[2] == "checks" and isinstance(path[3], int)
    )


def check_lists(data: Any) -> list[tuple[list[int | str], list[Any]]]:
    """The lists of checks in a policy document, with where each is: the policy's
    own, then those of its tools."""
    out: list[tuple[list[int | str], list[Any]]] = []
    if not isinstance(data, dict):
        return out
    checks = data.get("checks")
    if isinstance(checks, list):
        out.append((["checks"], checks))
    tools = data.get("tools")
    for name, tool in tools.items() if isinstance(tools, dict) else ():
        listed = tool.get("checks") if isinstance(tool, dict) else None
        if isinstance(name, str) and isinstance(listed, list):
            out.append((["tools", name, "checks"], listed))
    return out
