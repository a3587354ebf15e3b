"""The runs of a guarded call: push text in, get released text out.

A policy run is driven by pulling (``policy.stream(source)``); an adapter reads an SDK
stream and has deltas to *push* into one run per choice, content block or tool call.
These guards are push runs of the policy (``policy.push()`` / ``policy.push_sync()``),
with what an adapter needs on top (tool-argument rules and release modes).  Each comes
in two twins that differ only in I/O:

``TextGuard(policy, *, runs=None, trace_id=None, on_trace=None)`` (async)
    ``await g.feed(delta) -> str``   released text for this delta ("" while held back)
    ``await g.finish() -> str``      the text is complete: the rest of the released text
    ``g.blocked -> Blocked | None``  set once the run is blocked: show ``blocked.message``
                                     (after the text returned so far), then end natively
    ``g.done -> bool``               the run ended (finished, blocked or closed):
                                     ``feed`` returns "" from then on
    ``g.result -> Result | None``    the run's result once it ended (``None`` if closed early)
    ``await g.aclose()`` / ``g.close()``   stop early (idempotent)
``SyncTextGuard``: the same with plain calls (a sync push run: no event loop).
``await g.push(text)`` (both twins): ``feed(text)``, or ``finish()`` for ``None``: what a
    translator awaits; the sync twin's is done when it returns, so a translator's step
    over sync runs never waits (see :mod:`._stream`).

``ToolArgsGuard(policy, name, ...)`` / ``SyncToolArgsGuard``
    One tool call's arguments (JSON text).  ``policy`` is the main policy: the rule is
    ``policy.tools[name]``; a tool without one passes (``mode == "pass"``), or is blocked
    at once when ``policy.tool_rule(name)`` refuses it (``mode == "block"``, ``blocked`` set).
    ``mode`` is ``"pass"``, ``"block"``, ``"complete"`` or ``"incremental"`` (the rule's
    ``release``).  As above, except that in ``complete`` mode ``feed`` returns "" and
    ``finish`` returns all the guarded arguments, once complete and the run did not block.

:class:`Runs` makes every run of one guarded call (a stream or a reply), sync or async
as the call is, and counts them (at most :data:`MAX_RUNS`): the one place where a
call's runs are made (and so where their decisions can be seen).

A guard is used by one task at a time (no concurrent ``feed``).  Its guarantees and
trace are those of a stream.  Nothing here logs or keeps text beyond the run; reprs
show no text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Final, Literal

from .. import Action, Blocked, Finding, Policy, Push, Result, SyncPush, Trace
from .._common.closing import AsyncClosing, Closing
from .._runtime.limits import Limits
from ._trace import adapter_block

if TYPE_CHECKING:
    from .._observe.calls import CallRecorder

__all__ = [
    "MAX_RUNS",
    "Guard",
    "Refusals",
    "RunCount",
    "Runs",
    "SyncTextGuard",
    "SyncToolArgsGuard",
    "TextGuard",
    "ToolArgsGuard",
    "ToolGuard",
    "names_matter",
    "refusals_guarded",
    "too_many_runs",
    "tool_renamed",
]

_TraceCallback = Callable[[Trace], None]
#: How refusal text is treated: checked by the policy like text (default), or passed as is.
Refusals = Literal["guard", "pass"]

#: The most runs (choices, content parts, tool calls with a rule) one guarded call opens;
#: past it the call is blocked, so that an upstream cannot make one reply cost without bound.
MAX_RUNS = 1024


class _Ready:
    """An awaitable that is already done."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __await__(self) -> Generator[Any, Any, str]:
        return self._value
        yield  # a generator  # pragma: no cover


_EMPTY: Final = _Ready("")


def _finding(check_id: str, check_type: str, reason: str) -> Finding:
    return Finding(
        check_id=check_id, check_type=check_type, action=Action.BLOCK, reason=reason, start=0, end=0
    )


def tool_renamed(policy: Policy) -> Blocked:
    """The block of a call whose name came late or changed while it streamed: its
    arguments cannot be trusted to the rule of either name."""
    reason = "tools: a tool call whose name came late or changed"
    return Blocked(policy.block_message, (_finding("tools", "tools", reason),))


def too_many_runs(policy: Policy) -> Blocked:
    """The block of a call that opens more than :data:`MAX_RUNS` runs."""
    reason = f"adapter: the reply opens more than {MAX_RUNS:,} runs (choices, parts, calls)"
    return Blocked(policy.block_message, (_finding("runs", "adapter", reason),))


