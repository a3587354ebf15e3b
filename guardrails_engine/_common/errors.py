"""Exceptions raised by guardrails-engine.

The hierarchy::

    GuardrailsError            anything this library raises on purpose
    ├── PolicyError            a policy that cannot be loaded (also a ValueError)
    ├── StreamStateError       a stream iterated after the consumer closed it early
    └── CheckThreadsExhausted  a blocking check has too many calls that never returned
                               (never raised to the caller: the check fails with it,
                               and its on_error decides)

A block is not an exception: it is a :class:`~guardrails_engine.Result` whose
``decision`` is ``Decision.BLOCK``.  Errors raised by a caller's token source
reach the caller unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CheckThreadsExhausted",
    "GuardrailsError",
    "PolicyError",
    "StreamStateError",
    "check_source",
    "check_text",
]


class GuardrailsError(Exception):
    """Base class of every exception this library raises on purpose."""


class PolicyError(GuardrailsError, ValueError):
    """A policy that cannot be loaded.

    ``source`` is the file (or ``"<string>"``), ``line`` the 1-based line in it
    (``None`` when the problem is not tied to a line) and ``field`` the dotted
    path of the offending field, e.g. ``checks[1].entities``.

    A policy with several problems raises one error that lists them all:
    ``problems`` holds one :class:`PolicyError` per problem (``(self,)`` when
    there is only one), ``str(exc)`` has one line per problem, and ``line``,
    ``field``, ``check_id`` and ``message`` are those of the first.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str = "<string>",
        line: int | None = None,
        field: str | None = None,
        check_id: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.field = field
        self.check_id = check_id
        self.problems: tuple[PolicyError, ...] = (self,)
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        what = ""
        if self.field:
            what = f"{self.field}"
            if self.check_id:
                what += f" (check '{self.check_id}')"
            what += ": "
        elif self.check_id:
            what = f"check '{self.check_id}': "
        return f"{where}: {what}{self.message}"

    @classmethod
    def of(cls, problems: Sequence[PolicyError]) -> PolicyError:
        """One error that reports every problem in ``problems`` (at least one)."""
        if not problems:
            raise ValueError("PolicyError.of needs at least one problem")
        if len(problems) == 1:
            return problems[0]
        first = problems[0]
        error = cls(
            first.message,
            source=first.source,
            line=first.line,
            field=first.field,
            check_id=first.check_id,
        )
        error.problems = tuple(problems)
        error.args = ("\n".join(p._describe() for p in problems),)
        return error

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self._describe()

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields: pickled by value, so an error crosses a process pool whole.
        many = self.problems if len(self.problems) > 1 else ()
        return (_restore, (self.message, self.source, self.line, self.field, self.check_id, many))


def _restore(
    message: str,
    source: str,
    line: int | None,
    field: str | None,
    check_id: str | None,
    problems: tuple[PolicyError, ...],
) -> PolicyError:
    if problems:
        return PolicyError.of(problems)
    return PolicyError(message, source=source, line=line, field=field, check_id=check_id)


class StreamStateError(GuardrailsError, RuntimeError):
    """A stream was iterated after the consumer closed it before it ended."""


class CheckThreadsExhausted(GuardrailsError, RuntimeError):
    """Every thread a blocking check may use is held by a call that ran past its
    time and has not returned: the check fails at once (``on_error`` decides)."""


def check_text(value: object, call: str) -> None:
    """A text to check must be a ``str``: anything else is a :class:`TypeError` that
    says what was passed (its type, never its content)."""
    if isinstance(value, str):
        return
    if value is None:
        raise TypeError(
            f"{call}() takes the text to check as a str, got None (an SDK's content=None, "
            "e.g. a tool call or a refusal, has no text: skip the check, or pass '')"
        )
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"{call}() takes the text to check as a str, got {type(value).__name__} "
            f"({len(value)} bytes): decode it first"
        )
    raise TypeError(f"{call}() takes the text to check as a str, got {type(value).__name__}")


def check_source(value: object, call: str) -> None:
    """A stream's source must be an iterable (sync or async) of ``str``."""
    if isinstance(value, (bytes, bytearray, memoryview)) or not (
        hasattr(value, "__iter__") or hasattr(value, "__aiter__")
    ):
        raise TypeError(
            f"{call}() takes an iterable (sync or async) of str chunks, got {type(value).__name__}"
        )
