"""The ``schema`` check: the whole output must be JSON valid against a schema.

This check holds its text until the end of the output (``release:
on_complete``); reasons name the JSON path and the keyword, never a value from
the document.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pydantic
import yaml
from jsonschema import validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ._check import Hit, RunContext, Session
from ._config import SchemaSpec
from ._jsonstream import JsonScan, Violation, path_step, show
from ._model import Action, done
from ._pieces import BLOCK, join_tail

if TYPE_CHECKING:
    from ._pipeline import Applied

__all__ = ["SchemaCheck", "json_path", "load_schema"]

_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def load_schema(spec: SchemaSpec, base_dir: Path | None) -> Any:
    """The schema a spec names: inline, read from its file, or a pydantic model's.

    :raises OSError: if the file cannot be read.
    :raises ValueError: if it is neither JSON nor YAML, or the model is not a pydantic model.
    :raises ImportError: if the model's module cannot be imported.
    """
    if spec.model is not None:
        module_name, _, attr = spec.model.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        if not (isinstance(obj, type) and issubclass(obj, pydantic.BaseModel)):
            raise ValueError(f"{spec.model} is not a pydantic model")
        return obj.model_json_schema()
    if spec.schema_file is None:
        return spec.schema_
    path = Path(spec.schema_file)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is neither JSON nor YAML") from exc


def local_registry(spec: SchemaSpec, base_dir: Path | None) -> Any:
    """A registry that resolves each ``$ref`` to a local file next to the schema file (never the
    network), or None for inline and model schemas."""
    if spec.schema_file is None:
        return None
    path = Path(spec.schema_file)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    folder = path.parent

    def retrieve(uri: str) -> Resource:
        if "://" in uri and not uri.startswith("file://"):
            raise ValueError(f"only local schema files are read, not {uri}")
        target = Path(uri.removeprefix("file://"))
        if not target.is_absolute():
            target = folder / target
        text = target.read_text(encoding="utf-8")
        try:
            contents = json.loads(text)
        except json.JSONDecodeError:
            contents = yaml.safe_load(text)
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    return Registry(retrieve=retrieve)  # type: ignore[call-arg]


def check_schema(schema: Any) -> None:
    """:raises jsonschema.exceptions.SchemaError: if ``schema`` is not a valid JSON Schema."""
    validators.validator_for(schema).check_schema(schema)


#: Keywords the streaming check decides in full (with annotations that decide nothing).
_STREAMED = frozenset(
    {
        "type", "enum", "const", "properties", "required", "additionalProperties",
        "patternProperties", "items", "prefixItems", "maxItems", "minItems", "maxProperties",
        "minProperties", "maxLength", "minLength", "pattern", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "allOf", "anyOf", "$ref", "$defs",
        "definitions", "format", "title", "description", "default", "examples", "$schema",
        "$id", "$comment", "deprecated", "readOnly", "writeOnly", "propertyNames",
        "multipleOf", "dependentRequired",
    }
)  # fmt: skip


def covers(schema: Any) -> bool:
    """Whether the streaming check decides everything ``schema`` says (local refs only)."""
    stack = [schema]
    while stack:
        s = stack.pop()
        if isinstance(s, bool):
            continue
        if not isinstance(s, dict) or not set(s) <= _STREAMED:
            return False
        if isinstance(s.get("$ref"), str) and not s["$ref"].startswith("#"):
            return False
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if isinstance(s.get(key), bool):
                return False
        values = [s["const"]] if "const" in s else list(s.get("enum") or [])
        if any(isinstance(v, dict | list) for v in values):
            return False  # a container's value is only known whole
        for key in ("properties", "patternProperties", "$defs", "definitions"):
            if isinstance(s.get(key), dict):
                stack.extend(s[key].values())
        for key in ("allOf", "anyOf", "prefixItems"):
            if isinstance(s.get(key), list):
                stack.extend(s[key])
        for key in ("additionalProperties", "items", "propertyNames"):
            sub = s.get(key)
            if isinstance(sub, list):
                stack.extend(sub)
            elif sub is not None:
                stack.append(sub)
    return True


def schema_strings(schema: Any) -> frozenset[str]:
    """Every string in a schema, keys included: the names a reason may show."""
    out: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            out.update(k for k in node if isinstance(k, str))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            out.add(node)
    return frozenset(out)


def json_path(path: Sequence[Any], known: frozenset[str] | None = None) -> str:
    """``$.items[3].price``.  A key the schema does not name is shown as ``[*]``:
    keys come from the document and may be personal data."""
    out = "$"
    for part in path:
        out = path_step(out, part if isinstance(part, int) else str(part), known)
    return out


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def describe(error: ValidationError, known: frozenset[str] | None = None) -> str:
    """A reason for a schema violation that names the path and keyword, not the value."""
    where = json_path(error.absolute_path, known)
    keyword = str(error.validator)
    expected: Any = error.validator_value
    instance = error.instance
    if keyword == "type":
        return f"{where}: expected {show(expected)}, got {_json_type(instance)}"
    if keyword == "required" and isinstance(instance, dict):
        missing = [r for r in expected if r not in instance]
        names = ", ".join(repr(m) for m in missing)
        return f"{where}: missing required propert{'y' if len(missing) == 1 else 'ies'} {names}"
    if keyword == "enum":
        return f"{where}: expected one of {show(expected)}"
    if keyword == "const":
        return f"{where}: expected {show(expected)}"
    if keyword in ("additionalProperties", "unevaluatedProperties") and expected is False:
        return f"{where}: properties not allowed by {keyword}"
    if isinstance(expected, (int, float, str, bool)) and not isinstance(expected, dict):
        return f"{where}: violates {keyword} {show(expected)}"
    return f"{where}: violates {keyword}"


class SchemaCheck:
    type = "schema"
    blocking = False

    def __init__(
        self,
        spec: SchemaSpec,
        on_error: str,
        schema: Any,
        registry: Any = None,
    ) -> None:
        self.id = spec.id
        self.action = Action(spec.action)
        self.on_error = spec.on_error or on_error
        self.incremental = spec.release == "incremental"
        self.extract = spec.extract
        self.trailing_commas = "trailing_commas" in spec.repairs
        self.drop_additional = "additional_properties" in spec.repairs
        self.schema = schema
        self.known = schema_strings(schema)
        self.complete = covers(schema)
        cls = validators.validator_for(schema)
        # The keywords of the schema's draft.
        self.keywords = frozenset(cls.VALIDATORS)
        kwargs: dict[str, Any] = {"format_checker": cls.FORMAT_CHECKER}
        if registry is not None:
            kwargs["registry"] = registry
        self.validator: jsonschema.protocols.Validator = cls(schema, **kwargs)
        checker = cls.FORMAT_CHECKER
        self.conforms: Callable[[Any, str], bool] = checker.conforms
        self._resolver = self.validator._resolver if hasattr(self.validator, "_resolver") else None

    def resolve(self, ref: str) -> Any:
        """The schema a ``$ref`` names, or None if it cannot be had here."""
        try:
            if self._resolver is not None:
                return self._resolver.lookup(ref).contents
        except Exception:
            return None
        return None

    def session(self) -> Session:
        return _SchemaSession(self)

    def render(self, hit: Hit, context: RunContext) -> str:
        return ""  # text around the extracted JSON is removed

    def outcome(self, hit: Hit) -> str:
        return "removed" if hit.action is Action.REPAIR else done(hit.action)

    def violation(self, start: int, end: int, what: str) -> Hit:
        hit = Hit(self, start, end, what, kind="whole")
        # A violation is never repaired: there is no data to invent.
        hit.action = Action.FLAG if self.action is Action.FLAG else Action.BLOCK
        return hit

    def judge(self, text: str, at: int) -> list[Hit]:
        """The authority: ``jsonschema`` on the complete document.

        Past Python's recursion limit (thousands of levels) neither ``json`` nor
        ``jsonschema`` can look; the streaming check then decides alone if it
        covers every keyword of the schema, and the document is blocked if not.
        """
        try:
            document = json.loads(text)
            error = best_match(self.validator.iter_errors(document))
        except json.JSONDecodeError as exc:
            what = f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            return [self.violation(at, at, what)]
        except RecursionError:
            if self.complete:
                return []
            return [self.violation(at, at, "$: nested too deeply to validate against the schema")]
        if error is None:
            return []
        return [self.violation(at, at, describe(error, self.known))]


_NEVER = 1 << 62


class _SchemaSession:
    """The document parsed and checked as it arrives; jsonschema at the end."""

    __slots__ = (
        "_check",
        "_doc",
        "_done",
        "_end",
        "_extracting",
        "_limit",
        "_parts",
        "_repaired",
        "_scan",
        "barrier",
        "hold",
    )

    capped = False
    scans = False

    def __init__(self, check: SchemaCheck) -> None:
        self._check = check
        self._scan = JsonScan(
            check.schema,
            resolve=check.resolve,
            known=check.known,
            conforms=check.conforms,
            extract=check.extract,
            trailing_commas=check.trailing_commas,
            drop_additional=check.drop_additional,
            keywords=check.keywords,
        )
        self._repaired = 0  # repairs of the parser already reported
        # With `action: repair` and `extract`, text around the JSON is removed.
        self._extracting = check.action is Action.REPAIR and check.extract
        self._doc: tuple[int, int, str] | None = None  # the document as judged: start, end, text
        self._parts: list[str] = []  # the output so far
        self._limit = BLOCK  # (see _pieces)
        self._end = 0
        self._done = False  # a violation was found: nothing more to check
        self.hold = 0
        # What may be released: nothing before the end with `release: on_complete`.
        self.barrier = 0

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        start = self._end
        parts = self._parts
        if len(parts) >= self._limit:
            self._limit = join_tail(parts, self._limit)
        parts.append(chunk)
        self._end += len(chunk)
        if self._done:
            return ()
        had_start = self._scan.start is not None
        try:
            self._scan.feed(chunk, start)
        except Violation as v:
            self._done = True
            self.hold = _NEVER
            return [self._check.violation(v.start, v.end, v.reason)]
        scan = self._scan
        out = self._new_repairs() if len(scan.repairs) != self._repaired else []
        if self._extracting and not had_start and scan.start is not None and scan.start > 0:
            out.append(self._removal(0, scan.start, "text before the JSON"))
        if self._extracting and (scan.start is None or scan.done):
            # Text before the JSON, or after it, is still to be removed.
            self.hold = 0 if scan.start is None else (scan.end or 0)
        else:
            self.hold = scan.token_start
        if self._check.incremental:
            self.barrier = self.hold
        return out

    def _removal(self, start: int, end: int, what: str) -> Hit:
        hit = Hit(self._check, start, end, what)
        hit.action = Action.REPAIR
        return hit

    def _new_repairs(self) -> list[Hit]:
        made = self._scan.repairs
        if len(made) == self._repaired:
            return []
        fresh = made[self._repaired :]
        self._repaired = len(made)
        return [self._removal(s, e, what) for s, e, what in fresh]

    def finish(self, buf: str, base: int) -> Sequence[Hit]:
        end = self._end
        self.hold = self.barrier = _NEVER
        if self._done:
            return ()
        scan = self._scan
        try:
            scan.finish(end)
        except Violation as v:
            return [self._check.violation(v.start, v.end, v.reason)]
        out = self._new_repairs()
        text = "".join(self._parts)
        self._parts, self._limit = [], BLOCK
        doc_start = scan.start or 0
        doc_end = scan.end if scan.end is not None else end
        # The authority sees the document as repaired by this check.
        pieces, pos = [], doc_start
        for s, e, _ in sorted(scan.repairs):  # (a trailing comma may sit in a dropped value)
            if s > pos:
                pieces.append(text[pos:s])
            pos = max(pos, e)
        pieces.append(text[pos:doc_end])
        judged = self._check.judge("".join(pieces), end)
        if judged:
            return judged
        self._doc = (doc_start, doc_end, text[doc_start:doc_end])
        if self._extracting and doc_end < end:
            out.append(self._removal(doc_end, end, "text after the JSON"))
        return out

    def force(self, buf: str, base: int, upto: int) -> Sequence[Hit]:
        return ()

    # -- where the numbers are: a repair there writes a JSON string ---------------
    def record_numbers(self) -> None:
        """Keep the spans of the numbers in the document (until :meth:`forget`)."""
        self._scan.numbers = {}

    def is_number(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` is a whole number of the document (a JSON value
        outside any string), as far as it has been read."""
        numbers = self._scan.numbers
        return numbers is not None and (start, end) in numbers

    def forget(self, before: int) -> None:
        """Numbers that end at or before ``before`` will not be asked about again."""
        numbers = self._scan.numbers
        while numbers:
            span = next(iter(numbers))
            if span[1] > before:
                break
            del numbers[span]

    def judge_repaired(self, applied: Sequence[Applied]) -> list[Hit]:
        """The schema sees the document as the output shows it: when another check
        repaired text inside it (a masked e-mail address in a string), judge again."""
        if self._doc is None:
            return []
        start, end, text = self._doc
        inside = [a for a in applied if start <= a.start and a.end <= end]
        if all(a.check_id == self._check.id for a in inside):
            return []  # only this check's own repairs: already judged
        pieces, pos = [], start
        for a in inside:
            pieces.append(text[pos - start : a.start - start])
            pieces.append(a.replacement)
            pos = a.end
        pieces.append(text[pos - start :])
        return self._check.judge("".join(pieces), self._end)


__all__ += ["SchemaError", "check_schema"]