def names_matter(policy: Policy) -> bool:
    """Whether a call's name decides how its arguments are checked."""
    return bool(policy.tools) or policy.unknown_tools == "block"


class RunCount:
    """How many runs a guarded call has opened (one per call)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def take(self) -> bool:
        """One more run: whether it is within :data:`MAX_RUNS`."""
        self.n += 1
        return self.n <= MAX_RUNS


class _Refused:
    """Stands in for the run of a guard refused by :class:`RunCount`: blocked, done."""

    __slots__ = ("blocked",)

    done = True
    result = None

    def __init__(self, blocked: Blocked) -> None:
        self.blocked = blocked

    def close(self) -> None:
        pass


class _TextRun:
    """What both text guards are: one push run of the policy, and whether it was closed."""

    __slots__ = ("_closed", "_push")

    _push: Any  # Push | SyncPush | _Refused
    #: Whether the run is a sync push run (the sync twin).
    _sync = False

    def __init__(
        self,
        policy: Policy,
        *,
        runs: RunCount | None = None,
        trace_id: str | None = None,
        on_trace: _TraceCallback | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._closed = False
        if runs is not None and not runs.take():
            self._push = _Refused(too_many_runs(policy))
        else:  # (``limits``: the call's clock, shared by its runs; else the run's own)
            make = SyncPush if self._sync else Push
            self._push = make(policy, trace_id, on_trace, limits)

    @property
    def blocked(self) -> Blocked | None:
        """The block, once the run is blocked (show its ``message``)."""
        blocked: Blocked | None = self._push.blocked
        return blocked

    @property
    def done(self) -> bool:
        """The run ended: finished, blocked or closed."""
        return self._closed or bool(self._push.done)

    @property
    def result(self) -> Result | None:
        """The run's result once it ended; ``None`` while it runs or if it was closed early."""
        result: Result | None = self._push.result
        return result

    def close(self) -> None:
        """Stop (the run's decision is block unless it had ended); idempotent."""
        if not self._closed:
            self._closed = True
            self._push.close()

    def expire(self) -> None:
        """The call's time limit passed: a run still open ends blocked (its finding
        says which limit: the call's clock, shared by its runs)."""
        if not self.done:
            self._push.expire()

    def __repr__(self) -> str:
        state = "blocked" if self.blocked else "done" if self.done else "open"
        return f"<{type(self).__name__} {state}>"


