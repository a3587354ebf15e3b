"""The regular expressions a scanner runs, composed from a check's patterns.

* :func:`streamable`: a pattern whose end-of-text assertions partial matching
  sees (``\\b``, ``\\B``, ``$``, ``\\Z`` spelled as lookarounds);
* :func:`probe`: ``(?:R1|R2|...)(?!)``, which never matches, so that partial
  matching reports where a match may still be in progress;
* :func:`classes`: one class search for the candidate starts of many patterns
  (their first characters, after their leading assertion) or for their
  required characters;
* :func:`ascii_gate`: the same required characters as a set, for ASCII text.

Patterns keep their own flags inside an alternation (scoped inline flags).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import regex

from .analysis import share, union

__all__ = [
    "SCOPABLE",
    "ascii_chars",
    "ascii_first",
    "ascii_gate",
    "classes",
    "combinable",
    "probe",
    "streamable",
]

# Zero-width assertions that the ``regex`` package evaluates at the end of the
# buffer without reporting a partial match, spelled with lookarounds, which it
# does report.  Same meaning for ``str`` patterns.
_WORD_BOUNDARY = r"(?:(?<=\w)(?!\w)|(?<!\w)(?=\w))"
_NOT_WORD_BOUNDARY = r"(?:(?<=\w)(?=\w)|(?<!\w)(?!\w))"
_END = r"(?!(?s:.))"
_DOLLAR = r"(?=\n?(?!(?s:.)))"
_DOLLAR_MULTILINE = r"(?=\n|(?!(?s:.)))"


def streamable(pattern: str, flags: int = 0) -> regex.Pattern[str]:
    """Compile ``pattern`` with end-of-text assertions that partial matching sees.

    ``\\b``, ``\\B``, ``\\Z`` and ``$`` are rewritten to equivalent lookarounds;
    everything else is kept as written.  A ``\\b`` that opens the pattern stays:
    it is read where a match starts, never past the end of the text, and the
    engine's prefilters depend on it.

    :raises regex.error: if the pattern does not compile.
    """
    multiline = bool(regex.compile(pattern, flags).flags & regex.MULTILINE)
    return regex.compile(_streamable(pattern, multiline), flags)


def _streamable(pattern: str, multiline: bool) -> str:
    """The text of :func:`streamable` (``multiline``: the pattern's own flags say so)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    if pattern.startswith("\\b"):
        out.append("\\b")
        i = 2
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if not in_class and nxt in "bBZ":
                out.append({"b": _WORD_BOUNDARY, "B": _NOT_WORD_BOUNDARY, "Z": _END}[nxt])
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            out.append(pattern[i:j])
            i = j
            continue
        if c == "$":
            out.append(_DOLLAR_MULTILINE if multiline else _DOLLAR)
        else:
            out.append(c)
        i += 1
    return "".join(out)


_SCOPED = (
    (regex.IGNORECASE, "i"),
    (regex.MULTILINE, "m"),
    (regex.DOTALL, "s"),
    (regex.VERBOSE, "x"),
)
_PLAIN_FLAGS = regex.UNICODE | regex.VERSION0
SCOPABLE = _PLAIN_FLAGS | regex.IGNORECASE | regex.MULTILINE | regex.DOTALL | regex.VERBOSE


def _scoped(flags: int) -> str:
    """Scoped inline flags that give a part of an alternation its own flags: ``ims-x``."""
    on = "".join(letter for flag, letter in _SCOPED if flags & flag)
    off = "".join(letter for flag, letter in _SCOPED if not flags & flag)
    return f"{on}-{off}" if off else on


# A leading assertion that reads only word/non-word and punctuation: the same
# whatever the flags (no letters, no '.', '^' or '$').
_LEAD = regex.compile(
    r"\\b|\(\?<[!=](?:\\[wds]|\[\^?(?:\\[wds]|[^\]\\a-zA-Z.^$])*\]|[^()\\a-zA-Z.^$\[])*\)"
)


def _alternation(parts: Sequence[tuple[str, int]]) -> str:
    """One alternation of patterns with their own flags, the shared leading assertions
    (``\\b``, a lookbehind such as ``(?<![\\w:])``) hoisted: the engine then rejects
    most positions once, not once per pattern.  Only which positions match, or may
    still match, is asked of it, so the order of the alternatives does not matter.
    """
    by_lead: dict[str, list[str]] = {}
    for pattern, flags in parts:
        m = _LEAD.match(pattern)
        lead = m.group() if m is not None else ""
        rest = pattern[len(lead) :]
        if lead and "|" in _top_level(rest):
            lead, rest = "", pattern  # the assertion binds to the first branch only
        by_lead.setdefault(lead, []).append(f"(?{_scoped(flags)}:{rest})")
    return "|".join(
        f"{lead}(?:{'|'.join(alts)})" if lead else "|".join(alts) for lead, alts in by_lead.items()
    )


def _syntax(pattern: str) -> Iterator[tuple[int, str, int]]:
    """(index, character, group depth) of each character outside classes and
    escapes, parentheses included (at the depth outside them)."""
    depth, i = 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            # Skip the class; a ']' right after '[' or '[^' is a member.
            j = i + 1
            if pattern[j : j + 1] == "^":
                j += 1
            if pattern[j : j + 1] == "]":
                j += 1
            while j < len(pattern) and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i = j + 1
            continue
        if c == ")":
            depth -= 1
        yield i, c, depth
        if c == "(":
            depth += 1
        i += 1


# Back-references and conditionals refer to group numbers, which an alternation
# renumbers; inline global flags would leak into the other patterns.  (Group syntax
# counts outside classes and escapes only: ``\(?(?:`` is none.)
_NUMBERED = regex.compile(r"\\[1-9]|\\g<")
_NUMBERED_SYNTAX = regex.compile(r"\(\?P=|\(\?\(|\(\?[a-zA-Z]+\)")


def combinable(pattern: regex.Pattern[str]) -> bool:
    """Whether ``pattern`` keeps its meaning inside an alternation with others."""
    if _NUMBERED.search(pattern.pattern) or pattern.flags & ~SCOPABLE:
        return False
    bare = "".join(c for _, c, _ in _syntax(pattern.pattern))  # (outside classes, escapes)
    return _NUMBERED_SYNTAX.search(bare) is None


def _top_level(pattern: str) -> str:
    """The characters of ``pattern`` outside groups, classes and escapes."""
    return "".join(c for _, c, depth in _syntax(pattern) if depth == 0 and c not in "()")


def _group_end(pattern: str) -> int:
    """Index after the group that opens ``pattern``, or -1."""
    for i, c, depth in _syntax(pattern):
        if c == ")" and depth == 0:
            return i + 1
    return -1


def _lead(pattern: str) -> str:
    """The leading assertion of ``pattern`` (``\\b`` or a lookbehind) that binds to
    all of it, or ""; read under the pattern's own flags."""
    if pattern.startswith("\\b"):
        end = 2
    elif pattern.startswith(("(?<!", "(?<=")):
        end = _group_end(pattern)
        if end < 0:
            return ""
    else:
        return ""
    return "" if "|" in _top_level(pattern[end:]) else pattern[:end]


def classes(
    patterns: Sequence[regex.Pattern[str]],
    parts: Sequence[tuple[str, ...] | None],
    *,
    lead: bool,
) -> regex.Pattern[str] | None:
    """One pattern matching where a character of ``parts`` (classes, per pattern)
    is, under its pattern's flags, and with ``lead`` after its pattern's leading
    assertion; None if a part is unknown.  Patterns with the same assertion and
    flags share one class: the engine searches one class quickly, an alternation
    of many slowly."""
    if any(part is None for part in parts):
        return None
    # (leading assertion, flags) -> (class, under IGNORECASE) pairs
    by: dict[tuple[str, int], list[tuple[str, bool]]] = {}
    for p, part in zip(patterns, parts, strict=True):
        assert part is not None
        key = (_lead(p.pattern), p.flags) if lead else ("", 0)
        ignorecase = bool(p.flags & regex.IGNORECASE)
        by.setdefault(key, []).extend((c, ignorecase) for c in part)
    alts = []
    for (assertion, flags), classes in by.items():
        body = union(classes)
        if assertion:
            # The class first, then the assertion where it began: the engine
            # rejects most positions on the class, quickly.
            body = f"(?:{body})(?<={assertion}(?s:.))"
        alts.append(f"(?{_scoped(flags)}:{body})" if lead else body)
    return regex.compile("|".join(alts))


_ESCAPED = regex.compile(r"\\U[0-9a-f]{8}")


def any_required(
    patterns: Sequence[regex.Pattern[str]], parts: Sequence[tuple[str, ...] | None]
) -> regex.Pattern[str] | None:
    """A search that finds a text holding one of ``parts`` (required classes or strings,
    per pattern), or finds more: a string is read as its rarest character and a class
    under IGNORECASE, so that the classes merge into one (the engine searches one class
    quickly, an alternation of classes and strings under two flags slowly).  None if a
    part is unknown."""
    if any(part is None for part in parts):
        return None
    items: list[tuple[str, bool]] = []
    for p, part in zip(patterns, parts, strict=True):
        assert part is not None
        ignorecase = bool(p.flags & regex.IGNORECASE)
        for item in part:
            if item.startswith("[^"):
                items.append((item, ignorecase))  # (under IGNORECASE it would match less)
            elif item.startswith("["):
                items.append((item, True))
            else:
                chars = _ESCAPED.findall(item)
                rare = min(chars, key=lambda c: share(int(c[2:], 16))) if chars else None
                items.append(("[" + rare + "]" if rare else item, bool(rare) or ignorecase))
    return regex.compile(union(items))


def ascii_gate(
    pattern: regex.Pattern[str], required: tuple[str, ...] | None
) -> frozenset[str] | None:
    """The ASCII characters of which every match of ``pattern`` in ASCII text
    consumes one, from its required classes or strings; None if unknown."""
    if required is None:
        return None
    ignorecase = pattern.flags & regex.IGNORECASE
    gate: set[str] = set()
    for item in required:
        if not item.startswith("["):
            # A string: each of its characters is in every match; take the rarest.
            chars = _ESCAPED.findall(item)
            item = "[" + min(chars, key=lambda c: share(int(c[2:], 16))) + "]"
        gate.update(ascii_chars(regex.compile(union([(item, bool(ignorecase))]))))
    return frozenset(gate)


def ascii_chars(rx: regex.Pattern[str]) -> frozenset[str]:
    """The ASCII characters at which ``rx`` matches (a class: read one character at a time)."""
    return frozenset(chr(c) for c in range(128) if rx.match(chr(c)))


def ascii_first(
    patterns: Sequence[regex.Pattern[str]], firsts: Sequence[tuple[str, ...] | None]
) -> frozenset[str] | None:
    """The ASCII characters a non-empty match of one of ``patterns`` may start with
    (``firsts``: their first classes, ``Facts.first``); None if one is unknown."""
    loose = classes(patterns, firsts, lead=False)
    return None if loose is None else ascii_chars(loose)


def probe(patterns: Sequence[regex.Pattern[str]]) -> regex.Pattern[str]:
    """``(?:R1|R2|...)(?!)``: never matches; with partial matching, it finds the
    leftmost position where one of the patterns may still match."""
    # (A compiled pattern's flags include its inline ones: no compiling to read them.)
    if len(patterns) == 1:
        p = patterns[0]
        text = _streamable(p.pattern, bool(p.flags & regex.MULTILINE))
        return regex.compile(f"(?:{text})(?!)", p.flags)
    alternation = _alternation(
        [(_streamable(p.pattern, bool(p.flags & regex.MULTILINE)), p.flags) for p in patterns]
    )
    return regex.compile(f"(?:{alternation})(?!)")
