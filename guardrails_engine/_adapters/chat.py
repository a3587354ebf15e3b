"""OpenAI Chat Completions: chunks in, guarded chunks out (one run per choice).

A translator for :mod:`._stream` (see ``guardrails_engine/openai.py`` for the
semantics), and the non-streamed ``ChatCompletion`` through the same runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaFunctionCall,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChoiceLogprobs,
)

from .. import Blocked

if TYPE_CHECKING:
    from .._observe.calls import CallRecorder
from ._guard import Guard, Runs, ToolGuard, names_matter, tool_renamed
from ._logprobs import Logprobs
from ._stream import Translator, tool_text, whole

__all__ = ["ChatTranslator", "note_reply", "reply", "reply_text"]

_Tails = tuple[str, str, list[ChoiceDeltaToolCall], ChoiceDeltaFunctionCall | None]


class _Stop(Exception):
    """A run was blocked: end the stream (internal control flow, never escapes)."""

    def __init__(self, key: int, released: str, blocked: Blocked) -> None:
        super().__init__("blocked")
        self.key = key
        self.released = released
        self.blocked = blocked


class _Call:
    """One streamed tool call of a choice."""

    __slots__ = ("done", "guard", "id", "index", "name", "type")

    def __init__(self, guard: ToolGuard, tc: ChoiceDeltaToolCall) -> None:
        self.guard = guard
        self.index = tc.index
        self.id = tc.id
        self.type = tc.type
        self.name = tc.function.name if tc.function is not None else None
        self.done = False


class _FunctionCall:
    """The deprecated ``function_call`` of a choice (``functions=``): one run."""

    __slots__ = ("done", "guard", "name")

    def __init__(self, guard: ToolGuard, name: str | None) -> None:
        self.guard = guard
        self.name = name
        self.done = False


class _ChatChoice:
    __slots__ = ("calls", "cut", "finished", "function", "logprobs", "refusal", "text")

    def __init__(self) -> None:
        self.function: _FunctionCall | None = None
        self.logprobs: Logprobs | None = None  # made at the first chunk with logprobs
        self.text: Guard | None = None
        self.refusal: Guard | None = None
        self.calls: dict[int, _Call] = {}
        self.finished = False
        self.cut = False  # ended by a length check (``finish_reason: "length"``)


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


class ChatTranslator(Translator[ChatCompletionChunk]):
    """Turns upstream chunks into guarded chunks (one policy run per choice)."""

    __slots__ = ("_choices", "_last", "_refusals", "_truncated")

    def __init__(self, runs: Runs, refusals: bool) -> None:
        super().__init__(runs)
        self._refusals = refusals
        self._choices: dict[int, _ChatChoice] = {}
        self._last: ChatCompletionChunk | None = None
        self._truncated = False  # a choice was ended by a length check

    async def process(self, chunk: ChatCompletionChunk) -> list[ChatCompletionChunk]:
        choices = chunk.choices
        if not choices:  # the usage chunk (include_usage), or a moderation chunk
            if chunk.usage is not None and self.runs.rec is not None:
                _usage(self.runs.rec, chunk.usage)
            return [chunk]
        self._last = chunk
        if len(choices) == 1 and chunk.usage is None:  # the common case, a text delta, inline
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
                released = guard.pushed(content)
                if not isinstance(released, str):
                    released = await released
                if guard.done:  # the run ended: blocked, or cut by a length check
                    if guard.blocked is not None:
                        return self._block(_Stop(choice.index, released, guard.blocked))
                    if state.finished:
                        return []  # (the upstream goes on with a choice that ended)
                    delta.content = released
                    self._end_cut(state, choice)
                    return [chunk]
                if released or delta.role is not None or delta.audio is not None:
                    # (content came with the chunk: it is in the model's fields set
                    # already; writing the field's value skips pydantic's __setattr__)
                    delta.__dict__["content"] = released
                    return [chunk]
                if delta.function_call is None:
                    return []  # all held back: nothing to show in this chunk
                delta.__dict__["content"] = released
                return [chunk]
        rec = self.runs.rec
        if rec is not None:
            if not self._choices:  # the first chunk of the reply
                rec.response(id=chunk.id or None, model=chunk.model or None)
            if chunk.usage is not None:
                _usage(rec, chunk.usage)
        kept: list[ChunkChoice] = []
        try:
            for choice in choices:
                state = self._choices.get(choice.index)
                if state is None:
                    state = self._choices[choice.index] = _ChatChoice()
                elif state.cut:
                    continue  # (the upstream goes on with a choice that ended)
                await self._choice(state, choice)
                if not _is_empty(choice):
                    kept.append(choice)
        except _Stop as stop:  # (the choices before the blocked one in this chunk are shown)
            head = [chunk.model_copy(update={"choices": kept, "usage": None})] if kept else []
            return head + self._block(stop)
        if self._truncated:  # the reply is over once every choice has ended
            self.cut = all(state.finished for state in self._choices.values())
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
                guard = state.text = self.runs.text(index=choice.index)
            released = await guard.push(content)
            if guard.blocked is not None:
                raise _Stop(choice.index, released, guard.blocked)
            if choice.logprobs is not None or state.logprobs is not None:
                self._logprobs(state, choice, content, released)
            delta.content = released
            if guard.done and not state.finished:  # cut by a length check: it ends here
                self._end_cut(state, choice)
                return
        refusal = delta.refusal
        if refusal and self._refusals:
            guard = state.refusal
            if guard is None:
                guard = state.refusal = self.runs.text(index=choice.index)
            released = await guard.push(refusal)
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
                calls = delta.tool_calls
                delta.tool_calls = await self._tool_calls(state, choice.index, calls)
            if delta.function_call is not None:
                legacy = delta.function_call
                delta.function_call = await self._function_call(state, choice.index, legacy)
            if choice.finish_reason is not None:
                if self.runs.rec is not None:
                    self.runs.rec.finish_reason(choice.finish_reason)
                await self._finish(state, choice)
        except _Stop as stop:  # the text this chunk released comes before the message
            stop.released = (delta.content or "") + stop.released
            raise

    def _end_cut(self, state: _ChatChoice, choice: ChunkChoice) -> None:
        """A length check cut the choice's text: it ends here the API's way for a
        length cut (``finish_reason: "length"``); what else it held is not shown, and
        the stream stops reading once every choice has ended."""
        state.cut = state.finished = True
        self._truncated = True
        delta = choice.delta
        delta.refusal = None
        delta.tool_calls = None
        delta.function_call = None
        choice.finish_reason = "length"
        self.cut = all(other.finished for other in self._choices.values())

    @staticmethod
    def _logprobs(state: _ChatChoice, choice: ChunkChoice, written: str, shown: str) -> None:
        carried = state.logprobs
        if carried is None:
            carried = state.logprobs = Logprobs()
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
                if not name and names_matter(self.runs.policy):
                    raise _Stop(index, "", tool_renamed(self.runs.policy))
                call = state.calls[tc.index] = _Call(self.runs.tool(name, tc.index), tc)
                if call.guard.blocked is not None:
                    raise _Stop(index, "", call.guard.blocked)
            elif (
                tc.function is not None
                and tc.function.name
                and tc.function.name != call.name
                and names_matter(self.runs.policy)
            ):
                raise _Stop(index, "", tool_renamed(self.runs.policy))
            mode = call.guard.mode
            if mode == "pass":
                out.append(tc)
                continue
            fn = tc.function
            args = fn.arguments if fn is not None else None
            released = ""
            if args:
                released = await call.guard.push(args)
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
            if not fc.name and names_matter(self.runs.policy):
                raise _Stop(index, "", tool_renamed(self.runs.policy))
            call = state.function = _FunctionCall(self.runs.tool(fc.name), fc.name)
            if call.guard.blocked is not None:
                raise _Stop(index, "", call.guard.blocked)
        elif fc.name and fc.name != call.name and names_matter(self.runs.policy):
            raise _Stop(index, "", tool_renamed(self.runs.policy))
        mode = call.guard.mode
        if mode == "pass":
            return fc
        released = ""
        if fc.arguments:
            released = await call.guard.push(fc.arguments)
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
        tail = await guard.push(None)
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
        tail = await guard.push(None)
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
            text = await state.text.push(None)
            if state.text.blocked is not None:
                raise _Stop(index, text, state.text.blocked)
        if state.refusal is not None:
            refusal = await state.refusal.push(None)
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
        if last is None or self.blocked is not None:
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
            return head + self._block(stop)
        return [_chunk_like(last, choices)] if choices else []

    def shown(self, events: list[ChatCompletionChunk]) -> str | None:
        got: str | None = None
        for chunk in events:
            for choice in chunk.choices:
                d = choice.delta
                if d.content or d.refusal:
                    got = (got or "") + (d.content or "") + (d.refusal or "")
                elif d.tool_calls or d.function_call is not None:
                    got = got or ""
        return got

    def expired(self, blocked: Blocked) -> list[ChatCompletionChunk] | None:
        """The block message on the first open choice, then content_filter on each."""
        self.blocked = blocked
        if self._last is None:
            return None
        open_ = [index for index, state in sorted(self._choices.items()) if not state.finished]
        return self._block(_Stop(open_[0], "", blocked)) if open_ else []

    def _block(self, stop: _Stop) -> list[ChatCompletionChunk]:
        """The block message on the blocked choice, then content_filter on every open one."""
        self.blocked = stop.blocked
        last = self._last
        assert last is not None
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


def _usage(rec: CallRecorder, usage: Any) -> None:
    rec.usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)


def note_reply(rec: CallRecorder, completion: ChatCompletion) -> None:
    """What a call's trace keeps of a completion as the upstream sent it."""
    rec.response(id=completion.id or None, model=completion.model or None)
    if completion.usage is not None:
        _usage(rec, completion.usage)
    for choice in completion.choices:
        rec.finish_reason(choice.finish_reason)