class TextGuard(_TextRun, AsyncClosing):
    """One async run of a policy over text pushed delta by delta; see the module doc."""

    __slots__ = ()

    def feed(self, delta: str) -> Awaitable[str]:
        """Push one delta; await the text it releases ("" while held back or after the end)."""
        if type(delta) is not str:
            raise TypeError(f"a delta must be str, got {type(delta).__name__}")
        if self.done:
            return _EMPTY
        push: Push = self._push
        return push.feed(delta)

    def finish(self) -> Awaitable[str]:
        """The text is complete: await the rest of the released text."""
        if self.done:
            return _EMPTY
        push: Push = self._push
        return push.finish()

    def push(self, text: str | None) -> Awaitable[str]:
        """``feed(text)``, or ``finish()`` for ``None`` (what a translator awaits)."""
        push = self._push
        if self._closed or push.done:
            return _EMPTY
        return push.finish() if text is None else push.feed(text)  # type: ignore[no-any-return]

    def pushed(self, text: str) -> str | Awaitable[str]:
        """``push(text)``, for the path of every delta: the awaitable (here), or the
        released text itself (the sync twin: nothing to await, which costs)."""
        push = self._push
        if self._closed or push.done:
            return ""
        return push.feed(text)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Stop (the run's decision is block unless it had ended); idempotent."""
        self.close()


class SyncTextGuard(_TextRun, Closing):
    """:class:`TextGuard` for sync callers (a sync push run; see the module doc)."""

    __slots__ = ()
    _sync = True

    def feed(self, delta: str) -> str:
        """Push one delta: the text it releases ("" while held back or after the end)."""
        if type(delta) is not str:
            raise TypeError(f"a delta must be str, got {type(delta).__name__}")
        if self.done:
            return ""
        push: SyncPush = self._push
        return push.feed(delta)

    def finish(self) -> str:
        """The text is complete: the rest of the released text."""
        if self.done:
            return ""
        push: SyncPush = self._push
        return push.finish()

    def push(self, text: str | None) -> Awaitable[str]:
        """``feed(text)``, or ``finish()`` for ``None``, done when it returns (so a step
        over sync runs never waits)."""
        push = self._push
        if self._closed or push.done:
            return _EMPTY
        return _Ready(push.finish() if text is None else push.feed(text))

    def pushed(self, text: str) -> str | Awaitable[str]:
        """``push(text)``, done: the released text (see :meth:`TextGuard.pushed`)."""
        push = self._push
        if self._closed or push.done:
            return ""
        released: str = push.feed(text)
        return released


class _ToolRun:
    """What both tool-argument guards are: the rule's mode, and its text run if any.

    The twins differ only in how they call the text run; what the mode makes of its
    releases is here (:meth:`_fed`, :meth:`_finished`).
    """

    __slots__ = ("_held", "_text", "blocked", "mode")

    _text: Any  # TextGuard | SyncTextGuard | None
    _sync = False

    def __init__(
        self,
        policy: Policy,
        name: str | None,
        *,
        runs: RunCount | None = None,
        trace_id: str | None = None,
        on_trace: _TraceCallback | None = None,
        json: bool = True,
        limits: Limits | None = None,
    ) -> None:
        tool = policy.tool_rule(name, json=json)
        self._text = None
        self._held = ""
        self.blocked: Blocked | None = None
        if tool is None:
            self.mode = "pass"
        elif isinstance(tool, Blocked):
            self.mode = "block"
            self.blocked = tool
        elif runs is not None and not runs.take():
            self.mode = "block"
            self.blocked = too_many_runs(policy)
        else:
            self.mode = tool.release
            make = SyncTextGuard if self._sync else TextGuard
            self._text = make(tool.policy, trace_id=trace_id, on_trace=on_trace, limits=limits)

    @property
    def done(self) -> bool:
        return self.mode == "block" or (self._text is not None and self._text.done)

    @property
    def result(self) -> Result | None:
        """The arguments' result (``None`` for a tool without a rule, or one closed early)."""
        return None if self._text is None else self._text.result

    def _unchecked(self, delta: str) -> str:
        return "" if self.mode == "block" else delta

    def _fed(self, released: str) -> str:
        self._note()
        if self.mode == "incremental":
            return released
        self._held += released
        return ""

    def _finished(self, released: str) -> str:
        self._note()
        if self.mode == "incremental":
            return released
        held = self._held + released
        self._held = ""
        return "" if self.blocked is not None else held

    def _note(self) -> None:
        text = self._text
        if text is not None and text.blocked is not None:
            self.blocked = text.blocked

    def close(self) -> None:
        """Stop early (idempotent)."""
        self._held = ""
        if self._text is not None:
            self._text.close()

    def expire(self) -> None:
        """The call's time limit passed (see :meth:`_TextRun.expire`)."""
        if self._text is not None:
            self._text.expire()
            self._note()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.mode}>"


class ToolArgsGuard(_ToolRun, AsyncClosing):
    """The arguments of one tool call, checked as they stream (async); see the module doc."""

    __slots__ = ()

    async def feed(self, delta: str) -> str:
        """Push a piece of the arguments: what may be shown now."""
        text: TextGuard | None = self._text
        if text is None:
            return self._unchecked(delta)
        return self._fed(await text.feed(delta))

    async def finish(self) -> str:
        """The call's arguments are complete: the rest (``complete``: all of them)."""
        text: TextGuard | None = self._text
        return "" if text is None else self._finished(await text.finish())

    def push(self, text: str | None) -> Awaitable[str]:
        """``feed(text)``, or ``finish()`` for ``None`` (what a translator awaits)."""
        return self.finish() if text is None else self.feed(text)

    async def aclose(self) -> None:
        self.close()


class SyncToolArgsGuard(_ToolRun, Closing):
    """:class:`ToolArgsGuard` for sync callers (see the module doc)."""

    __slots__ = ()
    _sync = True

    def feed(self, delta: str) -> str:
        """Push a piece of the arguments: what may be shown now."""
        text: SyncTextGuard | None = self._text
        return self._unchecked(delta) if text is None else self._fed(text.feed(delta))

    def finish(self) -> str:
        """The call's arguments are complete: the rest (``complete``: all of them)."""
        text: SyncTextGuard | None = self._text
        return "" if text is None else self._finished(text.finish())

    def push(self, text: str | None) -> Awaitable[str]:
        """``feed(text)``, or ``finish()`` for ``None``, done when it returns."""
        return _Ready(self.finish() if text is None else self.feed(text))


