"""The schema followed alongside the parser: what applies to the value being
read, and each keyword decided as soon as the part of the document it touches is
known (a wrong type when a value starts, a key that ``additionalProperties: false``
forbids when the key ends, ``enum``/``pattern``/bounds when a scalar ends,
``maxLength``/``maxItems``/``maxProperties`` as soon as they are exceeded,
``required`` when an object closes).

The parser (:mod:`.jsonstream`) says where the document is; this module says
what the schema makes of it.  It only ever reports what ``jsonschema`` would also
report: keywords it cannot decide early are left to the final validation.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from .paths import Violation, _NameOf, _Path, _steps, _Where, render_path, show
from .state import (
    DEADLINE,
    _Ctx,
    _dependent_required,
    _equal,
    _Frame,
    _Group,
    _Guard,
    _Held,
    _not_multiple,
    search,
)

__all__ = ["DUPLICATE", "SchemaFollower"]

#: The reason for a name given twice (after the path of its object).
DUPLICATE = "a property name is given twice (duplicate_names: reject)"
#: The most schemas one value is checked against at once ($ref, allOf, every branch of
#: anyOf/oneOf): a schema whose branches hold branches, level after level, fans out
#: exponentially (2**25 for 25 levels of two); past this the check fails (on_error).
MOST_CONTEXTS = 100_000


class SchemaFanOut(Exception):
    """A value would be checked against more than :data:`MOST_CONTEXTS` schemas."""


_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


class SchemaFollower:
    """The schema side of :class:`~.jsonstream.JsonScan`: contexts, keywords and
    violations (raised as :class:`Violation` when sure)."""

    def __init__(
        self,
        schema: Any,
        *,
        resolve: Callable[[Any], Any],
        known: frozenset[str],
        conforms: Callable[[Any, str], bool] | None,
        drop_additional: bool = False,
        keywords: frozenset[str] | None = None,
        legacy_refs: bool = False,
        reject_duplicates: bool = False,
    ) -> None:
        #: ``duplicate_names: reject``: a name given twice in one object is a
        #: violation at the repeat, so nothing is ever pending (every violation is
        #: final where it shows); else the last occurrence counts (``last``).
        self._reject = reject_duplicates
        #: The keywords of the schema's draft (None: all); a keyword that its
        #: draft does not know is never checked early.
        self._multiple = keywords is None or "multipleOf" in keywords
        self._dependent = keywords is None or "dependentRequired" in keywords
        #: Opt-in repair: drop a property the schema forbids.
        self._drop_additional = drop_additional
        #: Repairs made: (start, end, what); the text in the span is removed.
        self.repairs: list[tuple[int, int, str]] = []
        self._root = schema
        #: Draft 7 and before: a schema with a `$ref` is just that reference.
        self._legacy_refs = legacy_refs
        self._resolve = resolve
        self._known = known
        self._conforms = conforms
        self._stack: list[_Frame] = []
        # Where the token being read starts, and its length so far (unescaped).
        self._tok_start = 0
        self._tok_len = 0
        # maxLength limits of the string being read, with their guards.
        self._maxlens: list[tuple[int, _Guard | None]] = []
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
        steps = 0
        while stack:
            steps += 1
            if not steps & 1023:  # (the check's time, and its memory, are bounded)
                deadline = DEADLINE.get()
                if deadline is not None:
                    deadline.check()
                if len(out) - first > MOST_CONTEXTS:
                    raise SchemaFanOut(f"a value meets more than {MOST_CONTEXTS:,} schemas")
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
        scope = self._scopes[-1] if self._scopes and not self._reject else None
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
                ok = search(s["pattern"], value)
            except ValueError:
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
        if again and self._reject:
            # (The name itself is never shown: it comes from the document.)
            raise Violation(start, end, f"{self.where(frame.path)}: {DUPLICATE}")
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
