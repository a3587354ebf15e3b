"""JSON checked as it streams: a push parser and an incremental schema checker.

The parser reads each character once, keeps a stack of open containers (no
recursion, so 10,000 levels are fine) and the current token, never the
document.  The checker follows the schema alongside: it reports a violation
as soon as the part of the schema that a value touches can be decided (a
wrong type when a value starts, a key that ``additionalProperties: false``
forbids when the key ends, ``enum``/``pattern``/bounds when a scalar ends,
``maxLength``/``maxItems``/``maxProperties`` as soon as they are exceeded,
``required`` when an object closes).  It only ever reports what ``jsonschema``
would also report: keywords it cannot decide early are left to the final
validation of the whole document, which stays the authority.

A property named twice counts by its last occurrence (as ``json.loads`` and so
``jsonschema`` read it): a violation in the value of a property is *pending*
for that (object, name) until the object closes, dropped if the name comes
again, and reported at the close otherwise.  What the set of names decides
(``maxProperties``, ``required``, ``propertyNames``, ``additionalProperties:
false``) counts each name once and is decided at once.

``anyOf``/``oneOf`` are followed branch by branch: a violation inside a
branch kills the branch, and the group is violated when no branch is left.
"""

from __future__ import annotations

import json
import re
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import regex

from ..._core.pieces import BLOCK, join_tail

__all__ = ["PATH_ENDS", "JsonScan", "Violation", "path_step", "render_path", "show"]

_WS = regex.compile(r"[ \t\n\r]*")
_PLAIN = regex.compile(r'[^"\\\x00-\x1f]*')
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?\Z")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

#: Python reads integers of at most this many digits (``sys.get_int_max_str_digits``).
_MAX_DIGITS = sys.get_int_max_str_digits() or 4300

_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")

# Parser states.
_VALUE, _KEY_OR_END, _KEY, _COLON, _AFTER, _STRING, _NUM, _LIT, _DONE, _BEFORE = range(10)


def _ws_end(text: str, i: int) -> int:
    m = _WS.match(text, i)
    return i if m is None else m.end()


class Violation(Exception):
    """The document cannot be valid: where it was seen and why."""

    def __init__(self, start: int, end: int, reason: str) -> None:
        super().__init__(reason)
        self.start, self.end, self.reason = start, end, reason


#: A JSON path, built only when a reason is written: ``(parent, key or index)``, the
#: document itself is ``None``.  Each level costs one pair, never a copy of its parent.
_Path = tuple[Any, str | int] | None


class _NameOf:
    """Where a property name is checked: the object, shown with ``(property name)``."""

    __slots__ = ("path",)

    def __init__(self, path: _Path) -> None:
        self.path = path


_Where = _Path | _NameOf

#: A reason shows at most this many path segments at each end of a longer path.
PATH_ENDS = 10


class _Group:
    """An ``anyOf``/``oneOf`` being followed: which branches are still alive."""

    __slots__ = ("alive", "born", "guard", "keyword", "kids", "ok_at", "path")

    def __init__(self, n: int, guard: _Guard | None, keyword: str, path: _Path, born: int) -> None:
        self.alive = [True] * n
        #: The member serial when the group was made (see JsonScan._violate).
        self.born = born
        self.guard = guard
        self.keyword = keyword
        self.path = path
        self.kids = [False] * n  # whether a group was made inside each branch
        self.ok_at = -1  # the epoch at which the branches above were last seen alive
        if guard is not None:
            guard[0].kids[guard[1]] = True


_Guard = tuple[_Group, int]
# A schema that applies to the current value, and the branch it belongs to.
_Ctx = tuple[Mapping[str, Any] | bool, "_Guard | None"]