#: A text run of either twin, as a translator sees it.
Guard = TextGuard | SyncTextGuard
#: A tool call's run of either twin.
ToolGuard = ToolArgsGuard | SyncToolArgsGuard


class Runs:
    """Every run of one guarded call (a stream or a reply) is made here.

    Runs are sync or async as the call is (its driver then feeds them), and counted:
    past :data:`MAX_RUNS` a new run is blocked at once (finding ``runs``).  Runs that
    are not counted (a citation's quoted text, checked whole) are made with
    ``counted=False``.  :meth:`close` closes the counted runs still open.

    ``rec``, the call's recorder (if the call is traced): each run gets its trace id
    and a hook that puts the run's trace into the call's record, as ``part`` (what a run
    of text is: ``"choice"``, ``"output_item"``, ``"content_block"``) or ``"tool_call"``,
    with the ``index`` the translator gives (the choice, output item or block).
    """

    __slots__ = ("_count", "_made", "limits", "part", "policy", "rec", "sync")

    def __init__(
        self, policy: Policy, *, sync: bool, rec: CallRecorder | None = None, part: str = "choice"
    ) -> None:
        self.policy = policy
        self.sync = sync
        self.rec = rec
        self.part = part
        self._count = RunCount()
        self._made: list[Guard | ToolGuard] = []
        #: The call's clock (``stream.deadline_ms``, ``idle_timeout_ms``), shared by every
        #: run made from now on; ``None``: each run keeps its own (a reply, a fallback's source).
        self.limits: Limits | None = None

    def _traced(self, part: str, index: int, name: str | None = None) -> dict[str, Any]:
        rec = self.rec
        if rec is None:
            return {}
        return {"trace_id": rec.trace_id, "on_trace": rec.run(part, index, name)}

    def text(
        self,
        policy: Policy | None = None,
        *,
        counted: bool = True,
        index: int = 0,
        part: str | None = None,
    ) -> Guard:
        """A run of ``policy`` (the call's policy by default) over text."""
        make = SyncTextGuard if self.sync else TextGuard
        runs = self._count if counted else None
        traced = self._traced(part or self.part, index)
        guard = make(
            self.policy if policy is None else policy, runs=runs, limits=self.limits, **traced
        )
        if guard.blocked is not None:  # refused: one run too many
            self._refused(guard.blocked)
        if counted:  # (one not counted is fed whole at once: it is not kept, nor closed here)
            self._made.append(guard)
        return guard

    def tool(self, name: str | None, index: int = 0, *, json: bool = True) -> ToolGuard:
        """The run of one tool call's arguments (by the rule of ``name``; ``json``:
        they are JSON, not a custom tool's free text); ``index``: its place in the trace."""
        make = SyncToolArgsGuard if self.sync else ToolArgsGuard
        traced = self._traced("tool_call", index, name)
        guard = make(self.policy, name, runs=self._count, json=json, limits=self.limits, **traced)
        if guard.blocked is not None:  # a tool blocked by name, or one run too many
            self._refused(guard.blocked)
        self._made.append(guard)
        return guard

    def limit_passed(self, what: str) -> Blocked:
        """The block of a call whose time limit passed (``what``: which) while none of
        its runs was open; in the trace as a run of the adapter's."""
        reason = f"stream: {what}, blocked"
        blocked = Blocked(self.policy.block_message, (_finding("stream", "stream", reason),))
        self._refused(blocked)
        return blocked

    def _refused(self, blocked: Blocked) -> None:
        if self.rec is not None:
            adapter_block(self.rec, self.policy, blocked)

    def close(self) -> None:
        """Close every run of the call that is still open (idempotent)."""
        for guard in self._made:
            guard.close()

    def expire(self) -> Blocked | None:
        """The call's time limit passed: every run still open ends blocked; the block of
        the first of them (``None``: none was open)."""
        first: Blocked | None = None
        for guard in self._made:
            if guard.done:
                continue
            guard.expire()
            if first is None:
                first = guard.blocked
        return first


def refusals_guarded(refusals: object) -> bool:
    """``refusals=`` of a provider's guard: whether refusal text is checked."""
    if refusals not in ("guard", "pass"):
        raise ValueError(f"refusals must be 'guard' or 'pass', got {refusals!r}")
    return refusals == "guard"
