"""JSON checked as it streams: a push parser and an incremental schema checker.

The parser (this module) reads each character once, keeps a stack of open
containers (no recursion, so 10,000 levels are fine) and the current token,
never the document.  The schema is followed alongside it
(:mod:`.keywords`, with its state in :mod:`.state`): a violation is reported as
soon as the part of the schema that a value touches can be decided.  It only
ever reports what ``jsonschema`` would also report: keywords it cannot decide
early are left to the final validation of the whole document, which stays the
authority.  Reasons are written by :mod:`.paths`.

A property named twice is, with ``duplicate_names: reject`` (the policy's
default), a violation at the name that repeats (compared after unescaping), so
every other violation is final where it shows.  With ``last`` it counts by its
last occurrence (as ``json.loads`` and so ``jsonschema`` read it): a violation
in the value of a property is *pending* for that (object, name) until the
object closes, dropped if the name comes again, and reported at the close
otherwise.  What the set of names decides (``maxProperties``, ``required``,
``propertyNames``, ``additionalProperties: false``) counts each name once and is
decided at once.

``anyOf``/``oneOf`` are followed branch by branch: a violation inside a
branch kills the branch, and the group is violated when no branch is left.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

import regex

from ..._common.pieces import BLOCK, join_tail
from .keywords import SchemaFollower
from .paths import PATH_ENDS, Violation, path_step, render_path, show

__all__ = ["PATH_ENDS", "JsonScan", "Violation", "path_step", "render_path", "show"]

_WS = regex.compile(r"[ \t\n\r]*")
_PLAIN = regex.compile(r'[^"\\\x00-\x1f]*')
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?\Z")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

#: Python reads integers of at most this many digits (``sys.get_int_max_str_digits``).
_MAX_DIGITS = sys.get_int_max_str_digits() or 4300

# Parser states.
_VALUE, _KEY_OR_END, _KEY, _COLON, _AFTER, _STRING, _NUM, _LIT, _DONE, _BEFORE = range(10)


def _ws_end(text: str, i: int) -> int:
    m = _WS.match(text, i)
    return i if m is None else m.end()


class JsonScan(SchemaFollower):
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
        reject_duplicates: bool = False,
    ) -> None:
        super().__init__(
            schema,
            resolve=resolve,
            known=known,
            conforms=conforms,
            drop_additional=drop_additional,
            keywords=keywords,
            legacy_refs=legacy_refs,
            reject_duplicates=reject_duplicates,
        )
        #: Opt-in repair: remove a trailing comma.
        self._trailing_commas = trailing_commas
        self._extract = extract
        self._state = _BEFORE
        self._pos = 0
        self.start: int | None = None
        self.end: int | None = None
        # The token being read (see SchemaFollower for where it starts).
        self._tok: list[str] = []
        self._tok_limit = BLOCK  # (see _pieces)
        self._escape = ""
        self._high = False  # the last character read was an escaped high surrogate
        self._is_key = False
        self._lit = ""
        self._pending_element = False  # a comma in an array: an element must follow
        #: Where the numbers read so far are, if asked for (a dict as an ordered set).
        self.numbers: dict[tuple[int, int], None] | None = None

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

    def _close(self, end: int) -> None:
        super()._close(end)
        self._after_value(end)

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
