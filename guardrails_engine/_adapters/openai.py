"""Guard OpenAI SDK streams and replies: Chat Completions and Responses, sync and async.

Public API (re-exported by ``guardrails_engine.openai``)::

    guard(policy, stream, *, refusals="guard") -> GuardedStream          # async SDK stream
    guard_sync(policy, stream, *, refusals="guard") -> SyncGuardedStream # sync SDK stream
    await guard_reply(policy, reply, *, refusals="guard")   # ChatCompletion | Response
    guard_reply_sync(policy, reply, *, refusals="guard")    # the same, sync

What comes out has the SDK's own types.  See ``guardrails_engine/openai.py`` for the
semantics (one run per choice / content part / tool call, block endings, refusals,
tool-call arguments, logprobs).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
)
from typing import Any, Generic, Literal, TypeVar, cast

import anyio

from .. import Blocked, Policy, Result
from .._core.closing import AsyncClosing, Closing, event_loop, schedule_close
from ._guard import (
    LoopRunner,
    RunCount,
    TextGuard,
    ToolArgsGuard,
    names_matter,
    tool_renamed,
)

try:
    from openai import AsyncStream as _AsyncStream
    from openai import Stream as _SyncStream
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.chat.chat_completion_chunk import (
        Choice as ChunkChoice,
    )
    from openai.types.chat.chat_completion_chunk import (
        ChoiceDelta,
        ChoiceDeltaFunctionCall,
        ChoiceDeltaToolCall,
        ChoiceDeltaToolCallFunction,
        ChoiceLogprobs,
    )
    from openai.types.responses import (
        Response,
        ResponseContentPartAddedEvent,
        ResponseContentPartDoneEvent,
        ResponseCustomToolCall,
        ResponseCustomToolCallInputDeltaEvent,
        ResponseFunctionCallArgumentsDeltaEvent,
        ResponseFunctionToolCall,
        ResponseIncompleteEvent,
        ResponseOutputItemAddedEvent,
        ResponseOutputItemDoneEvent,
        ResponseOutputMessage,
        ResponseOutputRefusal,
        ResponseOutputText,
        ResponseRefusalDeltaEvent,
        ResponseRefusalDoneEvent,
        ResponseStreamEvent,
        ResponseTextDeltaEvent,
        ResponseTextDoneEvent,
    )
    from openai.types.responses.response import IncompleteDetails
except ImportError as exc:  # pragma: no cover - tested with the SDK hidden
    raise ImportError(
        "guardrails_engine.openai needs the OpenAI SDK: pip install 'guardrails-engine[openai]'"
    ) from exc

__all__ = [
    "GuardedStream",
    "Refusals",
    "SyncGuardedStream",
    "guard",
    "guard_reply",
    "guard_reply_sync",
    "guard_sync",
]

_log = logging.getLogger("guardrails_engine")

T = TypeVar("T")
Chunk = TypeVar("Chunk", ChatCompletionChunk, ResponseStreamEvent)
Reply = TypeVar("Reply", ChatCompletion, Response)
#: How refusal text is treated: checked by the policy like text (default), or passed as is.
Refusals = Literal["guard", "pass"]


_Tails = tuple[str, str, list[ChoiceDeltaToolCall], ChoiceDeltaFunctionCall | None]


class _Stop(Exception):
    """A run was blocked: end the stream (internal control flow, never escapes)."""

    def __init__(self, key: int, released: str, blocked: Blocked, *, part: bool = False) -> None:
        super().__init__("blocked")
        self.key = key
        self.released = released
        self.blocked = blocked
        #: A Responses text or refusal part was blocked (``key`` is not used: an output
        #: index is whatever int the upstream sent).
        self.part = part


def _check_refusals(refusals: str) -> bool:
    if refusals not in ("guard", "pass"):
        raise ValueError(f"refusals must be 'guard' or 'pass', got {refusals!r}")
    return refusals == "guard"


class _Logprobs:
    """Carries token logprobs along while the text is shown as the model wrote it.

    Released text lags the deltas (hold-back), so a delta's logprobs go out with the
    release that shows all of its text; once a release differs from what was written
    (a repair), the rest of the run's logprobs are dropped: they no longer apply.
    """

    __slots__ = ("items", "ok", "raw")

    def __init__(self) -> None:
        self.raw = ""  # written, not yet shown
        self.items: deque[list[Any]] = deque()  # [characters left, logprobs] per delta
        self.ok = True

    def add(self, text: str, probs: list[Any] | None) -> None:
        if self.ok:
            self.raw += text
            self.items.append([len(text), probs or []])

    def take(self, released: str) -> list[Any]:
        """The logprobs of the deltas that ``released`` completes ([] if none apply)."""
        if not self.ok:
            return []
        if not self.raw.startswith(released):
            self.ok = False
            self.raw = ""
            self.items.clear()
            return []
        self.raw = self.raw[len(released) :]
        left = len(released)
        out: list[Any] = []
        items = self.items
        while items and items[0][0] <= left:
            size, probs = items.popleft()
            left -= size
            out.extend(probs)
        if left and items:
            items[0][0] -= left
        return out


# -- Chat Completions, streamed -----------------------------------------------------------
class _Call:
    """One streamed tool call of a choice."""

    __slots__ = ("done", "guard", "id", "index", "name", "type")

    def __init__(self, guard: ToolArgsGuard, tc: ChoiceDeltaToolCall) -> None:
        self.guard = guard
        self.index = tc.index
        self.id = tc.id
        self.type = tc.type
        self.name = tc.function.name if tc.function is not None else None
        self.done = False


class _FunctionCall:
    """The deprecated ``function_call`` of a choice (``functions=``): one run."""

    __slots__ = ("done", "guard", "name")

    def __init__(self, guard: ToolArgsGuard, name: str | None) -> None:
        self.guard = guard
        self.name = name
        self.done = False


class _ChatChoice:
    __slots__ = ("calls", "finished", "function", "logprobs", "refusal", "text")

    def __init__(self) -> None:
        self.function: _FunctionCall | None = None
        self.logprobs: _Logprobs | None = None  # made at the first chunk with logprobs
        self.text: TextGuard | None = None
        self.refusal: TextGuard | None = None
        self.calls: dict[int, _Call] = {}
        self.finished = False

    def guards(self) -> Iterator[TextGuard | ToolArgsGuard]:
        if self.text is not None:
            yield self.text
        if self.refusal is not None:
            yield self.refusal
        for call in self.calls.values():
            yield call.guard
        if self.function is not None:
            yield self.function.guard


def _is_empty(choice: ChunkChoice) -> bool:
    d = choice.delta
    return (
        choice.finish_reason is None
        and not d.content
        and not d.refusal
        and not d.tool_calls
        and d.role is None
        and d.function_call is None
        and d.audio is None
        and choice.logprobs is None
    )


class _ChatProcessor:
    """Turns upstream chunks into guarded chunks (one policy run per choice)."""

    __slots__ = ("_choices", "_last", "_policy", "_refusals", "_runs", "blocked", "stopped")

    def __init__(self, policy: Policy, refusals: bool) -> None:
        self._policy = policy
        self._refusals = refusals
        self._choices: dict[int, _ChatChoice] = {}
        self._last: ChatCompletionChunk | None = None
        self._runs = RunCount()  # (the runs this reply opened: at most MAX_RUNS)
        self.stopped = False
        self.blocked: Blocked | None = None

    async def process(self, chunk: ChatCompletionChunk) -> list[ChatCompletionChunk]:
        choices = chunk.choices
        if not choices:  # the usage chunk (include_usage), or a moderation chunk
            return [chunk]
        self._last = chunk
        if len(choices) == 1:  # the common case, a text delta, inline
            choice = choices[0]
            delta = choice.delta
            content = delta.content
            state = self._choices.get(choice.index)
            if (
                content
                and state is not None
                and state.text is not None
                and choice.finish_reason is None
                and choice.logprobs is None
                and state.logprobs is None
                and delta.refusal is None
                and not delta.tool_calls
                and delta.function_call is None
            ):
                guard = state.text
                released = await guard.feed(content)
                if guard.blocked is not None:
                    return await self._block(_Stop(choice.index, released, guard.blocked))
                if released or delta.role is not None or delta.audio is not None:
                    # (content came with the chunk: it is in the model's fields set
                    # already; writing the field's value skips pydantic's __setattr__)
                    delta.__dict__["content"] = released
                    return [chunk]
                if delta.function_call is None:
                    return []  # all held back: nothing to show in this chunk
                delta.__dict__["content"] = released
                return [chunk]
        kept: list[ChunkChoice] = []
        try:
            for choice in choices:
                state = self._choices.get(choice.index)
                if state is None:
                    state = self._choices[choice.index] = _ChatChoice()
                await self._choice(state, choice)
                if not _is_empty(choice):
                    kept.append(choice)
        except _Stop as stop:  # (the choices before the blocked one in this chunk are shown)
            head = [chunk.model_copy(update={"choices": kept, "usage": None})] if kept else []
            return head + await self._block(stop)
        if len(kept) != len(choices):
            if not kept:
                return [] if chunk.usage is None else [chunk.model_copy(update={"choices": []})]
            chunk.choices = kept
        return [chunk]

    async def _choice(self, state: _ChatChoice, choice: ChunkChoice) -> None:
        delta = choice.delta
        content = delta.content
        if content:
            guard = state.text
            if guard is None:
                guard = state.text = TextGuard(self._policy, runs=self._runs)
            released = await guard.feed(content)
            if guard.blocked is not None:
                raise _Stop(choice.index, released, guard.blocked)
            if choice.logprobs is not None or state.logprobs is not None:
                self._logprobs(state, choice, content, released)
            delta.content = released
        refusal = delta.refusal
        if refusal and self._refusals:
            guard = state.refusal
            if guard is None:
                guard = state.refusal = TextGuard(self._policy, runs=self._runs)
            released = await guard.feed(refusal)
            if guard.blocked is not None:
                raise _Stop(choice.index, delta.content or "", guard.blocked)
            if released != refusal:
                choice.logprobs = None
            delta.refusal = released
        given = choice.logprobs
        if given is not None and (
            (given.content and not content) or (given.refusal and not delta.refusal)
        ):
            # Token logprobs with no text of theirs in this chunk: they would show text
            # that was not checked (a token, its bytes, its alternatives).
            choice.logprobs = given.model_copy(
                update={
                    "content": given.content if content else None,
                    "refusal": given.refusal if delta.refusal else None,
                }
            )
        try:
            if delta.tool_calls:
                delta.tool_calls = await self._tool_calls(state, choice.index, delta.tool_calls)
            if delta.function_call is not None:
                delta.function_call = await self._function_call(
                    state, choice.index, delta.function_call
                )
            if choice.finish_reason is not None:
                await self._finish(state, choice)
        except _Stop as stop:  # the text this chunk released comes before the message
            stop.released = (delta.content or "") + stop.released
            raise

    @staticmethod
    def _logprobs(state: _ChatChoice, choice: ChunkChoice, written: str, shown: str) -> None:
        carried = state.logprobs
        if carried is None:
            carried = state.logprobs = _Logprobs()
        given = choice.logprobs
        carried.add(written, given.content if given is not None else None)
        probs = carried.take(shown)
        choice.logprobs = ChoiceLogprobs.model_construct(content=probs) if probs else None

    async def _tool_calls(
        self, state: _ChatChoice, index: int, calls: list[ChoiceDeltaToolCall]
    ) -> list[ChoiceDeltaToolCall]:
        out: list[ChoiceDeltaToolCall] = []
        for tc in calls:
            call = state.calls.get(tc.index)
            if call is None:  # a new call: the ones before it are complete
                for prev in state.calls.values():
                    if not prev.done:
                        out.extend(await self._end_call(prev, index))
                name = tc.function.name if tc.function is not None else None
                if not name and names_matter(self._policy):
                    raise _Stop(index, "", tool_renamed(self._policy))
                call = state.calls[tc.index] = _Call(
                    ToolArgsGuard(self._policy, name, runs=self._runs), tc
                )
                if call.guard.blocked is not None:
                    raise _Stop(index, "", call.guard.blocked)
            elif (
                tc.function is not None
                and tc.function.name
                and tc.function.name != call.name
                and names_matter(self._policy)
            ):
                raise _Stop(index, "", tool_renamed(self._policy))
            mode = call.guard.mode
            if mode == "pass":
                out.append(tc)
                continue
            fn = tc.function
            args = fn.arguments if fn is not None else None
            released = ""
            if args:
                released = await call.guard.feed(args)
                if call.guard.blocked is not None:
                    raise _Stop(index, "", call.guard.blocked)
            if mode == "incremental":
                if fn is not None:
                    fn.arguments = released
                if released or tc.id is not None or (fn is not None and fn.name):
                    out.append(tc)
            # complete: shown once complete (see _end_call)
        return out

    async def _function_call(
        self, state: _ChatChoice, index: int, fc: ChoiceDeltaFunctionCall
    ) -> ChoiceDeltaFunctionCall | None:
        call = state.function
        if call is None:
            if not fc.name and names_matter(self._policy):
                raise _Stop(index, "", tool_renamed(self._policy))
            call = state.function = _FunctionCall(
                ToolArgsGuard(self._policy, fc.name, runs=self._runs), fc.name
            )
            if call.guard.blocked is not None:
                raise _Stop(index, "", call.guard.blocked)
        elif fc.name and fc.name != call.name and names_matter(self._policy):
            raise _Stop(index, "", tool_renamed(self._policy))
        mode = call.guard.mode
        if mode == "pass":
            return fc
        released = ""
        if fc.arguments:
            released = await call.guard.feed(fc.arguments)
            if call.guard.blocked is not None:
                raise _Stop(index, "", call.guard.blocked)
        if mode == "incremental" and (released or fc.name):
            fc.arguments = released
            return fc
        return None  # complete: shown once complete (see _end_function)

    async def _end_function(
        self, call: _FunctionCall, index: int
    ) -> ChoiceDeltaFunctionCall | None:
        call.done = True
        guard = call.guard
        if guard.mode == "pass":
            return None
        tail = await guard.finish()
        if guard.blocked is not None:
            raise _Stop(index, "", guard.blocked)
        if guard.mode == "incremental":
            return ChoiceDeltaFunctionCall.model_construct(arguments=tail) if tail else None
        return ChoiceDeltaFunctionCall.model_construct(name=call.name, arguments=tail)

    async def _end_call(self, call: _Call, index: int) -> list[ChoiceDeltaToolCall]:
        call.done = True
        guard = call.guard
        if guard.mode == "pass":
            return []
        tail = await guard.finish()
        if guard.blocked is not None:
            raise _Stop(index, "", guard.blocked)
        if guard.mode == "incremental":
            if not tail:
                return []
            fn = ChoiceDeltaToolCallFunction.model_construct(arguments=tail)
            return [ChoiceDeltaToolCall.model_construct(index=call.index, function=fn)]
        fn = ChoiceDeltaToolCallFunction.model_construct(name=call.name, arguments=tail)
        return [
            ChoiceDeltaToolCall.model_construct(
                index=call.index, id=call.id, type=call.type or "function", function=fn
            )
        ]

    async def _tails(self, state: _ChatChoice, index: int) -> _Tails:
        """Finish the choice's runs: the rest of its text, refusal and calls."""
        state.finished = True
        text = refusal = ""
        if state.text is not None:
            text = await state.text.finish()
            if state.text.blocked is not None:
                raise _Stop(index, text, state.text.blocked)
        if state.refusal is not None:
            refusal = await state.refusal.finish()
            if state.refusal.blocked is not None:
                raise _Stop(index, text, state.refusal.blocked)
        calls: list[ChoiceDeltaToolCall] = []
        for call in state.calls.values():
            if not call.done:
                calls.extend(await self._end_call(call, index))
        function = None
        if state.function is not None and not state.function.done:
            function = await self._end_function(state.function, index)
        return text, refusal, calls, function

    async def _finish(self, state: _ChatChoice, choice: ChunkChoice) -> None:
        text, refusal, calls, function = await self._tails(state, choice.index)
        delta = choice.delta
        if text:
            delta.content = (delta.content or "") + text
            probs = state.logprobs.take(text) if state.logprobs is not None else []
            if choice.logprobs is not None and choice.logprobs.content:
                probs = [*choice.logprobs.content, *probs]
            choice.logprobs = ChoiceLogprobs.model_construct(content=probs) if probs else None
        if refusal:
            delta.refusal = (delta.refusal or "") + refusal
            choice.logprobs = None
        if calls:
            delta.tool_calls = [*(delta.tool_calls or ()), *calls]
        if function is not None:
            if delta.function_call is not None:  # (the finish chunk's own piece, shown)
                function.arguments = (delta.function_call.arguments or "") + (
                    function.arguments or ""
                )
            delta.function_call = function

    async def finish(self) -> list[ChatCompletionChunk]:
        """The upstream ended: the rest of every choice that did not finish."""
        last = self._last
        if last is None or self.stopped:
            return []
        choices: list[ChunkChoice] = []
        try:
            for index, state in sorted(self._choices.items()):
                if state.finished:
                    continue
                text, refusal, calls, function = await self._tails(state, index)
                if text or refusal or calls or function:
                    delta = ChoiceDelta.model_construct(
                        content=text or None,
                        refusal=refusal or None,
                        tool_calls=calls or None,
                        function_call=function,
                    )
                    choices.append(ChunkChoice.model_construct(index=index, delta=delta))
        except _Stop as stop:
            head = [_chunk_like(last, choices)] if choices else []
            return head + await self._block(stop)
        return [_chunk_like(last, choices)] if choices else []

    async def _block(self, stop: _Stop) -> list[ChatCompletionChunk]:
        """The block message on the blocked choice, then content_filter on every open one."""
        self.stopped = True
        self.blocked = stop.blocked
        last = self._last
        assert last is not None
        await self.aclose()
        out: list[ChatCompletionChunk] = []
        text = stop.released + stop.blocked.message
        if text:
            delta = ChoiceDelta.model_construct(content=text)
            out.append(
                _chunk_like(last, [ChunkChoice.model_construct(index=stop.key, delta=delta)])
            )
        ends = [
            ChunkChoice.model_construct(
                index=index, delta=ChoiceDelta.model_construct(), finish_reason="content_filter"
            )
            for index, state in sorted(self._choices.items())
            if not state.finished or index == stop.key
        ]
        out.append(_chunk_like(last, ends))
        return out

    async def aclose(self) -> None:
        for state in self._choices.values():
            for guard in state.guards():
                await guard.aclose()