def show(value: Any, limit: int = 60) -> str:
    """A value from the schema, as JSON, shortened (never a value from the document)."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def path_step(parent: str, part: str | int, known: frozenset[str] | None) -> str:
    """``parent`` extended by a key or index: ``$.items[3]``.  A key the schema does not
    name (``known``) is shown as ``[*]``: keys come from the document and may be personal."""
    if isinstance(part, int):
        return f"{parent}[{part}]"
    if known is not None and part not in known:
        return f"{parent}[*]"
    return f"{parent}.{part}" if part.isidentifier() else f"{parent}[{json.dumps(part)}]"


def render_path(steps: Sequence[str | int], known: frozenset[str] | None) -> str:
    """``$.items[3].price``, with the middle of a path longer than ``2 * PATH_ENDS``
    segments left out: ``$.a.b...(39,990 more)...x``."""
    if len(steps) <= 2 * PATH_ENDS:
        out = "$"
        for step in steps:
            out = path_step(out, step, known)
        return out
    head = render_path(steps[:PATH_ENDS], known)
    tail = "$"
    for step in steps[-PATH_ENDS:]:
        tail = path_step(tail, step, known)
    return f"{head}...({len(steps) - 2 * PATH_ENDS:,} more)...{tail[1:].removeprefix('.')}"


def _steps(path: _Path) -> list[str | int]:
    steps: list[str | int] = []
    while path is not None:
        path, step = path
        steps.append(step)
    steps.reverse()
    return steps


def _json_type(kind: str) -> tuple[str, ...]:
    return ("number", "integer") if kind == "number" else (kind,)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality as jsonschema sees it: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b)


class _Frame:
    __slots__ = (
        "comma",
        "comma_open",
        "count",
        "ctxs",
        "depth",
        "drop",
        "key",
        "keys",
        "kind",
        "member",
        "path",
        "pending",
        "pending_drop",
        "present",
        "required",
        "start",
        "value_start",
        "watch",
    )

    def __init__(self, kind: str, ctxs: list[_Ctx], path: _Path, start: int, depth: int) -> None:
        self.kind = kind
        self.ctxs = ctxs
        self.path = path
        self.start = start
        self.depth = depth  # (the number of frames around it)
        self.count = 0  # elements, or distinct property names kept
        self.keys: set[str] | None = None  # the property names so far (objects)
        # The member being read (objects): its serial (-1: none, a name is being
        # read), its name, and where its value starts.
        self.member = -1
        self.key = ""
        self.value_start = start
        # Violations in the values of members, pending until the object closes
        # (by name, in the order of their values).
        self.pending: OrderedDict[str, _Held] | None = None
        self.comma = -1  # the last comma between members
        self.comma_open = False  # a repair may still remove it
        self.drop = -1  # start of a member being dropped (repair), or -1
        self.pending_drop: tuple[int, int] | None = None  # a dropped first member
        # Required keys still missing, per context (bounded by the schema).
        self.required: list[set[str]] = [
            set(s.get("required", ())) if type(s) is dict or isinstance(s, Mapping) else set()
            for s, _ in ctxs
        ]
        # Keys that ``dependentRequired`` names, and those of them present so far.
        self.watch: set[str] = set()
        self.present: set[str] = set()
        if kind == "object":
            for s, _ in ctxs:
                for name, needed in _dependent_required(s).items():
                    self.watch.add(name)
                    self.watch.update(needed)


class _Held:
    """Violations pending on one member: dropped if its name comes again."""

    __slots__ = ("entries", "start")

    def __init__(self, start: int) -> None:
        self.start = start  # where the member's value starts
        # (guard, start, end, where, what) by the branch they kill (None: the document).
        self.entries: dict[tuple[int, int] | None, tuple[_Guard | None, int, int, _Where, str]] = {}


def _dependent_required(s: Any) -> Mapping[str, list[str]]:
    """A schema's ``dependentRequired``, if it is well formed (else nothing)."""
    if not (type(s) is dict or isinstance(s, Mapping)):
        return {}
    deps = s.get("dependentRequired")
    if not isinstance(deps, Mapping):
        return {}
    return {
        k: v for k, v in deps.items() if isinstance(v, list) and all(isinstance(x, str) for x in v)
    }


def _not_multiple(value: float, step: float) -> bool | None:
    """jsonschema's ``multipleOf``: whether ``value`` fails it (None: cannot say here)."""
    try:
        if isinstance(step, float):
            quotient = value / step
            try:
                return int(quotient) != quotient
            except OverflowError:
                return (Fraction(value) / Fraction(step)).denominator != 1
        return bool(value % step)
    except (ArithmeticError, ValueError):
        return None  # left to the final validation


