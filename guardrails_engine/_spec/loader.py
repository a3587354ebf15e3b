"""Reading policy files: YAML with line numbers, errors mapped back to lines."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import Any

import regex
import yaml
from pydantic import BaseModel, ValidationError

from .._core.errors import PolicyError
from .config import (
    BUILT_IN_TYPES,
    ENTRY_POINT_GROUP,
    ContentSpec,
    CustomSpec,
    LengthSpec,
    PiiSpec,
    PolicySpec,
    SchemaSpec,
)

__all__ = ["Located", "YamlRefused", "did_you_mean", "load_yaml", "nearest", "parse_policy"]


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
                for k, _v in parent.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == path[-1]:
                        return int(k.start_mark.line) + 1
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


_TAGS = frozenset({"pii", "content", "schema", "length", "custom", "topic"})


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
    keys = repeated_keys(node)
    return keys[0] if keys else None


def repeated_keys(node: yaml.Node | None) -> list[tuple[str, int, str]]:
    """Every key that a mapping in the document repeats: message, line, field.

    Each node is visited once, however many aliases point at it.
    """
    out: list[tuple[str, int, str]] = []
    stack = [node]
    visited: set[int] = set()
    while stack:
        n = stack.pop()
        if n is None or id(n) in visited:
            continue
        visited.add(id(n))
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        line = int(key.start_mark.line) + 1
                        message = f"key {key.value!r} appears twice in the same mapping"
                        out.append((message, line, str(key.value)))
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(reversed(n.value))
    out.sort(key=lambda k: k[1])
    return out


# -- reading YAML, bounded ---------------------------------------------------------

#: Nesting deeper than this is refused (a policy needs a handful of levels; an
#: inline JSON Schema a few dozen).
MAX_DEPTH = 64
#: Aliases (``*name``) in one document.
MAX_ALIASES = 1_000
#: Values (nodes) in the document with every alias expanded: what pydantic,
#: jsonschema and the checks will walk (a 10,000-term policy has 10,000).
MAX_NODES = 250_000
#: Characters of scalars with every alias expanded.
MAX_CHARS = 10_000_000


class YamlRefused(yaml.MarkedYAMLError):
    """A document that is valid YAML but too large or too deep to read."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing deep nesting and too many aliases while
    composing (before PyYAML's own recursion reaches Python's limit)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    # The scanner reads ahead of the composer, and PyYAML's costs grow with the
    # nesting it is inside (each flow level is a possible key it re-checks), so the
    # bound is enforced where it reads brackets and indentation too: the cost stays
    # linear in the text whatever its nesting.
    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise YamlRefused(f"nested more than {MAX_DEPTH} levels deep", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def add_indent(self, column: int) -> bool:
        if len(self.indents) >= MAX_DEPTH and self.indent < column:
            raise YamlRefused(f"nested more than {MAX_DEPTH} levels deep", self.get_mark())
        return bool(super().add_indent(column))

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlRefused(f"more than {MAX_ALIASES:,} aliases", mark)
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlRefused(f"nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        # A key written `on` (`fallback: {on: [...]}`) is the word, not YAML 1.1's true.
        node: yaml.MappingNode = super().compose_mapping_node(anchor)
        for key, _ in node.value:
            if key.tag == _BOOL_TAG and isinstance(key, yaml.ScalarNode) and key.style is None:
                key.tag = _STR_TAG
        return node


_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"


def _expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand it past the bounds (an alias bomb)
    or into itself.  Each node is measured once (iteratively, with a memo)."""
    size: dict[int, tuple[int, int, int]] = {}  # id -> nodes, chars, depth (expanded)
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            nodes, chars, depth = 1, len(node.value) if isinstance(node.value, str) else 0, 0
            for child in children:
                n, c, d = size[id(child)]
                nodes, chars, depth = nodes + n, chars + c, max(depth, d)
            size[key] = (nodes, chars, depth + 1)
            if nodes > MAX_NODES:
                raise YamlRefused(
                    f"aliases expand the document past {MAX_NODES:,} values", node.start_mark
                )
            if chars > MAX_CHARS:
                raise YamlRefused(
                    f"aliases expand the document past {MAX_CHARS:,} characters", node.start_mark
                )
            if depth + 1 > MAX_DEPTH:
                raise YamlRefused(
                    f"aliases nest the document more than {MAX_DEPTH} levels deep",
                    node.start_mark,
                )
            continue
        if key in size:
            continue
        if key in on_path:
            raise YamlRefused("an alias refers to a value that contains it", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


# ``key: a plain value with: a colon`` is not YAML (": " ends a plain scalar).
_PLAIN_VALUE_LINE = regex.compile(
    r"^\s*(?:-\s+)?(?P<key>[A-Za-z_][\w.-]*):[ \t]+"
    r"(?P<value>[^\s'\"\[{|>&*!#%@`].*?)"
    r"(?P<comment>[ \t]+#.*)?$"
)


def _colon_in_plain_value(text: str, exc: yaml.MarkedYAMLError) -> tuple[str, str] | None:
    """When a scanner error is a plain value containing ': ': the key and a message."""
    mark = exc.problem_mark
    if exc.problem != "mapping values are not allowed here" or mark is None:
        return None
    lines = text.split("\n")
    if not 0 <= mark.line < len(lines):
        return None
    m = _PLAIN_VALUE_LINE.match(lines[mark.line])
    if m is None or ": " not in m["value"]:
        return None
    key = m["key"]
    return key, (
        f"a plain YAML value cannot contain ': '; quote the value of `{key}` "
        f"({key}: '...' or {key}: \"...\")"
    )


def load_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree and its data, within the bounds above.

    :raises yaml.YAMLError: invalid YAML, or a document past the bounds
        (:class:`YamlRefused`), with the mark of the place.
    """
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _expansion(root)
        return root, loader.construct_document(root)
    except RecursionError:
        raise YamlRefused("nested too deeply to read", None) from None
    finally:
        loader.dispose()


def _yaml_error(text: str, exc: yaml.YAMLError, source: str) -> PolicyError:
    if isinstance(exc, yaml.MarkedYAMLError):
        colon = _colon_in_plain_value(text, exc)
        mark = exc.problem_mark
        line = int(mark.line) + 1 if mark is not None else None
        if colon is not None:
            key, message = colon
            return PolicyError(message, source=source, line=line, field=key)
        if isinstance(exc, YamlRefused):
            return PolicyError(f"refused: {exc.problem}", source=source, line=line)
        return PolicyError(f"invalid YAML: {exc.problem or exc}", source=source, line=line)
    return PolicyError(f"invalid YAML: {exc}", source=source)


# -- suggestions ---------------------------------------------------------------------


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


_CHECK_MODELS: dict[str, type[BaseModel]] = {
    "pii": PiiSpec,
    "content": ContentSpec,
    "schema": SchemaSpec,
    "length": LengthSpec,
    "custom": CustomSpec,
}


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
        if part in _CHECK_MODELS and PiiSpec in models:
            models = [_CHECK_MODELS[part]]
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


# -- errors --------------------------------------------------------------------------


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
    out: list[tuple[Any, list[int | str]]] = []
    seen: set[str] = set()
    for err, loc, field in fielded:
        if field in seen:
            continue
        if _is_type_error(err) and any(
            not _is_type_error(other) and (f == field or f.startswith((field + ".", field + "[")))
            for other, _, f in fielded
        ):
            continue
        seen.add(field)
        out.append((err, loc))
    return out


def format_path(path: Sequence[int | str]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
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
        known = [*_CHECK_MODELS, *sorted(installed_checks())]
        hint = did_you_mean(str(tag), known)
        listed = ", ".join(f"'{k}'" for k in known)
        return f"unknown check type {tag!r} (expected one of {listed}){hint}"
    if kind == "union_tag_not_found":
        return "a check needs a `type` (pii, content, schema, length or custom)"
    if kind == "literal_error" and err["loc"] and err["loc"][-1] == "version":
        return f"unsupported policy version {err.get('input')!r} (this library reads version 1)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "literal_error" and isinstance(err.get("input"), str):
        msg += did_you_mean(err["input"], _literal_values(err))
    return msg


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


def _duplicate_ids(data: dict[str, Any], located: Located) -> list[PolicyError]:
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


def installed_checks() -> frozenset[str]:
    """The check types that installed packages register (entry points; nothing is
    imported until a policy uses one)."""
    found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    return frozenset(ep.name for ep in found if ep.name not in BUILT_IN_TYPES)


def _installed_types(data: dict[str, Any]) -> dict[str, Any]:
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


#: A further rule on a policy document, given by a layer above (the pii check's
#: entity names): the problems it finds in the document.
DocumentRule = Callable[[dict[str, Any], Located], list[PolicyError]]


def parse_policy(
    text: str, source: str = "<string>", rules: Sequence[DocumentRule] = ()
) -> tuple[PolicySpec, Located]:
    """Parse and validate a policy document; ``rules`` add problems of their own,
    reported with the format's.

    :raises PolicyError: naming the source, the line and the field of every problem
        found (several problems: one error, one line each, see ``PolicyError.problems``).
    """
    try:
        root, data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(text, exc, source) from None
    located = Located(data, root, source)
    problems = [
        PolicyError(message, source=source, line=line, field=field)
        for message, line, field in repeated_keys(root)
    ]
    if data is None:
        problems.append(PolicyError("the policy is empty", source=source, line=1))
    elif not isinstance(data, dict):
        problems.append(
            PolicyError("a policy must be a mapping of keys to values", source=source, line=1)
        )
    if problems and not isinstance(data, dict):
        raise PolicyError.of(problems)
    assert isinstance(data, dict)
    if "checks" in data and data["checks"] is None:
        problems.append(located.error(["checks"], "`checks` is empty"))
        raise PolicyError.of(problems)
    spec: PolicySpec | None = None
    try:
        spec = PolicySpec.model_validate(_installed_types(data))
    except ValidationError as exc:
        for err, loc in _relevant(exc.errors(), located):
            problems.append(located.error(loc, _describe(err, loc)))
    except RecursionError:
        problems.append(PolicyError("nested too deeply to read", source=source))
    for rule in rules:
        problems.extend(rule(data, located))
    problems.extend(_duplicate_ids(data, located))
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise PolicyError.of(problems)
    assert spec is not None
    return spec, located
