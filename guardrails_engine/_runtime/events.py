"""What a stream hands out as typed events (``stream.events()``): :class:`Released`
text, then :class:`~guardrails_engine.Blocked` if the run was blocked, then
:class:`Ended` with the result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._common.model import Blocked, Result

if TYPE_CHECKING:
    from .drive import Stream, SyncStream

__all__ = ["AsyncEvents", "Ended", "Released", "StreamEvent", "SyncEvents"]


@dataclass(frozen=True, slots=True)
class Released:
    """Text that became safe to show (already repaired)."""

    text: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The stream ended: the last event.  ``result`` is ``Stream.result``."""

    result: Result | None


#: What :meth:`Stream.events` and :meth:`SyncStream.events` yield.
StreamEvent = Released | Blocked | Ended


class AsyncEvents:
    """The events of a :class:`Stream` (see :meth:`Stream.events`)."""

    __slots__ = ("_last", "_stream")

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._last: list[StreamEvent] | None = None

    def __aiter__(self) -> AsyncEvents:
        return self

    async def __anext__(self) -> StreamEvent:
        stream = self._stream
        if self._last is None:
            try:
                piece = await stream.__anext__()
            except StopAsyncIteration:
                self._last = stream._last_events()
            else:
                return stream._event(piece)
        if not self._last:
            raise StopAsyncIteration
        return self._last.pop(0)

    async def aclose(self) -> None:
        """Stop: close the stream (and its source)."""
        await self._stream.aclose()


class SyncEvents:
    """The events of a :class:`SyncStream` (see :meth:`SyncStream.events`)."""

    __slots__ = ("_last", "_stream")

    def __init__(self, stream: SyncStream) -> None:
        self._stream = stream
        self._last: list[StreamEvent] | None = None

    def __iter__(self) -> SyncEvents:
        return self

    def __next__(self) -> StreamEvent:
        stream = self._stream
        if self._last is None:
            try:
                piece = next(stream)
            except StopIteration:
                self._last = stream._last_events()
            else:
                return stream._event(piece)
        if not self._last:
            raise StopIteration
        return self._last.pop(0)

    def close(self) -> None:
        """Stop: close the stream (and its source)."""
        self._stream.close()