def _chunk_like(last: ChatCompletionChunk, choices: list[ChunkChoice]) -> ChatCompletionChunk:
    """A new chunk of the same completion (id, created, model, fingerprint, tier)."""
    return ChatCompletionChunk.model_construct(
        id=last.id,
        choices=choices,
        created=last.created,
        model=last.model,
        object="chat.completion.chunk",
        service_tier=last.service_tier,
        system_fingerprint=last.system_fingerprint,
    )


# -- the iterators ------------------------------------------------------------------------
class _Processor(Generic[T]):
    stopped: bool
    #: The block, once a run of the reply was blocked.
    blocked: Blocked | None

    async def process(self, item: T) -> list[T]:
        raise NotImplementedError

    async def finish(self) -> list[T]:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


async def _close_upstream(upstream: object) -> None:
    close = getattr(upstream, "close", None) or getattr(upstream, "aclose", None)
    if close is None:
        return
    with anyio.CancelScope(shield=True):
        result = close()
        if isinstance(result, Awaitable):
            await result


class GuardedStream(Generic[Chunk], AsyncClosing):
    """The guarded chunks (or events) of an async SDK stream, as an async iterator.

    ``async with`` it, or call :meth:`aclose` to stop early: the SDK stream (and its HTTP
    response) is closed then, at a block, at the end, and when the consumer is cancelled.
    ``result(...)`` is not kept: use the SDK objects.
    """

    __slots__ = ("_closed", "_ended", "_it", "_loop", "_out", "_proc", "_upstream")

    @property
    def blocked(self) -> Blocked | None:
        """The block (message and findings) once the reply was blocked, else ``None``."""
        return self._proc.blocked

    def __init__(self, upstream: AsyncIterable[Chunk], processor: _Processor[Chunk]) -> None:
        self._upstream: AsyncIterable[Chunk] = upstream
        self._proc: _Processor[Chunk] = processor
        self._it: Any = None
        self._out: deque[Chunk] = deque()
        self._ended = False
        self._closed = False
        self._loop = event_loop()  # where to close it if it is dropped unclosed

    def __aiter__(self) -> GuardedStream[Chunk]:
        return self

    async def __anext__(self) -> Chunk:
        out = self._out
        while not out:
            if self._ended:
                raise StopAsyncIteration
            try:
                it = self._it
                if it is None:
                    up = self._upstream  # an SDK stream is its own iterator: no wrapper
                    it = self._it = up if isinstance(up, AsyncIterator) else aiter(up)
                try:
                    item = await it.__anext__()
                except StopAsyncIteration:
                    out.extend(await self._proc.finish())
                    await self._end()
                    continue
                if type(self._proc) is _Lazy:
                    self._proc = self._proc.pick(item)
                shown = await self._proc.process(item)
                if self._proc.stopped:
                    await self._end()
                elif len(shown) == 1:
                    return shown[0]  # (the common case: no queue)
                out.extend(shown)
            except BaseException:
                await self.aclose()
                raise
        return out.popleft()

    async def _end(self) -> None:
        self._ended = True
        await self._close()

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await _close_upstream(self._upstream)
        finally:
            with anyio.CancelScope(shield=True):
                await self._proc.aclose()

    async def aclose(self) -> None:
        """Stop: close the SDK stream and the policy runs (idempotent)."""
        self._ended = True
        self._out.clear()
        await self._close()

    def __del__(self) -> None:
        # Dropped without aclose() (a consumer that broke out of its loop): close on
        # the event loop it ran in.  `async with` / aclose() close it at once.
        if self._closed or self._it is None:
            return
        schedule_close(self._loop, self.aclose)


