"""Reading policy files: YAML with line numbers, errors mapped back to lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import regex
import yaml
import yaml.scanner
from pydantic import ValidationError

from ._config import PolicySpec
from ._errors import PolicyError

__all__ = ["Located", "parse_policy"]


class Located:
    """A parsed policy document that can say where each of its fields is."""

    def __init__(self, data: Any, root: yaml.Node | None, source: str) -> None:
        self.data = data
        self.root = root
        self.source = source

    def _walk(self, loc: Sequence[int | str]) -> tuple[yaml.Node | None, list[int | str]]:
        """The deepest node along ``loc`` and the path elements that exist."""
        node = self.root
        path: list[int | str] = []
        for part in loc:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == part:
                        node = value
                        path.append(part)
                        break
                else:
                    # A discriminator tag (``pii``) or a missing key: stay here;
                    # a missing key is still named in the field.
                    if not _is_tag(part):
                        path.append(part)
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    node = node.value[part]
                    path.append(part)
                else:
                    break
        return node, path

    def line_of(self, loc: Sequence[int | str], *, key: bool = False) -> int | None:
        node, path = self._walk(loc)
        if node is None:
            return None
        if key and path and isinstance(path[-1], str):
            parent, _ = self._walk(path[:-1])
            if isinstance(parent, yaml.MappingNode):
                for k, _v in parent.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == path[-1]:
                        return int(k.start_mark.line) + 1
        return int(node.start_mark.line) + 1

    def field_of(self, loc: Sequence[int | str]) -> str:
        _, path = self._walk(loc)
        return format_path(path)

    def check_id(self, loc: Sequence[int | str]) -> str | None:
        if len(loc) >= 2 and loc[0] == "checks" and isinstance(loc[1], int):
            checks = self.data.get("checks") if isinstance(self.data, dict) else None
            if isinstance(checks, list) and 0 <= loc[1] < len(checks):
                item = checks[loc[1]]
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


_TAGS = frozenset({"pii", "content", "schema", "length"})


def _is_tag(part: str) -> bool:
    return part in _TAGS or part.startswith("function-")


def format_path(path: Sequence[int | str]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _describe(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        expected = err.get("ctx", {}).get("expected_tags", "")
        return f"unknown check type {tag!r} (expected one of {expected})"
    if kind == "union_tag_not_found":
        return "a check needs a `type` (pii, content, schema or length)"
    if kind == "literal_error" and err["loc"] and err["loc"][-1] == "version":
        return f"unsupported policy version {err.get('input')!r} (this library reads version 1)"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


# ``key: a plain value with: a colon`` is not YAML (": " ends a plain scalar),
# but people write it in descriptions.  Such a line is read as the text it
# plainly is; the line numbers stay the same.
_PLAIN_VALUE_LINE = regex.compile(
    r"^(?P<key>\s*(?:-\s+)?[A-Za-z_][\w.-]*:[ \t]+)"
    r"(?P<value>[^\s'\"\[{|>&*!#%@`].*?)"
    r"(?P<comment>[ \t]+#.*)?$"
)


def _quote_plain_line(text: str, line: int) -> str | None:
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        return None
    m = _PLAIN_VALUE_LINE.match(lines[line])
    if m is None or ": " not in m["value"]:
        return None
    value = m["value"].replace("'", "''")
    lines[line] = f"{m['key']}'{value}'{m['comment'] or ''}"
    return "\n".join(lines)


def _load_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    for _ in range(100):
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)
        except yaml.scanner.ScannerError as exc:
            mark = exc.problem_mark
            fixed = None
            if exc.problem == "mapping values are not allowed here" and mark is not None:
                fixed = _quote_plain_line(text, mark.line)
            if fixed is None:
                raise
            text = fixed
    raise yaml.YAMLError("too many plain values with colons")


def parse_policy(text: str, source: str = "<string>") -> tuple[PolicySpec, Located]:
    """Parse and validate a policy document.

    :raises PolicyError: naming the source, the line and the field.
    """
    try:
        root, data = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = int(mark.line) + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"invalid YAML: {problem}", source=source, line=line) from exc
    located = Located(data, root, source)
    if data is None:
        raise PolicyError("the policy is empty", source=source, line=1)
    if not isinstance(data, dict):
        raise PolicyError("a policy must be a mapping of keys to values", source=source, line=1)
    if "checks" in data and data["checks"] is None:
        raise located.error(["checks"], "`checks` is empty")
    try:
        spec = PolicySpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        loc = [p for p in first["loc"] if isinstance(p, (int, str))]
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc.append("type")
        message = _describe(first)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise located.error(loc, message) from None
    seen: dict[str, int] = {}
    for i, check in enumerate(spec.checks):
        if check.id in seen:
            raise located.error(
                ["checks", i, "id"],
                f"duplicate check id '{check.id}' (first at checks[{seen[check.id]}])",
            )
        seen[check.id] = i
    return spec, located
