"""The ``schema`` check: the whole output must be JSON valid against a schema.

This check holds its text until the end of the output (``release:
on_complete``); reasons name the JSON path and the keyword, never a value from
the document.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from ._check import Hit, RunContext, Session
from ._config import SchemaSpec
from ._model import Action, done

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
    """The schema a spec names, read from its file if it has one.

    :raises OSError: if the file cannot be read.
    :raises ValueError: if it is neither JSON nor YAML.
    """
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


def check_schema(schema: Any) -> None:
    """:raises jsonschema.exceptions.SchemaError: if ``schema`` is not a valid JSON Schema."""
    validators.validator_for(schema).check_schema(schema)


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
        if isinstance(part, int):
            out += f"[{part}]"
        elif known is not None and part not in known:
            out += "[*]"
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(error: ValidationError, known: frozenset[str] | None = None) -> str:
    """A reason for a schema violation that names the path and keyword, not the value."""
    where = json_path(error.absolute_path, known)
    keyword = str(error.validator)
    expected: Any = error.validator_value
    instance = error.instance
    if keyword == "type":
        return f"{where}: expected {_short(expected)}, got {_json_type(instance)}"
    if keyword == "required" and isinstance(instance, dict):
        missing = [r for r in expected if r not in instance]
        names = ", ".join(repr(m) for m in missing)
        return f"{where}: missing required propert{'y' if len(missing) == 1 else 'ies'} {names}"
    if keyword == "enum":
        return f"{where}: expected one of {_short(expected)}"
    if keyword == "const":
        return f"{where}: expected {_short(expected)}"
    if keyword in ("additionalProperties", "unevaluatedProperties") and expected is False:
        return f"{where}: properties not allowed by {keyword}"
    if isinstance(expected, (int, float, str, bool)) and not isinstance(expected, dict):
        return f"{where}: violates {keyword} {_short(expected)}"
    return f"{where}: violates {keyword}"


class SchemaCheck:
    type = "schema"
    blocking = False

    def __init__(self, spec: SchemaSpec, on_error: str, schema: Any) -> None:
        self.id = spec.id
        self.action = Action(spec.action)
        self.on_error = spec.on_error or on_error
        self.known = schema_strings(schema)
        cls = validators.validator_for(schema)
        self.validator: jsonschema.protocols.Validator = cls(
            schema, format_checker=cls.FORMAT_CHECKER
        )

    def session(self) -> Session:
        return _SchemaSession(self)

    def _hit(self, end: int, what: str) -> Hit:
        return Hit(self, 0, end, what, kind="whole")

    def render(self, hit: Hit, context: RunContext) -> str:
        raise TypeError("a schema check does not repair")

    def outcome(self, hit: Hit) -> str:
        return done(self.action)

    def judge(self, text: str) -> list[Hit]:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            return [
                self._hit(
                    len(text), f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
                )
            ]
        error = best_match(self.validator.iter_errors(document))
        if error is None:
            return []
        return [self._hit(len(text), describe(error, self.known))]


class _SchemaSession:
    __slots__ = ("_check", "_parts", "hold")

    capped = False
    scans = False

    def __init__(self, check: SchemaCheck) -> None:
        self._check = check
        self._parts: list[str] = []
        self.hold = 0

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        self._parts.append(chunk)
        return ()

    def finish(self, buf: str, base: int) -> Sequence[Hit]:
        text = "".join(self._parts)
        self._parts = [text]
        self.hold = 1 << 62
        return self._check.judge(text)

    def force(self, buf: str, base: int, upto: int) -> Sequence[Hit]:
        return ()


__all__ += ["SchemaError", "check_schema"]