class SyncGuardedStream(Generic[Chunk], Closing):
    """The guarded chunks (or events) of a sync SDK stream, as an iterator.

    ``with`` it, or call :meth:`close` to stop early: the SDK stream is closed then, at a
    block and at the end.  The policy runs inline (sync push runs: no event loop).
    """

    __slots__ = ("_closed", "_ended", "_it", "_out", "_proc", "_runner", "_upstream")

    @property
    def blocked(self) -> Blocked | None:
        """The block (message and findings) once the reply was blocked, else ``None``."""
        return self._proc.blocked

    def __init__(self, upstream: Iterable[Chunk], processor: _Processor[Chunk]) -> None:
        self._upstream: Iterable[Chunk] = upstream
        self._proc: _Processor[Chunk] = processor
        self._runner = LoopRunner()
        self._it: Iterator[Chunk] | None = None
        self._out: deque[Chunk] = deque()
        self._ended = False
        self._closed = False

    def __iter__(self) -> SyncGuardedStream[Chunk]:
        return self

    def __next__(self) -> Chunk:
        out = self._out
        while not out:
            if self._ended:
                raise StopIteration
            try:
                if self._it is None:
                    up = self._upstream
                    self._it = up if isinstance(up, Iterator) else iter(up)
                out.extend(self._runner.run(self._advance()))
                if self._ended:
                    self._close()
            except BaseException:
                self.close()
                raise
        return out.popleft()

    async def _advance(self) -> list[Chunk]:
        """Read the SDK stream (inline: nothing else runs on this loop) until something
        is to be shown or the stream ends."""
        it = self._it
        assert it is not None
        while True:
            try:
                item = next(it)
            except StopIteration:
                self._ended = True
                return await self._proc.finish()
            if type(self._proc) is _Lazy:
                self._proc = self._proc.pick(item)
            out = await self._proc.process(item)
            if self._proc.stopped:
                self._ended = True
                return out
            if out:
                return out

    def _end(self) -> None:
        self._ended = True
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._upstream, "close", None)
            if close is not None:
                close()
        finally:
            try:
                self._runner.run(self._proc.aclose())
            finally:
                self._runner.close()

    def close(self) -> None:
        """Stop: close the SDK stream and the policy runs (idempotent)."""
        self._ended = True
        self._out.clear()
        self._close()

    def __del__(self) -> None:
        if not self._closed:
            try:
                self.close()
            except Exception:
                _log.warning("closing a dropped guarded stream failed", exc_info=True)


