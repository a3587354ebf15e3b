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
        for i, part in enumerate(loc):
            if isinstance(part, str) and (_is_branch(part) or self._is_tag(node, path, loc, i)):
                continue  # pydantic's name for a union branch or discriminator tag
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == part:
                        node = value
                        path.append(part)
                        break
                else:
                    # A missing key: stay here, but name it in the field.
                    path.append(part)
                    break
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
        if not (len(path) == 2 and path[0] == "checks" and part in _TAGS):
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


_FIELD_NAME = regex.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_branch(part: str) -> bool:
    """A union branch in pydantic's error location (``constrained-float``, ``dict[str,...]``)."""
    return (
        not _FIELD_NAME.fullmatch(part)
        or part in ("str", "int", "float", "bool", "dict", "list")
        or part.endswith("Spec")
    )


def repeated_key(node: yaml.Node | None) -> tuple[str, int, str] | None:
    """The first key that a mapping in the document repeats: message, line, field.

    PyYAML lets the last one win silently, which would drop what the first said.
    """
    key = _duplicate_key(node)
    if key is None:
        return None
    line = int(key.start_mark.line) + 1
    return f"key {key.value!r} appears twice in the same mapping", line, str(key.value)


def _duplicate_key(node: yaml.Node | None) -> yaml.Node | None:
    """The first key that a mapping in the document repeats."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        return key
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return None


def _pick(errors: list[Any]) -> list[Any]:
    """Drop errors about union branches the value plainly is not (a mapping where a
    number is wanted), unless nothing else is left."""
    relevant = [e for e in errors if not str(e["type"]).endswith(("_type", "_parsing"))]
    return relevant or errors


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
    repeated = repeated_key(root)
    if repeated is not None:
        message, line, field = repeated
        raise PolicyError(message, source=source, line=line, field=field)
    if data is None:
        raise PolicyError("the policy is empty", source=source, line=1)
    if not isinstance(data, dict):
        raise PolicyError("a policy must be a mapping of keys to values", source=source, line=1)
    if "checks" in data and data["checks"] is None:
        raise located.error(["checks"], "`checks` is empty")
    try:
        spec = PolicySpec.model_validate(data)
    except ValidationError as exc:
        errors = _pick(exc.errors())
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
