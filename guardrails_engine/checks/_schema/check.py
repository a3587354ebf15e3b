"""The ``schema`` check: the whole output must be JSON valid against a schema.

This check holds its text until the end of the output (``release:
on_complete``); reasons name the JSON path and the keyword, never a value from
the document.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import jsonschema
import pydantic
import yaml
from jsonschema import validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema_specifications import REGISTRY as SPECIFICATIONS  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

from ..._common.files import MAX_FILE_BYTES as MAX_SCHEMA_FILE_BYTES
from ..._common.files import FileRefused as SchemaLoadError
from ..._common.files import read_confined_text
from ..._common.model import Action, done
from ..._common.pieces import BLOCK, join_tail
from ..._common.trust import TRUST_ENV, UntrustedModule, import_trusted
from ..._spec.config import SchemaSpec
from ..._spec.reading import ReadValues
from .._base import Applied, Check, Hit, RunContext, Session
from .dialect import backtracking_patterns, check_schema, extended, unreadable_pattern_keys
from .jsonstream import JsonScan, Violation, render_path, show
from .keywords import DUPLICATE
from .state import DEADLINE

__all__ = [
    "MAX_SCHEMA_FILE_BYTES",
    "TRUST_ENV",
    "LoadedSchema",
    "SchemaCheck",
    "SchemaLoadError",
    "json_path",
    "load_schema",
]

#: The environment variable that adds trusted modules (comma-separated) for ``model:``.

_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


#: The largest schema file read (a ``schema_file`` or a file a ``$ref`` names), in bytes.

#: Keywords that name another schema by URI.
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


class _Refused(Exception):
    """Raised by the registry's retrieve function: a URI that is never read."""


@dataclass(frozen=True, slots=True)
class LoadedSchema:
    """A schema with everything its ``$ref``s name, read once at load.

    ``registry`` holds the local files the schema refers to and never retrieves
    anything else; ``targets`` maps each schema object holding a ``$ref`` (by
    ``id``) to the schema it names, resolved against its own base URI.
    """

    schema: Any
    registry: Registry[Any]
    targets: Mapping[int, Any]
    #: The documents read for the ``$ref``s (their names may show in reasons).
    documents: tuple[Any, ...] = ()


def _model_schema(name: str, trusted: Sequence[str]) -> Any:
    try:
        obj = import_trusted(name, trusted)
    except UntrustedModule as exc:
        raise SchemaLoadError(str(exc)) from None
    if not (isinstance(obj, type) and issubclass(obj, pydantic.BaseModel)):
        raise SchemaLoadError(f"{name} is not a pydantic model")
    return obj.model_json_schema()