class JsonScan:
    """Parse one JSON document pushed in chunks, checking it against a schema.

    ``feed`` raises :class:`Violation` at the first sure violation (syntax or
    schema).  ``start``/``end`` say where the document is once found (with
    ``extract``, the first ``{`` or ``[`` opens it and text around it is
    ignored).
    """

    def __init__(
        self,
        schema: Any,
        *,
        resolve: Callable[[Any], Any],
        known: frozenset[str],
        conforms: Callable[[Any, str], bool] | None,
        extract: bool,
        trailing_commas: bool = False,
        drop_additional: bool = False,
        keywords: frozenset[str] | None = None,
        legacy_refs: bool = False,
    ) -> None:
        #: The keywords of the schema's draft (None: all); a keyword that its
        #: draft does not know is never checked early.
        self._multiple = keywords is None or "multipleOf" in keywords
        self._dependent = keywords is None or "dependentRequired" in keywords
        #: Opt-in repairs: remove a trailing comma; drop a property the schema forbids.
        self._trailing_commas = trailing_commas
        self._drop_additional = drop_additional
        #: Repairs made: (start, end, what); the text in the span is removed.
        self.repairs: list[tuple[int, int, str]] = []
        self._root = schema
        #: Draft 7 and before: a schema with a `$ref` is just that reference.
        self._legacy_refs = legacy_refs
        self._resolve = resolve
        self._known = known
        self._conforms = conforms
        self._extract = extract
        self._state = _BEFORE
        self._stack: list[_Frame] = []
        self._pos = 0
        self.start: int | None = None
        self.end: int | None = None
        # The token being read.
        self._tok_start = 0
        self._tok: list[str] = []
        self._tok_limit = BLOCK  # (see _pieces)
        self._tok_len = 0
        # maxLength limits of the string being read, with their guards.
        self._maxlens: list[tuple[int, _Guard | None]] = []
        self._escape = ""
        self._high = False  # the last character read was an escaped high surrogate
        self._is_key = False
        self._lit = ""
        self._pending_element = False  # a comma in an array: an element must follow
        #: Where the numbers read so far are, if asked for (a dict as an ordered set).
        self.numbers: dict[tuple[int, int], None] | None = None
        self._ctxs: list[_Ctx] = []  # contexts of the value being read
        self._vpath: _Path = None
        # Expansions without anyOf/oneOf, by schema: the same for any guard.
        # (The schema is kept with its entry: an id is only unique while alive.)
        self._flat: dict[int, tuple[Any, tuple[Any, ...]]] = {}
        # Bumped when a branch that holds groups dies (see _alive).
        self._epoch = 0
        # Bumped when an object member starts: a group made since a member started
        # lies inside that member's value (see _violate).
        self._serial = 0
        # Objects whose member's value is being read, innermost last.
        self._scopes: list[_Frame] = []
        # Objects with pending violations, outermost first.
        self._holders: list[_Frame] = []

    @property
    def token_start(self) -> int:
        """Where the token being read starts (or the next position between tokens).

        Never past text that a repair may still remove: a comma that may turn out
        to be trailing, a property being dropped.
        """
        at = self._tok_start if self._state in (_STRING, _NUM, _LIT) else self._pos
        if self._drop_additional:
            for frame in self._stack:
                for p in (frame.drop, frame.pending_drop[0] if frame.pending_drop else -1):
                    if 0 <= p < at:
                        at = p
        if self._stack:
            frame = self._stack[-1]
            if frame.comma_open and 0 <= frame.comma < at:
                at = frame.comma
        if self._holders:
            # A pending violation: nothing from the start of that member's value
            # on is checked yet (the outermost holder's first one starts first).
            pending = self._holders[0].pending
            assert pending
            held = next(iter(pending.values())).start
            if held < at:
                at = held
        return at

    @property
    def done(self) -> bool:
        return self._state == _DONE

    # -- schema contexts --------------------------------------------------------
    def _expand(self, schema: Any, guard: _Guard | None, path: _Path, out: list[_Ctx]) -> None:
        """Add ``schema`` and what applies with it ($ref, allOf, anyOf/oneOf branches)."""
        flat = self._flat.get(id(schema))
        if flat is not None and flat[0] is schema:
            out.extend((s, guard) for s in flat[1])
            return
        first = len(out)
        branched = False
        stack: list[tuple[Any, _Guard | None]] = [(schema, guard)]
        seen: set[tuple[int, int]] = set()  # a $ref cycle adds nothing new
        while stack:
            s, g = stack.pop()
            if s is True or s is None:
                continue
            if s is False or not (type(s) is dict or isinstance(s, Mapping)):
                out.append((s, g))
                continue
            key = (id(s), id(g))
            if key in seen:
                continue
            seen.add(key)
            ref = s.get("$ref")
            if isinstance(ref, str):
                target = self._resolve(s)
                if target is not None:
                    stack.append((target, g))
                if self._legacy_refs:
                    continue  # draft 7 and before ignore every keyword beside a `$ref`
            out.append((s, g))
            for sub in s.get("allOf", ()) if isinstance(s.get("allOf"), list) else ():
                stack.append((sub, g))
            for keyword in ("anyOf", "oneOf"):
                branches = s.get(keyword)
                if isinstance(branches, list) and branches:
                    branched = True
                    group = _Group(len(branches), g, keyword, path, self._serial)
                    for i, b in enumerate(branches):
                        stack.append((b, (group, i)))
        if not branched:
            self._flat[id(schema)] = (schema, tuple(s for s, _ in out[first:]))

    def where(self, where: _Where) -> str:
        """A path as a reason shows it."""
        if isinstance(where, _NameOf):
            return f"{render_path(_steps(where.path), self._known)} (property name)"
        return render_path(_steps(where), self._known)

    def _violate(
        self, guard: _Guard | None, start: int, end: int, where: _Where, what: str
    ) -> None:
        """A violation: of the whole document, or of an ``anyOf``/``oneOf`` branch
        (the reason is written only if the document fails).

        Inside the value of an object's member it is pending (see :meth:`_hold`)
        as soon as it reaches what lies outside that value: a branch of a group
        made before the member started, or the document.  Groups made inside the
        value go with it if the name comes again, so their branches die at once.
        """
        scope = self._scopes[-1] if self._scopes else None
        while guard is not None:
            group, i = guard
            if not group.alive[i]:
                return  # the branch is already dead: nothing more to say
            if scope is not None and group.born < scope.member:
                self._hold(scope, guard, start, end, where, what)
                return
            group.alive[i] = False
            if group.kids[i]:
                self._epoch += 1  # groups inside it die too: cached liveness is stale
            if any(group.alive):
                return
            where, what = group.path, f"matches none of the {group.keyword} alternatives"
            guard = group.guard
        if scope is not None:
            self._hold(scope, None, start, end, where, what)
            return
        raise Violation(start, end, f"{self.where(where)}: {what}")

    def _hold(
        self,
        frame: _Frame,
        guard: _Guard | None,
        start: int,
        end: int,
        where: _Where,
        what: str,
    ) -> None:
        """Keep a violation in the value of ``frame``'s current member until the
        object closes (one per branch it kills: bounded by the schema)."""
        pending = frame.pending
        if pending is None:
            pending = frame.pending = OrderedDict()
        if not pending:
            holders = self._holders
            at = len(holders)
            while at and holders[at - 1].depth > frame.depth:
                at -= 1  # (an object whose name is being checked lies inside it)
            holders.insert(at, frame)
        held = pending.get(frame.key)
        if held is None:
            held = pending[frame.key] = _Held(frame.value_start)
        tag = None if guard is None else (id(guard[0]), guard[1])
        if tag not in held.entries:
            held.entries[tag] = (guard, start, end, where, what)

    def _release_pending(self, frame: _Frame) -> None:
        """``frame`` (an object) closed: its pending violations stand; they are
        violations of its own value now (pending again if that is a member's)."""
        pending = frame.pending
        frame.pending = None
        if not pending:
            return
        assert self._holders[-1] is frame
        self._holders.pop()
        for held in pending.values():
            for guard, start, end, where, what in held.entries.values():
                self._violate(guard, start, end, where, what)

    def _alive(self, guard: _Guard | None) -> bool:
        """Whether a branch and every branch around it are alive.  Each group
        remembers when that was last seen true of the branches around it, so
        nested groups (an ``anyOf`` at every level) cost O(1), not O(depth)."""
        seen = []
        epoch = self._epoch
        while guard is not None:
            group, i = guard
            if not group.alive[i]:
                return False
            if group.ok_at == epoch:
                break
            seen.append(group)
            guard = group.guard
        for group in seen:
            group.ok_at = epoch
        return True

    # -- values -----------------------------------------------------------------
    def _begin(self, kind: str) -> None:
        """A value of this JSON kind starts at ``self._tok_start``: check ``type``.

        Numbers are checked when they end (integer or not is known then).
        """
        start = self._tok_start
        for s, g in self._ctxs:
            if s is False:
                self._violate(g, start, start + 1, self._vpath, "no value is allowed here")
            elif kind != "number":
                self._type(s, g, kind, start, start + 1)
                if kind in ("object", "array"):
                    self._container_values(s, g, kind, start)

    def _container_values(self, s: Any, g: _Guard | None, kind: str, start: int) -> None:
        """``enum``/``const`` on a container: decided now if no allowed value is one."""
        assert type(s) is dict or isinstance(s, Mapping)
        py = dict if kind == "object" else list
        if "const" in s and not isinstance(s["const"], py):
            self._violate(g, start, start + 1, self._vpath, f"expected {show(s['const'])}")
        enum = s.get("enum")
        if isinstance(enum, list) and not any(isinstance(e, py) for e in enum):
            self._violate(g, start, start + 1, self._vpath, f"expected one of {show(enum)}")

    def _type(self, s: Any, g: _Guard | None, kind: str, start: int, end: int) -> None:
        assert type(s) is dict or isinstance(s, Mapping)
        t = s.get("type")
        allowed = [t] if isinstance(t, str) else t if isinstance(t, list) else None
        if allowed is None:
            return
        if kind == "integer":
            ok = "integer" in allowed or "number" in allowed
        elif kind == "number":
            ok = "number" in allowed
        else:
            ok = kind in allowed
        if not ok:
            self._violate(g, start, end, self._vpath, f"expected {show(t)}, got {kind}")

    def _scalar(self, value: Any, kind: str, end: int) -> None:
        start = self._tok_start
        where = self._vpath
        for s, g in self._ctxs:
            if not (type(s) is dict or isinstance(s, Mapping)) or not self._alive(g):
                continue
            if kind == "number":
                integral = isinstance(value, int) or float(value).is_integer()
                self._type(s, g, "integer" if integral else "number", start, end)
            if "enum" in s and isinstance(s["enum"], list):
                if not any(_equal(value, e) for e in s["enum"]):
                    self._violate(g, start, end, where, f"expected one of {show(s['enum'])}")
            if "const" in s and not _equal(value, s["const"]):
                self._violate(g, start, end, where, f"expected {show(s['const'])}")
            if kind == "string":
                self._string_keywords(s, g, value, start, end, where)
            elif kind == "number":
                self._number_keywords(s, g, value, start, end, where)

    def _string_keywords(
        self,
        s: Mapping[str, Any],
        g: _Guard | None,
        value: str,
        start: int,
        end: int,
        where: _Where,
    ) -> None:
        n = len(value)
        if isinstance(s.get("minLength"), int) and n < s["minLength"]:
            self._violate(g, start, end, where, f"violates minLength {s['minLength']}")
        if isinstance(s.get("pattern"), str):
            try:
                ok = re.search(s["pattern"], value) is not None
            except re.error:
                ok = True  # left to the final validation
            if not ok:
                self._violate(g, start, end, where, f"violates pattern {show(s['pattern'])}")
        if isinstance(s.get("format"), str) and self._conforms is not None:
            if not self._conforms(value, s["format"]):
                self._violate(g, start, end, where, f"violates format {show(s['format'])}")

    def _number_keywords(
        self,
        s: Mapping[str, Any],
        g: _Guard | None,
        value: float,
        start: int,
        end: int,
        where: _Where,
    ) -> None:
        for keyword in _BOUNDS:
            bound = s.get(keyword)
            if not isinstance(bound, int | float) or isinstance(bound, bool):
                continue  # (draft 4's boolean exclusive* are left to the final check)
            bad = {
                "minimum": value < bound,
                "maximum": value > bound,
                "exclusiveMinimum": value <= bound,
                "exclusiveMaximum": value >= bound,
            }[keyword]
            if bad:
                self._violate(g, start, end, where, f"violates {keyword} {bound}")
        step = s.get("multipleOf")
        if (
            self._multiple
            and isinstance(step, int | float)
            and not isinstance(step, bool)
            and step > 0
            and _not_multiple(value, step)
        ):
            self._violate(g, start, end, where, f"violates multipleOf {step}")

    def _string_progress(self, start: int, end: int, run: int = 0) -> None:
        """``maxLength`` as soon as it is exceeded.  ``run``: the characters just
        read up to ``end``, unescaped; the span ends after the first character
        past the limit, wherever the chunks were cut."""
        n = self._tok_len
        for limit, g in self._maxlens:
            if n > limit and self._alive(g):
                at = end
                if run:
                    at = end - (n - limit) + 1 if n - limit <= run else end - run + 1
                self._violate(g, start, at, self._vpath, f"violates maxLength {limit}")

    # -- containers -------------------------------------------------------------
    def _open(self, kind: str) -> None:
        stack = self._stack
        stack.append(_Frame(kind, self._ctxs, self._vpath, self._tok_start, len(stack)))

    def _close(self, end: int) -> None:
        frame = self._stack.pop()
        if frame.member >= 0:
            self._scopes.pop()
            frame.member = -1
        if frame.pending:
            self._release_pending(frame)
        for (s, g), missing in zip(frame.ctxs, frame.required, strict=True):
            if not (type(s) is dict or isinstance(s, Mapping)) or not self._alive(g):
                continue
            if frame.kind == "object":
                # Revealed at the closing brace: the span starts there, so text
                # before it may already be out in `release: incremental`.
                if missing:
                    names = ", ".join(repr(m) for m in sorted(missing))
                    names = ("property " if len(missing) == 1 else "properties ") + names
                    self._violate(g, end - 1, end, frame.path, f"missing required {names}")
                if self._dependent and frame.watch:
                    self._dependencies(s, g, frame, end)
                if isinstance(s.get("minProperties"), int) and frame.count < s["minProperties"]:
                    self._violate(
                        g,
                        end - 1,
                        end,
                        frame.path,
                        f"violates minProperties {s['minProperties']}",
                    )
            elif isinstance(s.get("minItems"), int) and frame.count < s["minItems"]:
                self._violate(g, end - 1, end, frame.path, f"violates minItems {s['minItems']}")
        self._after_value(end)

    def _dependencies(self, s: Any, g: _Guard | None, frame: _Frame, end: int) -> None:
        """``dependentRequired``, when the object closes."""
        for name, needed in _dependent_required(s).items():
            if name not in frame.present:
                continue
            for other in needed:
                if other not in frame.present:
                    self._violate(
                        g,
                        end - 1,
                        end,
                        frame.path,
                        f"property {other!r} is required by {name!r} (dependentRequired)",
                    )

    def _member(self, frame: _Frame, key: str, start: int, end: int) -> None:
        """A key ended: what applies to its value, and what the key itself breaks.

        A name given again supersedes its earlier value (the last one counts, as
        ``json.loads`` keeps it): what was pending on that value is dropped.
        What the name alone decides is decided at once, for the object itself.
        """
        if frame.member >= 0:  # the previous member's value is over
            self._scopes.pop()
            frame.member = -1
        keys = frame.keys
        if keys is None:
            keys = frame.keys = set()
        again = key in keys
        if again and frame.pending and frame.pending.pop(key, None) is not None:
            if not frame.pending:
                assert self._holders[-1] is frame
                self._holders.pop()
        self._serial += 1
        path: _Path = (frame.path, key)
        ctxs: list[_Ctx] = []
        if self._drop_additional and self._forbidden(frame, key):
            # Removed from the output (an opt-in repair), at every occurrence: its
            # value is not checked, and it does not count.  With the comma before
            # it, or, for a first member, with the comma after it.
            frame.drop = frame.comma if frame.comma >= 0 else start
        else:
            if not again:
                keys.add(key)
                frame.count += 1
            for (s, g), missing in zip(frame.ctxs, frame.required, strict=True):
                missing.discard(key)
                if not (type(s) is dict or isinstance(s, Mapping)) or not self._alive(g):
                    continue
                mp = s.get("maxProperties")
                if not again and isinstance(mp, int) and frame.count > mp:
                    self._violate(g, start, end, frame.path, f"violates maxProperties {mp}")
                if not again and "propertyNames" in s:
                    self._name(s["propertyNames"], g, key, start, end, frame.path)
                found = s.get("properties")
                props: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
                matched = False
                if key in props:
                    matched = True
                    self._expand(props[key], g, path, ctxs)
                patterns = s.get("patternProperties")
                if isinstance(patterns, Mapping):
                    for pat, sub in patterns.items():
                        try:
                            hit = re.search(pat, key) is not None
                        except re.error:
                            hit, matched = False, True  # undecidable here: no early verdict
                        if hit:
                            matched = True
                            self._expand(sub, g, path, ctxs)
                extra = s.get("additionalProperties")
                if not matched and extra is not None:
                    if extra is False:
                        self._violate(
                            g,
                            start,
                            end,
                            frame.path,
                            "properties not allowed by additionalProperties",
                        )
                    else:
                        self._expand(extra, g, path, ctxs)
            if key in frame.watch:
                frame.present.add(key)
        # Its value is read from here: what it breaks is pending on this member.
        frame.member = self._serial
        frame.key = key
        self._scopes.append(frame)
        frame.comma_open = False
        self._ctxs = ctxs
        self._vpath = path

    def _forbidden(self, frame: _Frame, key: str) -> bool:
        """Whether ``additionalProperties: false`` outside any branch forbids ``key``
        (the repair then drops the member)."""
        for s, g in frame.ctxs:
            if g is not None or not (type(s) is dict or isinstance(s, Mapping)):
                continue
            if s.get("additionalProperties") is not False:
                continue
            found = s.get("properties")
            if isinstance(found, Mapping) and key in found:
                continue
            patterns = s.get("patternProperties")
            if isinstance(patterns, Mapping):
                try:
                    if any(re.search(pat, key) is not None for pat in patterns):
                        continue
                except re.error:
                    continue  # undecidable here: never dropped
            return True
        return False

    def _name(
        self, schema: Any, guard: _Guard | None, key: str, start: int, end: int, path: _Path
    ) -> None:
        """``propertyNames``: the key, a string, against ``schema`` (the reason
        names the object, never the key)."""
        where = _NameOf(path)
        ctxs: list[_Ctx] = []
        self._expand(schema, guard, path, ctxs)
        for s, g in ctxs:
            if s is False:
                self._violate(g, start, end, path, "no property is allowed (propertyNames)")
                continue
            if not (type(s) is dict or isinstance(s, Mapping)) or not self._alive(g):
                continue
            t = s.get("type")
            allowed = [t] if isinstance(t, str) else t if isinstance(t, list) else None
            if allowed is not None and "string" not in allowed:
                self._violate(g, start, end, where, f"expected {show(t)}, got string")
            if "enum" in s and isinstance(s["enum"], list):
                if not any(_equal(key, e) for e in s["enum"]):
                    self._violate(g, start, end, where, f"expected one of {show(s['enum'])}")
            if "const" in s and not _equal(key, s["const"]):
                self._violate(g, start, end, where, f"expected {show(s['const'])}")
            limit = s.get("maxLength")
            if isinstance(limit, int) and len(key) > limit:
                self._violate(g, start, end, where, f"violates maxLength {limit}")
            self._string_keywords(s, g, key, start, end, where)

    def _element(self, frame: _Frame) -> None:
        """An array element starts: what applies to it."""
        frame.comma_open = False
        i = frame.count
        frame.count += 1
        path: _Path = (frame.path, i)
        ctxs: list[_Ctx] = []
        for s, g in frame.ctxs:
            if not (type(s) is dict or isinstance(s, Mapping)) or not self._alive(g):
                continue
            mi = s.get("maxItems")
            if isinstance(mi, int) and frame.count > mi:
                at = self._tok_start  # where the element that is one too many starts
                self._violate(g, at, at + 1, frame.path, f"violates maxItems {mi}")
            prefix = s.get("prefixItems")
            items = s.get("items")
            if isinstance(prefix, list) and i < len(prefix):
                self._expand(prefix[i], g, path, ctxs)
            elif isinstance(items, list):  # draft 4-7 tuple form
                if i < len(items):
                    self._expand(items[i], g, path, ctxs)
            elif items is not None and not isinstance(items, list):
                self._expand(items, g, path, ctxs)
        self._ctxs = ctxs
        self._vpath = path

    def _after_value(self, end: int) -> None:
        if not self._stack:
            self.end = end
            self._state = _DONE
            return
        self._state = _AFTER
        frame = self._stack[-1]
        if frame.drop >= 0:
            if frame.drop == frame.comma:
                self.repairs.append((frame.drop, end, "property not allowed, dropped"))
            else:
                frame.pending_drop = (frame.drop, end)
            frame.drop = -1

    # -- the parser ---------------------------------------------------------------
    def _syntax(self, at: int, what: str) -> Violation:
        return Violation(at, at + 1, f"not valid JSON: {what} at offset {at}")

    def feed(self, text: str, base: int) -> None:
        """Parse ``text``, which starts at offset ``base`` of the output.

        :raises Violation: at the first sure violation.
        """
        i, n = 0, len(text)
        while i < n:
            state = self._state
            if state == _STRING:
                i = self._string(text, i, base)
                continue
            if state > _STRING:  # a number, a literal, before or after the document
                pos = base + i
                if state == _NUM:
                    j = i
                    while j < n and text[j] in _NUMBER_CHARS:
                        j += 1
                    self._tok.append(text[i:j])
                    i = j
                    if i < n:
                        self._end_number(base + i)
                    continue
                if state == _LIT:
                    need = self._lit[len("".join(self._tok)) :]
                    take = text[i : i + len(need)]
                    if not need.startswith(take):
                        raise self._syntax(pos, "unexpected character")
                    self._tok.append(take)
                    i += len(take)
                    if len(take) == len(need):
                        value = {"true": True, "false": False, "null": None}[self._lit]
                        kind = "null" if value is None else "boolean"
                        self._scalar(value, kind, base + i)
                        self._after_value(base + i)
                    continue
                if state == _DONE:
                    if self._extract:
                        self._pos = base + n
                        return
                    j = _ws_end(text, i)
                    if j < n:
                        raise self._syntax(base + j, "text after the document")
                    i = j
                    continue
                # Before the document.
                if self._extract:
                    j = min(
                        (k for k in (text.find("{", i), text.find("[", i)) if k >= 0),
                        default=-1,
                    )
                    if j < 0:
                        i = n
                        continue
                    i = j
                else:
                    i = _ws_end(text, i)
                    if i >= n:
                        continue
                self.start = base + i
                self._ctxs = []
                self._expand(self._root, None, None, self._ctxs)
                self._state = _VALUE
                continue
            c = text[i]
            if c in " \t\n\r":
                i = _ws_end(text, i)
                if i >= n:
                    continue
                c = text[i]
            pos = base + i
            frame = self._stack[-1] if self._stack else None
            if state == _VALUE:
                i += self._value(c, pos)
                continue
            if state in (_KEY_OR_END, _KEY):
                if c == "}" and state == _KEY_OR_END:
                    self._close(pos + 1)
                    i += 1
                    continue
                if c == "}" and self._trailing_commas and frame is not None:
                    if frame.comma >= 0:  # (else a dropped property took it)
                        self.repairs.append((frame.comma, frame.comma + 1, "trailing comma"))
                    self._close(pos + 1)
                    i += 1
                    continue
                if c != '"':
                    raise self._syntax(pos, "expected a property name")
                self._tok_start, self._tok, self._tok_len = pos, [], 0
                self._tok_limit = BLOCK
                self._is_key, self._state = True, _STRING
                i += 1
                continue
            if state == _COLON:
                if c != ":":
                    raise self._syntax(pos, "expected ':'")
                self._state = _VALUE
                i += 1
                continue
            if state == _AFTER:
                assert frame is not None
                if frame.pending_drop is not None:
                    # A dropped first member goes with the comma after it, if any.
                    start, end = frame.pending_drop
                    frame.pending_drop = None
                    stop = pos + 1 if c == "," else end
                    self.repairs.append((start, stop, "property not allowed, dropped"))
                    if c == ",":
                        i += 1
                        self._state = _KEY
                        frame.comma = -1
                        continue
                if c == ",":
                    frame.comma = pos
                    # Until the next member is known to stay, a repair may take it.
                    frame.comma_open = self._trailing_commas or self._drop_additional
                    self._state = _KEY if frame.kind == "object" else _VALUE
                    if frame.kind == "array":
                        self._pending_element = True
                    i += 1
                    continue
                if c == ("}" if frame.kind == "object" else "]"):
                    self._close(pos + 1)
                    i += 1
                    continue
                raise self._syntax(pos, "expected ',' or the end of the container")
        self._pos = base + n

    def _value(self, c: str, pos: int) -> int:
        """A value starts with ``c``; return how many characters were consumed."""
        frame = self._stack[-1] if self._stack else None
        self._tok_start = pos
        if frame is not None and frame.kind == "object":
            frame.value_start = pos
        elif frame is not None and frame.kind == "array":
            if c == "]" and frame.count == 0 and not self._pending_element:
                self._close(pos + 1)
                return 1
            if c == "]" and self._pending_element and self._trailing_commas:
                self.repairs.append((frame.comma, frame.comma + 1, "trailing comma"))
                self._pending_element = False
                self._close(pos + 1)
                return 1
            self._pending_element = False
            self._element(frame)
        if c == "{":
            self._begin("object")
            self._open("object")
            self._state = _KEY_OR_END
            return 1
        if c == "[":
            self._begin("array")
            self._open("array")
            self._state = _VALUE
            return 1
        if c == '"':
            self._begin("string")
            self._tok, self._tok_len, self._is_key = [], 0, False
            self._tok_limit = BLOCK
            # The smallest first: limits are then passed in the same order
            # wherever the chunks were cut.
            self._maxlens = sorted(
                (
                    (s["maxLength"], g)
                    for s, g in self._ctxs
                    if (type(s) is dict or isinstance(s, Mapping))
                    and isinstance(s.get("maxLength"), int)
                ),
                key=lambda limit: limit[0],
            )
            self._state = _STRING
            return 1
        if c == "-" or (c.isdigit() and c.isascii()):
            self._begin("number")
            self._tok = []
            self._state = _NUM
            return 0
        if c in "tfn":
            self._lit = {"t": "true", "f": "false", "n": "null"}[c]
            self._begin("null" if c == "n" else "boolean")
            self._tok = []
            self._state = _LIT
            return 0
        raise self._syntax(pos, "expected a value")

    def _string(self, text: str, i: int, base: int) -> int:
        n = len(text)
        while i < n:
            if self._escape:
                self._escape += text[i]
                i += 1
                esc = self._escape
                if len(esc) == 2 and esc[1] != "u":
                    if esc[1] not in _ESCAPES:
                        raise self._syntax(base + i - 1, "invalid escape")
                    self._tok.append(_ESCAPES[esc[1]])
                    self._tok_len += 1
                    self._escape = ""
                    self._high = False
                elif len(esc) == 6:
                    try:
                        code = int(esc[2:], 16)
                    except ValueError:
                        raise self._syntax(base + i - 1, "invalid \\u escape") from None
                    # An escaped surrogate pair is one character, as json reads it; a
                    # lone surrogate stays what it is (json keeps it too).
                    tok = self._tok
                    if self._high and 0xDC00 <= code <= 0xDFFF:
                        high = ord(tok[-1][-1])
                        pair = chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
                        tok[-1] = tok[-1][:-1] + pair
                    else:
                        tok.append(chr(code))
                        self._tok_len += 1
                    self._high = 0xD800 <= code <= 0xDBFF
                    self._escape = ""
                continue
            pm = _PLAIN.match(text, i)
            j = i if pm is None else pm.end()
            if j > i:
                tok = self._tok
                if len(tok) >= self._tok_limit:  # a long string: see _pieces
                    self._tok_limit = join_tail(tok, self._tok_limit)
                tok.append(text[i:j])
                self._tok_len += j - i
                self._high = False
                if self._maxlens and not self._is_key:
                    self._string_progress(self._tok_start, base + j, j - i)
                i = j
                if i >= n:
                    break
            c = text[i]
            if c == "\\":
                self._escape = "\\"
                i += 1
            elif c == '"':
                i += 1
                self._end_string(base + i)
                return i
            else:
                raise self._syntax(base + i, "control character in a string")
        return i

    def _end_string(self, end: int) -> None:
        value = "".join(self._tok)
        self._high = False
        if self._is_key:
            frame = self._stack[-1]
            self._member(frame, value, self._tok_start, end)
            self._state = _COLON
            return
        self._tok_len = len(value)
        self._string_progress(self._tok_start, end)
        self._scalar(value, "string", end)
        self._after_value(end)

    def _end_number(self, end: int) -> None:
        token = "".join(self._tok)
        if not _NUMBER.match(token):
            raise self._syntax(self._tok_start, "invalid number")
        if self.numbers is not None:
            self.numbers[(self._tok_start, end)] = None
        try:
            value = json.loads(token)
        except ValueError:  # past Python's limit on the digits of an integer
            raise Violation(
                self._tok_start,
                end,
                f"{self.where(self._vpath)}: a number with more than {_MAX_DIGITS:,} digits",
            ) from None
        self._scalar(value, "number", end)
        self._after_value(end)

    def finish(self, end: int) -> None:
        """The output ended.

        :raises Violation: if the document is incomplete (or never started).
        """
        if self._state == _NUM:
            self._end_number(end)
        if self._state == _DONE:
            return
        if self._state == _BEFORE:
            raise Violation(end, end, "no JSON document in the output")
        raise Violation(end, end, "not valid JSON: the document is incomplete")
