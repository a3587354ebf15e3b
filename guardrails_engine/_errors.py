"""Exceptions raised by guardrails-engine.

The hierarchy::

    GuardrailsError            anything this library raises on purpose
    ├── PolicyError            a policy that cannot be loaded (also a ValueError)
    └── StreamStateError       a stream iterated after the consumer closed it early

A block is not an exception: it is a :class:`~guardrails_engine.Result` whose
``decision`` is ``Decision.BLOCK``.  Errors raised by a caller's token source
reach the caller unchanged.
"""

from __future__ import annotations

__all__ = ["GuardrailsError", "PolicyError", "StreamStateError"]


class GuardrailsError(Exception):
    """Base class of every exception this library raises on purpose."""


class PolicyError(GuardrailsError, ValueError):
    """A policy that cannot be loaded.

    ``source`` is the file (or ``"<string>"``), ``line`` the 1-based line in it
    (``None`` when the problem is not tied to a line) and ``field`` the dotted
    path of the offending field, e.g. ``checks[1].entities``.
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
        where = source if line is None else f"{source}:{line}"
        what = ""
        if field:
            what = f"{field}"
            if check_id:
                what += f" (check '{check_id}')"
            what += ": "
        elif check_id:
            what = f"check '{check_id}': "
        super().__init__(f"{where}: {what}{message}")


class StreamStateError(GuardrailsError, RuntimeError):
    """A stream was iterated after the consumer closed it before it ended."""