class _NoAliases(ReadValues):
    """YAML without aliases: a schema file cannot make a small file a huge tree."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not allowed in a schema file")
        return super().compose_node(parent, index)


def read_confined(path: Path, folder: Path) -> Any:
    """The JSON or YAML document in ``path``, which must be a regular file inside
    ``folder`` (after resolving symlinks), at most :data:`MAX_SCHEMA_FILE_BYTES`.

    :raises OSError: if it cannot be read.
    :raises SchemaLoadError: if it is outside the folder, not a regular file, too
        large, or neither JSON nor YAML (the message names the path only).
    """
    text = read_confined_text(path, folder)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        pass
    try:
        return yaml.load(text, Loader=_NoAliases)
    except (yaml.YAMLError, RecursionError):
        raise SchemaLoadError(f"{path} is neither JSON nor YAML") from None


def _local_path(uri: str, folder: Path, here: Path) -> Path:
    """The file a ``$ref``'s URI names (relative ones from ``here``).

    :raises _Refused: if it is not a local file.
    """
    split = urlsplit(uri)
    if (split.scheme not in ("", "file")) or split.netloc not in ("", "localhost"):
        raise _Refused(f"$ref {uri!r} is not local: remote references are never fetched")
    path = Path(unquote(split.path))
    return path if path.is_absolute() else here / path


def load_schema(
    spec: SchemaSpec, base_dir: Path | None, trusted_modules: Sequence[str] = ()
) -> LoadedSchema:
    """The schema a spec names (inline, read from its file, or a pydantic model's),
    with the local files its ``$ref``s name, all read now and never again.

    Files are read only inside ``base_dir`` (the policy's folder; default: the
    current directory), remote references are refused, and a model is imported
    only from ``trusted_modules``.

    :raises OSError: if a file cannot be read.
    :raises SchemaLoadError: for anything else that stops the schema loading.
    :raises ImportError: if a trusted model's module cannot be imported.
    """
    folder = (base_dir if base_dir is not None else Path.cwd()).resolve()
    here = folder
    if spec.model is not None:
        schema = _model_schema(spec.model, trusted_modules)
    elif spec.schema_file is not None:
        path = Path(spec.schema_file)
        if not path.is_absolute():
            path = (base_dir if base_dir is not None else Path.cwd()) / path
        schema = read_confined(path, folder)
        here = path.parent
    else:
        schema = spec.schema_
    check_schema(schema)
    for where, key in unreadable_pattern_keys(schema):
        # (A file's strings are not repeated: its key is named by where it is.)
        what = repr(key) if spec.schema_ is not None else f"at {json_path(where)}"
        raise SchemaLoadError(
            f"patternProperties: the pattern {what} is not supported: Python's re cannot "
            "read it (a Unicode property such as \\p{Letter} is supported in `pattern` only)"
        )
    for where, pattern, why in backtracking_patterns(schema):
        what = repr(pattern) if spec.schema_ is not None else "the pattern"
        raise SchemaLoadError(
            f"{json_path(where)}: {what} may backtrack catastrophically ({why}); "
            "rewrite it without nested or overlapping repeats"
        )
    return _resolve_refs(schema, folder, here, inline=spec.schema_ is not None)


def _resolve_refs(schema: Any, folder: Path, here: Path, *, inline: bool) -> LoadedSchema:
    """Follow every ``$ref`` now: read the local files named, refuse the rest."""
    default = specification_with(
        schema.get("$schema", "") if isinstance(schema, dict) else "", default=DRAFT202012
    )
    fetched: dict[str, Any] = {}

    def retrieve(uri: str) -> Resource[Any]:
        try:
            contents = read_confined(_local_path(uri, folder, here), folder)
        except (OSError, SchemaLoadError) as exc:
            raise _Refused(f"$ref {uri!r}: {_os_reason(exc)}") from None
        fetched[uri] = contents
        return Resource.from_contents(contents, default_specification=default)

    registry: Registry[Any] = Registry(retrieve=retrieve).with_resources(METASCHEMAS)  # type: ignore[call-arg]
    root = default.create_resource(schema)
    targets: dict[int, Any] = {}
    seen: set[int] = set()
    stack: list[tuple[Resource[Any], Any]] = [(root, registry.resolver_with_root(root))]
    while stack:
        resource, resolver = stack.pop()
        contents = resource.contents
        if id(contents) in seen:
            continue
        seen.add(id(contents))
        if isinstance(contents, dict):
            for keyword in _REF_KEYWORDS:
                ref = contents.get(keyword)
                if not isinstance(ref, str):
                    continue
                try:
                    resolved = resolver.lookup(ref)
                except Unresolvable as exc:
                    refused = _refusal(exc)
                    if refused is not None:
                        raise SchemaLoadError(refused) from None
                    if keyword != "$ref":
                        continue  # a dynamic reference is resolved when validating
                    # (A file's strings are not repeated.)
                    what = f"$ref {ref!r}" if inline else "a $ref of the schema's files"
                    raise SchemaLoadError(f"{what} cannot be resolved") from None
                if keyword == "$ref":
                    targets[id(contents)] = resolved.contents
                target = Resource.from_contents(resolved.contents, default_specification=default)
                stack.append((target, resolved.resolver))
        for sub in resource.subresources():
            stack.append((sub, resolver.in_subresource(sub)))
    resources = [
        (uri, Resource.from_contents(c, default_specification=default))
        for uri, c in fetched.items()
    ]
    final: Registry[Any] = Registry(retrieve=_refuse).with_resources(  # type: ignore[call-arg]
        [*METASCHEMAS, *resources]
    )
    # The metaschemas reached name properties a reason may show.
    bundled = [r.contents for _, r in METASCHEMAS if id(r.contents) in seen]
    return LoadedSchema(schema, final, targets, (*fetched.values(), *bundled))


#: The official metaschemas (drafts 3 to 2020-12, with 2019-09's and 2020-12's
#: vocabularies), from jsonschema's bundled copies: a ``$ref`` to one resolves offline,
#: as jsonschema resolves it, never fetched.
METASCHEMAS: tuple[tuple[str, Resource[Any]], ...] = tuple(
    (uri, SPECIFICATIONS[uri]) for uri in SPECIFICATIONS
)


def _refuse(uri: str) -> Resource[Any]:
    raise _Refused(f"$ref {uri!r} was not read when the policy loaded")


def _refusal(exc: BaseException) -> str | None:
    """The reason a retrieval was refused, if that is why ``exc`` was raised."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _Refused):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, SchemaLoadError):
        return f"{exc.strerror or exc.__class__.__name__}: {exc.filename}"
    return str(exc)


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


def covers(schema: Any, legacy_refs: bool = False) -> bool:
    """Whether the streaming check decides everything ``schema`` says (local refs only)."""
    stack = [schema]
    while stack:
        s = stack.pop()
        if isinstance(s, bool):
            continue
        if legacy_refs and isinstance(s, dict) and "$ref" in s:
            s = {"$ref": s["$ref"]}  # (draft 7 and before ignore the rest)
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
    return render_path([p if isinstance(p, int) else str(p) for p in path], known)


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


class SchemaCheck(Check):
    type = "schema"
    blocking = False
    json_output = True

    def __init__(
        self, spec: SchemaSpec, on_error: str, loaded: LoadedSchema, *, stop: int | None = None
    ) -> None:
        self.id = spec.id
        #: Read the output only up to here: past it a length limit decides
        #: (see ``_json_stop`` in _policy/registry.py).
        self.stop = _NEVER if stop is None else stop
        self.action = Action(spec.action)
        self.on_error = spec.on_error or on_error
        self.incremental = spec.release == "incremental"
        self.extract = spec.extract
        self.trailing_commas = "trailing_commas" in spec.repairs
        self.drop_additional = "additional_properties" in spec.repairs
        #: `duplicate_names: reject` (default): a name given twice is a violation.
        self.reject_duplicates = spec.duplicate_names == "reject"
        schema = self.schema = loaded.schema
        self.targets = loaded.targets
        self.known = schema_strings([schema, *loaded.documents])
        cls = validators.validator_for(schema)
        # Drafts before 2019-09 ignore every keyword beside a `$ref`.
        self.legacy_refs = cls in _LEGACY_VALIDATORS
        self.complete = covers(schema, self.legacy_refs)
        # The keywords of the schema's draft.
        self.keywords = frozenset(cls.VALIDATORS)
        # `format: assert` (default): a guardrail wants formats checked, though
        # 2019-09 and later make them annotations; `annotate` follows the spec.
        checker = cls.FORMAT_CHECKER if spec.format == "assert" else None
        self.validator: jsonschema.protocols.Validator = extended(cls)(
            schema, format_checker=checker, registry=loaded.registry
        )
        self.conforms: Callable[[Any, str], bool] | None = (
            checker.conforms if checker is not None else None
        )

    def resolve(self, node: Any) -> Any:
        """The schema that the ``$ref`` of ``node`` names, or None (left to the final pass)."""
        return self.targets.get(id(node))

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
            # A name given twice: refused (`duplicate_names: reject`), or the last value
            # counts, as json (and so jsonschema) reads it.
            hook = _unique_names if self.reject_duplicates else None
            document = json.loads(text, object_pairs_hook=hook)
            error = best_match(self.validator.iter_errors(document))
        except _Repeated:
            return [self.violation(at, at, self._repeated(text))]
        except json.JSONDecodeError as exc:
            what = f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            return [self.violation(at, at, what)]
        except ValueError:  # json: an integer past Python's limit on digits
            what = f"a number with more than {sys.get_int_max_str_digits():,} digits"
            return [self.violation(at, at, what)]
        except ArithmeticError:  # jsonschema: multipleOf of a number too large for a float
            what = "a number too large to check against multipleOf"
            return [self.violation(at, at, what)]
        except RecursionError:
            if self.complete:
                return []
            return [self.violation(at, at, "$: nested too deeply to validate against the schema")]
        if error is None:
            return []
        return [self.violation(at, at, describe(error, self.known))]

    def _repeated(self, text: str) -> str:
        """The reason for a name given twice in ``text``: the parser says where."""
        scan = JsonScan(
            True, resolve=self.resolve, known=self.known, conforms=None, extract=False,
            reject_duplicates=True,
        )  # fmt: skip
        try:
            scan.feed(text, 0)
        except Violation as v:
            return v.reason
        return f"$: {DUPLICATE}"  # (not reached: json and the parser read names alike)


class _Repeated(ValueError):
    """A property name given twice in one object (``duplicate_names: reject``)."""


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook`` that refuses a name given twice."""
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Repeated
    return out


_NEVER = 1 << 62


_LEGACY_VALIDATORS = (
    validators.Draft3Validator,
    validators.Draft4Validator,
    validators.Draft6Validator,
    validators.Draft7Validator,
)


_R = TypeVar("_R")


class _SchemaSession(Session):
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
    holds_release = True
    judges_output = True
    knows_numbers = True

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
            legacy_refs=check.legacy_refs,
            reject_duplicates=check.reject_duplicates,
        )
        self._repaired = 0  # repairs of the parser already reported
        # With `action: repair` and `extract`, text around the JSON is removed.
        self._extracting = check.action is Action.REPAIR and check.extract
        self._doc: tuple[int, int, str] | None = None  # the document as judged: start, end, text
        self._parts: list[str] = []  # the output so far
        self._limit = BLOCK  # (see _common/pieces.py)
        self._end = 0
        self._done = False  # a violation was found: nothing more to check
        self.hold = 0
        # What may be released: nothing before the end with `release: on_complete`.
        self.barrier = 0

    def _bounded(self, work: Callable[..., _R], *args: Any) -> _R:
        """``work(*args)`` with this session's deadline where jsonschema's keywords and
        the ``regex`` searches look for it (:data:`.state.DEADLINE`)."""
        token = DEADLINE.set(self.deadline)
        try:
            return work(*args)
        finally:
            DEADLINE.reset(token)

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        return self._bounded(self._fed, chunk)

    def _fed(self, chunk: str) -> Sequence[Hit]:
        start = self._end
        stop = self._check.stop
        if start + len(chunk) >= stop:
            # Past a length limit: the length check decides, the rest is not read
            # (the same whatever the chunks), and nothing more is found here.
            if start >= stop:
                return ()
            chunk = chunk[: stop - start]
            found = self._feed(chunk, start)
            self._done = True
            self.hold = _NEVER
            return found
        return self._feed(chunk, start)

    def _feed(self, chunk: str, start: int) -> Sequence[Hit]:
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
            # Repairs made in this chunk before the violation was sure are found
            # too, as they would be in smaller chunks.
            return [*self._new_repairs(), self._check.violation(v.start, v.end, v.reason)]
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
        # (Held until the work is done: a check that fails here, or runs out of time,
        # has vouched for nothing past its barrier.)
        found = self._bounded(self._finish)
        self.hold = self.barrier = _NEVER
        return found

    def _finish(self) -> Sequence[Hit]:
        end = self._end
        if self._done:
            return ()
        scan = self._scan
        try:
            scan.finish(end)
        except Violation as v:
            return [*self._new_repairs(), self._check.violation(v.start, v.end, v.reason)]
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
        return self._bounded(self._check.judge, "".join(pieces), self._end)


__all__ += ["SchemaError", "check_schema"]