def reply_text(completion: ChatCompletion) -> str:
    """The text a guarded completion shows (its choices' content and refusals)."""
    return "".join(
        (c.message.content or "") + (c.message.refusal or "") for c in completion.choices
    )


# -- the non-streamed reply ---------------------------------------------------------------
async def reply(runs: Runs, completion: ChatCompletion, refusals: bool) -> ChatCompletion:
    """A copy of ``completion`` with every text checked (each choice on its own): through
    runs of the call, the tool-call arguments by the same rule as a stream's."""
    completion = completion.model_copy(deep=True)
    for choice in completion.choices:
        message = choice.message
        blocked: Blocked | None = None
        changed = False
        texts = [("content", message.content)]
        if refusals:
            texts.append(("refusal", message.refusal))
        for field, text in texts:
            if text is None:
                continue
            guard = runs.text(index=choice.index)
            shown = await whole(guard, text)
            if guard.blocked is not None:
                blocked = guard.blocked
                break
            if shown != text:
                setattr(message, field, shown)
                changed = True
        calls: list[tuple[Any, str, str, str]] = []  # (holder, field, name, arguments)
        if message.function_call is not None:
            legacy = message.function_call
            calls.append((legacy, "arguments", legacy.name, legacy.arguments))
        for call in message.tool_calls or ():
            if call.type == "function":
                fn = call.function
                calls.append((fn, "arguments", fn.name, fn.arguments))
            else:
                calls.append((call.custom, "input", call.custom.name, call.custom.input))
        for at, (holder, field, name, text) in enumerate(calls if blocked is None else ()):
            checked = await tool_text(runs, name, text, at, json=field == "arguments")
            if isinstance(checked, Blocked):
                blocked = checked
                break
            setattr(holder, field, checked)
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
    return completion