def _processor(policy: Policy, kind: str, refusals: bool) -> _Processor[Any]:
    if kind == "chat":
        return cast(_Processor[Any], _ChatProcessor(policy, refusals))
    return cast(_Processor[Any], _ResponsesProcessor(policy, refusals))


def _kind(stream: object) -> str | None:
    """``chat`` or ``responses`` from the SDK stream's declared type, if it says."""
    cast_to = getattr(stream, "_cast_to", None)
    if cast_to is ChatCompletionChunk:
        return "chat"
    if cast_to is not None and cast_to is not ChatCompletionChunk:
        return "responses"
    return None


class _Lazy:
    """Decides chat or responses from the first item (for plain iterables), then
    hands over to that processor."""

    __slots__ = ("_policy", "_refusals", "blocked", "stopped")

    def __init__(self, policy: Policy, refusals: bool) -> None:
        self._policy = policy
        self._refusals = refusals
        self.stopped = False
        self.blocked: Blocked | None = None

    def pick(self, item: object) -> _Processor[Any]:
        kind = "chat" if isinstance(item, ChatCompletionChunk) else "responses"
        return _processor(self._policy, kind, self._refusals)

    async def process(self, item: Any) -> list[Any]:  # pragma: no cover - replaced first
        raise AssertionError("pick() first")

    async def finish(self) -> list[Any]:
        return []

    async def aclose(self) -> None:
        return None


