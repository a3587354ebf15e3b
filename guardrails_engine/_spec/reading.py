"""Reading YAML, bounded: a document past the limits below is refused while it is
read (not after PyYAML has built it), and YAML errors become :class:`PolicyError`\\ s
with their line."""

from __future__ import annotations

from typing import Any

import regex
import yaml

from .._common.errors import PolicyError

__all__ = [
    "MAX_ALIASES",
    "MAX_CHARS",
    "MAX_DEPTH",
    "MAX_NODES",
    "ReadValues",
    "YamlRefused",
    "load_yaml",
    "repeated_key",
    "repeated_keys",
    "yaml_error",
]


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


class ReadValues(yaml.SafeLoader):
    """PyYAML's safe loader, where a value that cannot be read as its type (a date that
    does not exist, `!!int abc`, `!!bool maybe`, an integer of more digits than Python
    reads) is a YAML error at its place, naming the type, never the value: PyYAML
    raised ``ValueError``, ``KeyError`` or ``AttributeError`` quoting the text (of a
    file a policy points at, too)."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError):
            what = str(node.tag).rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"a value that cannot be read as {what} (quote it for text)",
                node.start_mark,
            ) from None


class _BoundedLoader(ReadValues):
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
    r"^\s*(?:-\s+)?(?P<key>[A-Za-z_][\w.-]*):[ \t]++"
    r"(?P<value>[^\s'\"\[{|>&*!#%@`].*)$"
)
# (Its comment is cut off after the match: written into the pattern, `[ \t]+#` was
# tried at every character of the value, and a value of 40,000 spaces took 8.5 s.)
_COMMENT = regex.compile(r"[ \t]#")


def _colon_in_plain_value(text: str, exc: yaml.MarkedYAMLError) -> tuple[str, str] | None:
    """When a scanner error is a plain value containing ': ': the key and a message."""
    mark = exc.problem_mark
    if exc.problem != "mapping values are not allowed here" or mark is None:
        return None
    lines = text.split("\n")
    if not 0 <= mark.line < len(lines):
        return None
    m = _PLAIN_VALUE_LINE.match(lines[mark.line])
    value = "" if m is None else m["value"]
    comment = _COMMENT.search(value)
    if comment is not None:
        value = value[: comment.start()]
    if m is None or ": " not in value:
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


def yaml_error(text: str, exc: yaml.YAMLError, source: str) -> PolicyError:
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