def _make(policy: Policy, stream: object, refusals: str) -> _Processor[Any]:
    if not isinstance(policy, Policy):
        raise TypeError(f"guard() takes a Policy first, got {type(policy).__name__}")
    guard_refusals = _check_refusals(refusals)
    kind = _kind(stream)
    if kind is None:
        return cast(_Processor[Any], _Lazy(policy, guard_refusals))
    return _processor(policy, kind, guard_refusals)


def guard(
    policy: Policy,
    stream: AsyncIterable[Chunk],
    *,
    refusals: Refusals = "guard",
) -> GuardedStream[Chunk]:
    """Guard an async SDK stream (``AsyncStream[ChatCompletionChunk]`` or Responses events).

    Iterate the result as the SDK stream; ``async with`` or ``aclose()`` to stop early.
    """
    if isinstance(stream, _SyncStream) or not isinstance(stream, AsyncIterable):
        raise TypeError(
            f"guard() takes an async SDK stream, got {type(stream).__name__}: "
            "use guard_sync() for the sync client"
        )
    return GuardedStream(stream, _make(policy, stream, refusals))


def guard_sync(
    policy: Policy,
    stream: Iterable[Chunk],
    *,
    refusals: Refusals = "guard",
) -> SyncGuardedStream[Chunk]:
    """Guard a sync SDK stream (``Stream[ChatCompletionChunk]`` or Responses events)."""
    if isinstance(stream, _AsyncStream) or not isinstance(stream, Iterable):
        raise TypeError(
            f"guard_sync() takes a sync SDK stream, got {type(stream).__name__}: "
            "use guard() for the async client"
        )
    return SyncGuardedStream(stream, _make(policy, stream, refusals))


# -- non-streamed replies -------------------------------------------------------------------
Validate = Callable[[Policy, str], Awaitable[Result]]


async def _validate(policy: Policy, text: str) -> Result:
    return await policy.validate(text)


async def _validate_sync(policy: Policy, text: str) -> Result:
    return policy.validate_sync(text)


def _run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (its awaits are all sync underneath)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return cast(T, stop.value)
    coro.close()  # pragma: no cover - would be a bug
    raise RuntimeError("a sync check suspended")  # pragma: no cover


async def _guard_chat_reply(
    policy: Policy, reply: ChatCompletion, refusals: bool, validate: Validate
) -> ChatCompletion:
    reply = reply.model_copy(deep=True)
    for choice in reply.choices:
        message = choice.message
        blocked: Blocked | None = None
        changed = False
        if message.content is not None:
            result = await validate(policy, message.content)
            if result.blocked:
                blocked = Blocked(result.text, result.findings)
            elif result.text != message.content:
                message.content = result.text
                changed = True
        if blocked is None and message.refusal is not None and refusals:
            result = await validate(policy, message.refusal)
            if result.blocked:
                blocked = Blocked(result.text, result.findings)
            elif result.text != message.refusal:
                message.refusal = result.text
                changed = True
        legacy = message.function_call
        if blocked is None and legacy is not None:
            checked_fc = await _tool_text(policy, legacy.name, legacy.arguments, validate)
            if isinstance(checked_fc, Blocked):
                blocked = checked_fc
            else:
                legacy.arguments = checked_fc
        for call in message.tool_calls or ():
            if blocked is not None:
                break
            if call.type == "function":
                name, text = call.function.name, call.function.arguments
            else:
                name, text = call.custom.name, call.custom.input
            checked = await _tool_text(policy, name, text, validate, json=call.type == "function")
            if isinstance(checked, Blocked):
                blocked = checked
            elif call.type == "function":
                call.function.arguments = checked
            else:
                call.custom.input = checked
        if blocked is not None:
            message.content = blocked.message
            message.refusal = None
            message.tool_calls = None
            message.function_call = None
            message.annotations = None
            choice.finish_reason = "content_filter"
            choice.logprobs = None
        elif changed:
            message.annotations = None  # their offsets are into the text before repair
            choice.logprobs = None
    return reply


async def _tool_text(
    policy: Policy, name: str, text: str, validate: Validate, *, json: bool = True
) -> str | Blocked:
    """A tool call's arguments (or custom input, ``json=False``) through the tool's rule."""
    tool = policy.tool_rule(name, json=json)
    if tool is None or isinstance(tool, Blocked):
        return text if tool is None else tool
    result = await validate(tool.policy, text)
    if result.blocked:
        return Blocked(result.text, result.findings)
    return result.text


async def _guard_response(
    policy: Policy, reply: Response, refusals: bool, validate: Validate
) -> Response:
    reply = reply.model_copy(deep=True)
    output: list[Any] = []
    for item in reply.output:
        blocked: Blocked | None = None
        if isinstance(item, ResponseOutputMessage):
            parts: list[Any] = []
            for part in item.content:
                if isinstance(part, ResponseOutputText):
                    result = await validate(policy, part.text)
                    if result.blocked:
                        blocked = Blocked(result.text, result.findings)
                        parts.append(_text_part(result.text))
                        break
                    if result.text != part.text:
                        part.text = result.text
                        part.annotations = []
                        part.logprobs = None
                elif isinstance(part, ResponseOutputRefusal) and refusals:
                    result = await validate(policy, part.refusal)
                    if result.blocked:
                        blocked = Blocked(result.text, result.findings)
                        parts.append(_text_part(result.text))
                        break
                    part.refusal = result.text
                parts.append(part)
            item.content = parts
            if blocked is not None:
                item.status = "incomplete"
            output.append(item)
        elif isinstance(item, (ResponseFunctionToolCall, ResponseCustomToolCall)):
            text = item.arguments if isinstance(item, ResponseFunctionToolCall) else item.input
            json = isinstance(item, ResponseFunctionToolCall)
            checked = await _tool_text(policy, item.name, text, validate, json=json)
            if isinstance(checked, Blocked):
                blocked = checked
                output.append(_message_item(f"{item.id or item.call_id}_blocked", checked.message))
            else:
                if isinstance(item, ResponseFunctionToolCall):
                    item.arguments = checked
                else:
                    item.input = checked
                output.append(item)
        else:
            output.append(item)
        if blocked is not None:
            _incomplete(reply)
            break
    reply.output = output
    return reply


def _text_part(text: str) -> ResponseOutputText:
    return ResponseOutputText.model_construct(annotations=[], text=text, type="output_text")


def _message_item(item_id: str, text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage.model_construct(
        id=item_id,
        content=[_text_part(text)],
        role="assistant",
        status="incomplete",
        type="message",
    )


def _incomplete(response: Response) -> None:
    """Mark a response as ended by the content filter (the API's own incomplete ending)."""
    response.status = "incomplete"
    response.incomplete_details = IncompleteDetails.model_construct(reason="content_filter")


async def guard_reply(policy: Policy, reply: Reply, *, refusals: Refusals = "guard") -> Reply:
    """A new ``ChatCompletion`` / ``Response`` with every text checked (async)."""
    return await _guard_reply(policy, reply, refusals, _validate)


def guard_reply_sync(policy: Policy, reply: Reply, *, refusals: Refusals = "guard") -> Reply:
    """:func:`guard_reply` for sync callers (no event loop)."""
    return _run_now(_guard_reply(policy, reply, refusals, _validate_sync))


async def _guard_reply(policy: Policy, reply: Reply, refusals: str, validate: Validate) -> Reply:
    if not isinstance(policy, Policy):
        raise TypeError(f"guard_reply() takes a Policy first, got {type(policy).__name__}")
    guard_refusals = _check_refusals(refusals)
    if isinstance(reply, ChatCompletion):
        return await _guard_chat_reply(policy, reply, guard_refusals, validate)
    if isinstance(reply, Response):
        return await _guard_response(policy, reply, guard_refusals, validate)
    raise TypeError(
        f"guard_reply() takes a ChatCompletion or a Response, got {type(reply).__name__}"
    )


# -- Responses, streamed --------------------------------------------------------------------
class _Part:
    """One content part of a message item (output text or refusal): its own run."""

    __slots__ = ("guard", "item_id", "kind", "logprobs", "text")

    def __init__(self, guard: TextGuard | None, kind: str, item_id: str) -> None:
        self.guard = guard  # None: passed as is (refusals="pass")
        self.kind = kind  # "text" | "refusal"
        self.item_id = item_id
        self.text = ""  # what was shown
        self.logprobs = _Logprobs()


class _RCall:
    """One function or custom tool call item: its arguments (or input) are one run."""

    __slots__ = ("added", "guard", "item", "text")

    def __init__(self, guard: ToolArgsGuard, event: ResponseOutputItemAddedEvent) -> None:
        self.guard = guard
        self.added = event
        self.item = event.item
        self.text = ""


_ARG_DELTAS = ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta")
_ARG_DONES = ("response.function_call_arguments.done", "response.custom_tool_call_input.done")


class _ResponsesProcessor:
    """Turns upstream Responses events into guarded events.

    Each content part (output text, refusal) and each tool call is its own run.  Events
    are numbered again (``sequence_number``) since some are dropped or added.
    """

    __slots__ = (
        "_calls",
        "_items",
        "_parts",
        "_policy",
        "_refusals",
        "_runs",
        "_seq",
        "_snapshot",
        "blocked",
        "stopped",
    )

    def __init__(self, policy: Policy, refusals: bool) -> None:
        self._policy = policy
        self._refusals = refusals
        self._parts: dict[tuple[int, int], _Part] = {}
        self._calls: dict[int, _RCall] = {}
        self._items: dict[int, Any] = {}  # done output items, as shown
        self._snapshot: Response | None = None
        self._seq = 0
        self._runs = RunCount()  # (the runs this reply opened: at most MAX_RUNS)
        self.stopped = False
        self.blocked: Blocked | None = None

    def _num(self, event: Any) -> Any:
        event.sequence_number = self._seq
        self._seq += 1
        return event

    async def process(self, event: ResponseStreamEvent) -> list[ResponseStreamEvent]:
        if event.type == "response.output_text.delta":  # the common case, inline
            part = self._parts.get((event.output_index, event.content_index))
            if part is not None and part.guard is not None:
                delta = event.delta
                guard = part.guard
                released = await guard.feed(delta)
                if guard.blocked is not None:
                    return await self._block(_Stop(0, released, guard.blocked, part=True))
                part.logprobs.add(delta, event.logprobs)
                if not released:
                    return []
                part.text += released
                event.logprobs = part.logprobs.take(released)
                event.delta = released
                event.sequence_number = self._seq
                self._seq += 1
                return [event]
        try:
            return await self._process(event)
        except _Stop as stop:
            return await self._block(stop)

    async def _process(self, event: Any) -> list[Any]:
        kind = event.type
        if kind == "response.output_text.delta" or (
            kind == "response.refusal.delta" and self._refusals
        ):
            part = self._part(event, "text" if kind == "response.output_text.delta" else "refusal")
            assert part.guard is not None
            delta = event.delta
            released = await part.guard.feed(delta)
            if part.guard.blocked is not None:
                raise _Stop(0, released, part.guard.blocked, part=True)
            part.text += released
            if kind == "response.output_text.delta":
                part.logprobs.add(delta, event.logprobs)
                if not released:
                    return []
                event.logprobs = part.logprobs.take(released)
            elif not released:
                return []
            event.delta = released
            return [self._num(event)]
        if kind == "response.output_text.done" or (
            kind == "response.refusal.done" and self._refusals
        ):
            text_kind = kind == "response.output_text.done"
            part = self._part(event, "text" if text_kind else "refusal")
            assert part.guard is not None
            tail = await part.guard.finish()
            if part.guard.blocked is not None:
                raise _Stop(0, tail, part.guard.blocked, part=True)
            out: list[Any] = []
            if tail:
                part.text += tail
                tail_event = _part_delta(part, event, tail)
                if text_kind:
                    tail_event.logprobs = part.logprobs.take(tail)
                out.append(self._num(tail_event))
            if text_kind:
                if part.text != event.text:
                    event.logprobs = []
                event.text = part.text
            else:
                event.refusal = part.text
            out.append(self._num(event))
            return out
        if kind == "response.content_part.done":
            shown_part = self._parts.get((event.output_index, event.content_index))
            if shown_part is not None:
                _show_part(event.part, shown_part)
            return [self._num(event)]
        if kind in _ARG_DELTAS or kind in _ARG_DONES:
            call = self._calls.get(event.output_index)
            if call is None and names_matter(self._policy):
                return []  # arguments of no announced call: no rule to check them by
        if kind in _ARG_DELTAS:
            call = self._calls.get(event.output_index)
            if call is None or call.guard.mode == "pass":
                return [self._num(event)]
            released = await call.guard.feed(event.delta)
            if call.guard.blocked is not None:
                raise _Stop(event.output_index, "", call.guard.blocked)
            call.text += released
            if call.guard.mode == "complete" or not released:
                return []
            event.delta = released
            return [self._num(event)]
        if kind in _ARG_DONES:
            call = self._calls.get(event.output_index)
            if call is None or call.guard.mode == "pass":
                return [self._num(event)]
            tail = await call.guard.finish()
            if call.guard.blocked is not None:
                raise _Stop(event.output_index, "", call.guard.blocked)
            out = []
            if call.guard.mode == "complete":
                call.text = tail
                out.append(self._num(call.added))
            else:
                call.text += tail
            if tail:
                out.append(self._num(_arg_delta(event, tail)))
            if kind == _ARG_DONES[0]:
                event.arguments = call.text
            else:
                event.input = call.text
            out.append(self._num(event))
            return out
        if kind == "response.content_part.added":
            _blank(event.part, self._refusals)  # its text comes as deltas, checked
            return [self._num(event)]
        if kind == "response.output_item.added":
            item = event.item
            if isinstance(item, ResponseOutputMessage):
                for content in item.content:  # its text comes as deltas, checked
                    _blank(content, self._refusals)
            if isinstance(item, (ResponseFunctionToolCall, ResponseCustomToolCall)):
                json = isinstance(item, ResponseFunctionToolCall)
                call = self._calls[event.output_index] = _RCall(
                    ToolArgsGuard(self._policy, item.name, runs=self._runs, json=json), event
                )
                if call.guard.blocked is not None:
                    raise _Stop(event.output_index, "", call.guard.blocked)
                if call.guard.mode != "pass":  # its arguments come as deltas, checked
                    if isinstance(item, ResponseFunctionToolCall):
                        item.arguments = ""
                    else:
                        item.input = ""
                if call.guard.mode == "complete":
                    return []  # shown with its arguments, once they are complete
            return [self._num(event)]
        if kind == "response.output_item.done":
            await self._guard_item(event.output_index, event.item)
            self._items[event.output_index] = event.item
            return [self._num(event)]
        if kind == "response.output_text.annotation_added":
            annotated = self._parts.get((event.output_index, event.content_index))
            if annotated is not None and not annotated.logprobs.ok:
                return []  # its offsets are into text that was changed
            return [self._num(event)]
        if kind in ("response.created", "response.in_progress"):
            response = event.response
            if response.output:  # output comes in its own events, checked there
                response.output = []
            self._snapshot = response
            return [self._num(event)]
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            response = event.response
            for index, item in enumerate(response.output):
                await self._guard_item(index, item)
            return [self._num(event)]
        return [self._num(event)]

    def _part(self, event: Any, kind: str) -> _Part:
        key = (event.output_index, event.content_index)
        part = self._parts.get(key)
        if part is None:
            part = self._parts[key] = _Part(
                TextGuard(self._policy, runs=self._runs), kind, event.item_id
            )
        return part

    async def _guard_item(self, index: int, item: Any) -> None:
        """Write the guarded texts into an output item (done, or in the final response);
        text that was not streamed (no deltas came for it) goes through a run here."""
        if isinstance(item, ResponseOutputMessage):
            for ci, content in enumerate(item.content):
                part = self._parts.get((index, ci))
                if part is None:
                    if isinstance(content, ResponseOutputText):
                        text, kind = content.text, "text"
                    elif isinstance(content, ResponseOutputRefusal) and self._refusals:
                        text, kind = content.refusal, "refusal"
                    else:
                        continue
                    guard = TextGuard(self._policy, runs=self._runs)
                    part = self._parts[(index, ci)] = _Part(guard, kind, item.id)
                    part.logprobs.ok = False
                    released = await guard.feed(text) if text else ""
                    if guard.blocked is None:
                        released += await guard.finish()
                    if guard.blocked is not None:
                        raise _Stop(0, released, guard.blocked, part=True)
                    part.text = released
                _show_part(content, part)
        elif isinstance(item, (ResponseFunctionToolCall, ResponseCustomToolCall)):
            call = self._calls.get(index)
            if call is None:  # not streamed: its arguments are checked whole
                text = item.arguments if isinstance(item, ResponseFunctionToolCall) else item.input
                json = isinstance(item, ResponseFunctionToolCall)
                checked = await _tool_text(self._policy, item.name, text, _validate, json=json)
                if isinstance(checked, Blocked):
                    raise _Stop(index, "", checked)
            elif call.guard.mode == "pass":
                return
            else:
                checked = call.text
            if isinstance(item, ResponseFunctionToolCall):
                item.arguments = checked
            else:
                item.input = checked

    def _show_item(self, index: int, item: Any) -> None:
        """The guarded texts of the streamed parts and calls, into an item being cut."""
        if isinstance(item, ResponseOutputMessage):
            for ci, content in enumerate(item.content):
                part = self._parts.get((index, ci))
                if part is not None:
                    _show_part(content, part)
        elif isinstance(item, (ResponseFunctionToolCall, ResponseCustomToolCall)):
            call = self._calls.get(index)
            if call is not None and call.guard.mode != "pass":
                if isinstance(item, ResponseFunctionToolCall):
                    item.arguments = call.text
                else:
                    item.input = call.text

    async def finish(self) -> list[ResponseStreamEvent]:
        """The upstream ended without its last events: the rest of every open part."""
        if self.stopped:
            return []
        out: list[Any] = []
        try:
            for part in self._parts.values():
                if part.guard is None or part.guard.done:
                    continue
                tail = await part.guard.finish()
                if part.guard.blocked is not None:
                    raise _Stop(0, tail, part.guard.blocked, part=True)
                if tail:
                    part.text += tail
                    key = next(k for k, v in self._parts.items() if v is part)
                    out.append(self._num(_new_delta(part, key, tail)))
        except _Stop as stop:
            return await self._block(stop)
        return out

    async def _block(self, stop: _Stop) -> list[ResponseStreamEvent]:
        """The block message as output text, the items' incomplete ends, then
        ``response.incomplete`` with ``incomplete_details.reason == "content_filter"``."""
        self.stopped = True
        self.blocked = stop.blocked
        await self.aclose()
        out: list[Any] = []
        message = stop.released + stop.blocked.message
        shown = dict(sorted(self._items.items()))
        if stop.part:  # a text or refusal part: the message goes into it
            key, part = next(
                (k, p)
                for k, p in self._parts.items()
                if p.guard is not None and p.guard.blocked is not None
            )
            part.text += message
            if message:
                out.append(self._num(_new_delta(part, key, message)))
            out.extend(self._num(e) for e in _part_end(part, key))
            index = key[0]
            contents = [_content(p) for (oi, _ci), p in sorted(self._parts.items()) if oi == index]
            item = ResponseOutputMessage.model_construct(
                id=part.item_id,
                content=contents,
                role="assistant",
                status="incomplete",
                type="message",
            )
            out.append(self._num(_item_done(index, item)))
            shown[index] = item
        else:  # a tool call: a message item after it carries the block message
            call = self._calls.get(stop.key)
            if call is not None and call.guard.mode != "complete" and call.guard.mode != "block":
                cut: Any = call.item.model_copy(update={"status": "incomplete"})
                self._show_item(stop.key, cut)
                out.append(self._num(_item_done(stop.key, cut)))
                shown[stop.key] = cut
            index = max([stop.key, *self._calls, *(k[0] for k in self._parts)]) + 1
            base = call.item.id if call is not None and call.item.id else "msg"
            item = _message_item(f"{base}_blocked", message)
            out.extend(self._num(e) for e in _message_events(index, item, message))
            shown[index] = item
        response = self._incomplete_response(list(shown.values()))
        out.append(
            self._num(
                ResponseIncompleteEvent.model_construct(
                    response=response, sequence_number=0, type="response.incomplete"
                )
            )
        )
        return out

    def _incomplete_response(self, output: list[Any]) -> Response:
        snap = self._snapshot
        if snap is None:
            response = Response.model_construct(
                id="",
                created_at=0.0,
                model="",
                object="response",
                output=output,
                parallel_tool_calls=True,
                tool_choice="auto",
                tools=[],
            )
        else:
            response = snap.model_copy(update={"output": output})
        _incomplete(response)
        return response

    async def aclose(self) -> None:
        for part in self._parts.values():
            if part.guard is not None:
                await part.guard.aclose()
        for call in self._calls.values():
            await call.guard.aclose()


def _content(part: _Part) -> Any:
    if part.kind == "text":
        return _text_part(part.text)
    return ResponseOutputRefusal.model_construct(refusal=part.text, type="refusal")


def _blank(content: Any, refusals: bool) -> None:
    """Empty a part announced with text in it (the text is checked as it streams)."""
    if isinstance(content, ResponseOutputText):
        if content.text or content.annotations or content.logprobs:
            content.text = ""
            content.annotations = []
            content.logprobs = None
    elif isinstance(content, ResponseOutputRefusal) and refusals:
        content.refusal = ""


def _show_part(content: Any, part: _Part) -> None:
    if isinstance(content, ResponseOutputText):
        if content.text != part.text:
            content.annotations = []  # their offsets are into the text before repair
            content.logprobs = None
        content.text = part.text
    elif isinstance(content, ResponseOutputRefusal):
        content.refusal = part.text


def _part_delta(part: _Part, done: Any, text: str) -> Any:
    return _new_delta(part, (done.output_index, done.content_index), text)


def _new_delta(part: _Part, key: tuple[int, int], text: str) -> Any:
    if part.kind == "text":
        return ResponseTextDeltaEvent.model_construct(
            content_index=key[1],
            delta=text,
            item_id=part.item_id,
            logprobs=[],
            output_index=key[0],
            sequence_number=0,
            type="response.output_text.delta",
        )
    return ResponseRefusalDeltaEvent.model_construct(
        content_index=key[1],
        delta=text,
        item_id=part.item_id,
        output_index=key[0],
        sequence_number=0,
        type="response.refusal.delta",
    )


def _part_end(part: _Part, key: tuple[int, int]) -> list[Any]:
    """The done events of a part that ends with the block message."""
    oi, ci = key
    if part.kind == "text":
        done: Any = ResponseTextDoneEvent.model_construct(
            content_index=ci,
            item_id=part.item_id,
            logprobs=[],
            output_index=oi,
            sequence_number=0,
            text=part.text,
            type="response.output_text.done",
        )
    else:
        done = ResponseRefusalDoneEvent.model_construct(
            content_index=ci,
            item_id=part.item_id,
            output_index=oi,
            refusal=part.text,
            sequence_number=0,
            type="response.refusal.done",
        )
    part_done = ResponseContentPartDoneEvent.model_construct(
        content_index=ci,
        item_id=part.item_id,
        output_index=oi,
        part=_content(part),
        sequence_number=0,
        type="response.content_part.done",
    )
    return [done, part_done]


def _arg_delta(done: Any, text: str) -> Any:
    if done.type == _ARG_DONES[0]:
        return ResponseFunctionCallArgumentsDeltaEvent.model_construct(
            delta=text,
            item_id=done.item_id,
            output_index=done.output_index,
            sequence_number=0,
            type="response.function_call_arguments.delta",
        )
    return ResponseCustomToolCallInputDeltaEvent.model_construct(
        delta=text,
        item_id=done.item_id,
        output_index=done.output_index,
        sequence_number=0,
        type="response.custom_tool_call_input.delta",
    )


def _item_done(index: int, item: Any) -> ResponseOutputItemDoneEvent:
    return ResponseOutputItemDoneEvent.model_construct(
        item=item, output_index=index, sequence_number=0, type="response.output_item.done"
    )


def _message_events(index: int, item: ResponseOutputMessage, text: str) -> list[Any]:
    """The events of a new message item holding ``text`` (the block message)."""
    added = item.model_copy(update={"content": [], "status": "in_progress"})
    part = _Part(None, "text", item.id)
    part.text = text
    out: list[Any] = [
        ResponseOutputItemAddedEvent.model_construct(
            item=added, output_index=index, sequence_number=0, type="response.output_item.added"
        ),
        ResponseContentPartAddedEvent.model_construct(
            content_index=0,
            item_id=item.id,
            output_index=index,
            part=_text_part(""),
            sequence_number=0,
            type="response.content_part.added",
        ),
    ]
    if text:
        out.append(_new_delta(part, (index, 0), text))
    out.extend(_part_end(part, (index, 0)))
    out.append(_item_done(index, item))
    return out
