"""Call traces: one record per guarded model call, built by a :class:`CallRecorder`.

A run's :class:`~guardrails_engine.Trace` says what the policy decided about one text; a
:class:`CallTrace` says what happened to one model call around those runs: the model
asked for and the one that answered, the request parameters, when the upstream's first
chunk came and when the first piece was released to the reader (the difference is the
cost of holding back), the total duration, the tokens, the finish reasons, the response
id, and every run's trace (one per choice, content block or tool call), per attempt.

The adapters drive a recorder; so can any code that calls a model (the recorder knows
nothing of the SDKs)::

    rec = CallRecorder(policy, provider="openai", request_model="gpt-4o", on_trace=sink)
    guard = TextGuard(policy, trace_id=rec.trace_id, on_trace=rec.run("choice", 0))
    for chunk in upstream:
        rec.upstream_chunk()
        ...
        if released:
            rec.released(released)
    rec.response(id=..., model=...); rec.usage(input_tokens=..., output_tokens=...)
    rec.finish_reason("stop")
    rec.finish()

Privacy: a record holds no text unless the recorder was made with
``capture_content=True``; then the prompt and the released output are first checked by
the policy's ``pii`` and ``content`` checks (repaired, or withheld when they block), and
only that is kept.  Findings never carry a value (see ``_runtime/trace.py``).

Nothing here raises into the caller's stream: a sink that fails is logged by its type.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from threading import Lock
from typing import Any, Final

from .._policy.policy import Policy
from .._runtime.trace import RunHook, Trace, deliver, logger, new_trace_id

__all__ = ["CallAttempt", "CallRecorder", "CallTrace", "RunRecord", "TraceSink"]

#: Anything that takes a record: a :class:`Trace` (a run on its own) or a :class:`CallTrace`.
TraceSink = Callable[[Any], object]

#: The check types that see captured content before it is kept.
CAPTURE_CHECKS: Final = frozenset({"pii", "content"})
#: The longest prompt or output kept when content is captured (cut after the checks, so a
#: cut never splits a value into a part the checks would not know).
MAX_CAPTURE_CHARS: Final = 100_000
#: A longer prompt or output is not screened, and nothing of it is kept.
MAX_SCREEN_CHARS: Final = 1_000_000
#: Names (models, ids, providers, finish reasons) are cut to this many characters.
MAX_NAME_CHARS: Final = 256
#: At most this many request parameters are kept.
MAX_PARAMETERS: Final = 64


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of the policy inside a call: a choice, a content block or a tool call.

    ``part`` names what was checked (``"choice"``, ``"content_block"``, ``"tool_call"``,
    ``"output_item"``, ...), ``index`` its position, ``name`` the tool's name for a tool
    call; ``trace`` is the run's own trace (decision, findings without values, timings).
    """

    part: str
    index: int
    name: str | None
    trace: Trace

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "index": self.index, "name": self.name, **self.trace.to_dict()}


@dataclass(frozen=True, slots=True)
class CallAttempt:
    """One request to one upstream (a fallback adds one attempt per model tried).

    Times are milliseconds from the start of the attempt; ``None`` when it did not
    happen (no chunk came, the reply was not streamed, the upstream sent no usage).
    """

    provider: str
    request_model: str | None
    response_model: str | None
    response_id: str | None
    finish_reasons: tuple[str, ...]
    input_tokens: int | None
    output_tokens: int | None
    upstream_first_ms: float | None
    duration_ms: float
    chunks: int
    runs: tuple[RunRecord, ...]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "request_model": self.request_model,
            "response_model": self.response_model,
            "response_id": self.response_id,
            "finish_reasons": list(self.finish_reasons),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "upstream_first_ms": self.upstream_first_ms,
            "duration_ms": self.duration_ms,
            "chunks": self.chunks,
            "runs": [r.to_dict() for r in self.runs],
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class CallTrace:
    """One guarded model call, as recorded for observability.

    ``decision`` is the call's outcome over all its runs: ``block`` if any run blocked,
    else ``repair`` if any repaired, else ``pass`` (``None`` if a run did not end);
    ``ending`` is ``completed``, ``blocked``, ``truncated`` (cut at the policy's length
    limit), ``timed_out`` (``stream.deadline_ms`` passed), ``idle`` (no event from the
    upstream for ``stream.idle_timeout_ms``), ``closed`` (stopped early by the reader),
    ``cancelled`` or ``error``.  ``first_out_ms`` is the time to the first released piece,
    from the start of the call.  ``prompt`` and ``output`` are ``None`` unless content
    capture was asked for (and then hold what the policy's pii and content checks let
    through).  The other response fields are those of the last attempt.
    """

    trace_id: str
    operation: str
    streamed: bool
    policy: str
    policy_hash: str
    started_at: float  # seconds since the epoch
    duration_ms: float
    first_out_ms: float | None
    decision: str | None
    ending: str
    parameters: Mapping[str, Any]
    attempts: tuple[CallAttempt, ...]
    prompt: str | None = None
    output: str | None = None
    error: str | None = None

    @property
    def last(self) -> CallAttempt:
        return self.attempts[-1]

    @property
    def provider(self) -> str:
        return self.last.provider

    @property
    def request_model(self) -> str | None:
        return self.last.request_model

    @property
    def response_model(self) -> str | None:
        return self.last.response_model

    @property
    def response_id(self) -> str | None:
        return self.last.response_id

    @property
    def finish_reasons(self) -> tuple[str, ...]:
        return self.last.finish_reasons

    @property
    def input_tokens(self) -> int | None:
        return _total(a.input_tokens for a in self.attempts)

    @property
    def output_tokens(self) -> int | None:
        return _total(a.output_tokens for a in self.attempts)

    @property
    def upstream_first_ms(self) -> float | None:
        """Time to the upstream's first chunk of the last attempt, from the call's start."""
        last = self.last.upstream_first_ms
        if last is None:
            return None
        return round(last + sum(a.duration_ms for a in self.attempts[:-1]), 4)

    @property
    def runs(self) -> tuple[RunRecord, ...]:
        return self.last.runs

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "kind": "call",
            "operation": self.operation,
            "streamed": self.streamed,
            "policy": self.policy,
            "policy_hash": self.policy_hash,
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
            "first_out_ms": self.first_out_ms,
            "decision": self.decision,
            "ending": self.ending,
            "parameters": dict(self.parameters),
            "attempts": [a.to_dict() for a in self.attempts],
            "prompt": self.prompt,
            "output": self.output,
            "error": self.error,
        }


def _total(values: Any) -> int | None:
    got = [v for v in values if v is not None]
    return sum(got) if got else None


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 4)


class _Attempt:
    """The mutable state of the attempt being recorded."""

    __slots__ = (
        "chunks",
        "error",
        "finish_reasons",
        "first_chunk",
        "input_tokens",
        "output_tokens",
        "provider",
        "request_model",
        "response_id",
        "response_model",
        "runs",
        "started",
    )

    def __init__(self, provider: str, request_model: str | None, started: float) -> None:
        self.provider = provider
        self.request_model = request_model
        self.started = started
        self.first_chunk: float | None = None
        self.chunks = 0
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reasons: list[str] = []
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.runs: list[RunRecord] = []
        self.error: str | None = None

    def freeze(self, ended: float) -> CallAttempt:
        return CallAttempt(
            provider=self.provider,
            request_model=self.request_model,
            response_model=self.response_model,
            response_id=self.response_id,
            finish_reasons=tuple(self.finish_reasons),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            upstream_first_ms=(
                _ms(self.first_chunk - self.started) if self.first_chunk is not None else None
            ),
            duration_ms=_ms(ended - self.started),
            chunks=self.chunks,
            runs=tuple(sorted(self.runs, key=lambda r: (r.part, r.index))),
            error=self.error,
        )


class _RunHook(RunHook):
    """The callback of one run of a call: puts the run's trace into the call's record."""

    __slots__ = ("_index", "_name", "_part", "_recorder")

    def __init__(self, recorder: CallRecorder, part: str, index: int, name: str | None) -> None:
        self._recorder = recorder
        self._part = part
        self._index = index
        self._name = name

    def __call__(self, trace: Trace) -> None:
        self._recorder.run_ended(trace, part=self._part, index=self._index, name=self._name)


class CallRecorder:
    """Records one guarded model call and sends its :class:`CallTrace` to the sinks.

    ``policy`` is the policy that guards the call (its ``on_trace`` is a sink too);
    ``provider`` (``"openai"``, ``"anthropic"``, ...), ``operation`` (``"chat"``) and
    ``request_model`` describe the request; ``parameters`` are the request's
    parameters other than the messages (temperature, max_tokens, ...: only numbers,
    booleans and short strings are kept); ``trace_id`` names the call (default: a new
    one); ``on_trace`` receives the record; ``capture_content`` keeps the prompt (see
    :meth:`prompt`) and the released output, checked first; ``started`` is the
    :func:`time.perf_counter` value when the request was sent (default: now).

    The calls on the hot path (:meth:`upstream_chunk`, :meth:`released`) cost a
    comparison and an addition.  Used by one task at a time, like the stream it
    records; :meth:`finish` is idempotent and sends the record once.

    :raises TypeError: when ``policy`` is not a :class:`Policy` or a name is not a str.
    """

    __slots__ = (
        "_attempt",
        "_attempts",
        "_capture",
        "_done",
        "_ended",
        "_first_out",
        "_lock",
        "_on_trace",
        "_operation",
        "_output",
        "_parameters",
        "_policy",
        "_prompt",
        "_started",
        "_started_wall",
        "_streamed",
        "trace_id",
    )

    def __init__(
        self,
        policy: Policy,
        *,
        provider: str,
        request_model: str | None = None,
        operation: str = "chat",
        streamed: bool = True,
        parameters: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        on_trace: TraceSink | None = None,
        capture_content: bool = False,
        started: float | None = None,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a Policy, got {type(policy).__name__}")
        for name, value in (("provider", provider), ("operation", operation)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {type(value).__name__}")
        if request_model is not None and not isinstance(request_model, str):
            raise TypeError(f"request_model must be a str, got {type(request_model).__name__}")
        if on_trace is not None and not callable(on_trace):
            raise TypeError(f"on_trace must be callable, got {type(on_trace).__name__}")
        now = time.perf_counter()
        self._policy = policy
        self._operation = _cut(operation)
        self._streamed = streamed
        self._parameters = _parameters(parameters or {})
        self.trace_id: str = trace_id if trace_id is not None else new_trace_id()
        self._on_trace = on_trace
        self._capture = bool(capture_content)
        self._started = started if started is not None else now
        self._started_wall = time.time() - (now - self._started)
        self._first_out: float | None = None
        self._attempts: list[CallAttempt] = []
        self._attempt = _Attempt(_cut(provider), _name(request_model), self._started)
        self._prompt: str | None = None
        self._output: list[str] = []
        self._done = False
        self._ended: CallTrace | None = None
        self._lock = Lock()  # run hooks may fire from a worker thread

    # -- what the adapters call ----------------------------------------------------
    def run(self, part: str, index: int = 0, name: str | None = None) -> RunHook:
        """The ``on_trace=`` to give one run of this call (a choice, a content block, a
        tool call): its trace goes into this call's record, and to no sink on its own."""
        return _RunHook(self, part, index, name)

    def run_ended(
        self, trace: Trace, *, part: str, index: int = 0, name: str | None = None
    ) -> None:
        """Add a run's trace to the current attempt (what a :meth:`run` hook calls)."""
        with self._lock:
            if not self._done:
                self._attempt.runs.append(RunRecord(part, index, name, trace))

    def upstream_chunk(self) -> None:
        """An upstream chunk (event) came; the first one sets the time to first chunk."""
        attempt = self._attempt
        if attempt.first_chunk is None:
            attempt.first_chunk = time.perf_counter()
        attempt.chunks += 1

    def released(self, text: str = "") -> None:
        """Text went out to the reader; the first time sets the time to first piece.
        ``text`` is kept only when capturing content."""
        if self._first_out is None:
            self._first_out = time.perf_counter()
        if self._capture and text:
            self._output.append(text)

    def prompt(self, text: str) -> None:
        """The prompt as text (kept only when capturing content, after the checks)."""
        if self._capture:
            self._prompt = text

    @property
    def capturing(self) -> bool:
        """Whether content is captured (the prompt and the released text are kept)."""
        return self._capture

    def request(
        self,
        *,
        model: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        prompt: str | None = None,
        replace: bool = False,
    ) -> None:
        """The request's model, parameters and prompt (kept only when capturing), read
        after the recorder was made (an adapter reads the request): they fill in what
        was not given (``replace``: the model replaces the current attempt's, as the
        request of a fallback's source says it)."""
        if model is not None and (replace or self._attempt.request_model is None):
            self._attempt.request_model = _name(str(model))
        if parameters:
            self._parameters = {**_parameters(parameters), **self._parameters}
        if prompt is not None and self._prompt is None:
            self.prompt(prompt)

    def response(self, *, id: str | None = None, model: str | None = None) -> None:
        """The response's id and model, as soon as the upstream says them."""
        if id is not None:
            self._attempt.response_id = _cut(str(id))
        if model is not None:
            self._attempt.response_model = _cut(str(model))

    def usage(self, *, input_tokens: int | None = None, output_tokens: int | None = None) -> None:
        """Token counts from the upstream's ``usage`` (the last values given win)."""
        if input_tokens is not None:
            self._attempt.input_tokens = int(input_tokens)
        if output_tokens is not None:
            self._attempt.output_tokens = int(output_tokens)

    def finish_reason(self, reason: str | None) -> None:
        """A finish (stop) reason, one per choice, in the order they come."""
        if reason is not None and len(self._attempt.finish_reasons) < MAX_PARAMETERS:
            self._attempt.finish_reasons.append(_cut(str(reason)))

    def attempt(
        self,
        *,
        provider: str | None = None,
        request_model: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Close the current attempt (``error``: why it failed) and start another one."""
        now = time.perf_counter()
        with self._lock:
            if self._done:
                return
            if error is not None:
                self._attempt.error = type(error).__name__
            self._attempts.append(self._attempt.freeze(now))
            previous = self._attempt
            self._attempt = _Attempt(
                _cut(provider) if provider is not None else previous.provider,
                _name(request_model) if request_model is not None else previous.request_model,
                now,
            )

    def finish(self, *, ending: str | None = None, error: BaseException | None = None) -> CallTrace:
        """The call ended: build its record and send it (once; later calls return it).

        ``ending`` is ``"closed"`` when the reader stopped early, ``"cancelled"``,
        ``"truncated"``, ``"timed_out"``, ``"idle"``, or left out (``completed``, or
        ``blocked`` when a run blocked); ``error`` is the
        exception that ended the call, if any (only its type is kept).
        """
        with self._lock:
            if self._ended is not None:
                return self._ended
            self._done = True
        now = time.perf_counter()
        if error is not None:
            self._attempt.error = type(error).__name__
        attempts = (*self._attempts, self._attempt.freeze(now))
        runs = attempts[-1].runs
        decision = _decision(runs)
        if ending is None:
            ending = (
                "error"
                if error is not None
                else ("blocked" if decision == "block" else "completed")
            )
        prompt, output = self._captured()
        record = CallTrace(
            trace_id=self.trace_id,
            operation=self._operation,
            streamed=self._streamed,
            policy=self._policy.name,
            policy_hash=self._policy.content_hash,
            started_at=round(self._started_wall, 6),
            duration_ms=_ms(now - self._started),
            first_out_ms=_ms(self._first_out - self._started) if self._first_out else None,
            decision=decision,
            ending=ending,
            parameters=self._parameters,
            attempts=attempts,
            prompt=prompt,
            output=output,
            error=type(error).__name__ if error is not None else None,
        )
        self._ended = record
        emit(record, (self._policy.on_trace, self._on_trace))
        return record

    @property
    def record(self) -> CallTrace | None:
        """The record, once :meth:`finish` was called."""
        return self._ended

    def _captured(self) -> tuple[str | None, str | None]:
        if not self._capture:
            return None, None
        prompt = screen(self._policy, self._prompt) if self._prompt is not None else None
        output = screen(self._policy, "".join(self._output))
        return prompt, output


def _cut(value: str) -> str:
    return value[:MAX_NAME_CHARS]


def _name(value: str | None) -> str | None:
    return None if value is None else value[:MAX_NAME_CHARS]


def _decision(runs: tuple[RunRecord, ...]) -> str | None:
    decisions = [r.trace.decision for r in runs]
    if any(d is None for d in decisions):
        return "block" if "block" in decisions else None
    for d in ("block", "repair"):
        if d in decisions:
            return d
    return "pass"


_SCALARS = (bool, int, float)
_MAX_PARAM_CHARS = 200


def _parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The request parameters worth keeping: scalars and short strings (never messages)."""
    kept: dict[str, Any] = {}
    for key, value in parameters.items():
        if len(kept) >= MAX_PARAMETERS:
            break
        if (
            not isinstance(key, str)
            or len(key) > _MAX_PARAM_CHARS
            or key in ("messages", "input", "system", "prompt", "tools")
        ):
            continue
        if isinstance(value, _SCALARS) or (
            isinstance(value, str) and len(value) <= _MAX_PARAM_CHARS
        ):
            kept[key] = value
        elif (
            isinstance(value, list | tuple)
            and all(isinstance(v, str) and len(v) <= _MAX_PARAM_CHARS for v in value)
            and len(value) <= 16
        ):
            kept[key] = list(value)
    return kept


# -- delivery ---------------------------------------------------------------------


def emit(record: CallTrace, sinks: tuple[TraceSink | None, ...]) -> None:
    """Send a call's record to the logger (INFO), the sinks and OpenTelemetry."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(json.dumps(record.to_dict(), separators=(",", ":"), default=str))
    deliver(sinks, record)
    from .otel import export_call  # the API is imported only if installed

    export_call(record)


# -- content capture ----------------------------------------------------------------

_SCREENS: OrderedDict[tuple[str, str], Policy] = OrderedDict()
_SCREENS_MAX = 32
_SCREENS_LOCK = Lock()


class _Discard(RunHook):
    """The trace of a screening run goes nowhere (it is not a run of the service)."""

    __slots__ = ()

    def __call__(self, trace: Trace) -> None:
        return None


_DISCARD: Final = _Discard()


def _screen_policy(policy: Policy) -> Policy | None:
    key = (policy.source, policy.content_hash)
    with _SCREENS_LOCK:
        got = _SCREENS.get(key)
        if got is None:
            checks = tuple(c for c in policy.checks if c.type in CAPTURE_CHECKS)
            if not checks:
                return None
            got = _SCREENS[key] = Policy(
                policy.spec, checks, source=policy.source, digest=policy.content_hash
            )
            while len(_SCREENS) > _SCREENS_MAX:
                _SCREENS.popitem(last=False)
        else:
            _SCREENS.move_to_end(key)
        return got


def screen(policy: Policy, text: str) -> str:
    """``text`` as it may be stored: through the policy's pii and content checks
    (repaired), or the policy's block message when they block it.  A policy without
    such checks stores nothing (an empty string): capture needs a check to pass."""
    checker = _screen_policy(policy)
    if checker is None:
        return ""
    if len(text) > MAX_SCREEN_CHARS:
        return ""
    try:
        result = checker.validate_sync(text, on_trace=_DISCARD)
    except Exception as exc:  # fail closed: keep nothing
        logger.warning("guardrails_engine: content capture raised %s", type(exc).__name__)
        return ""
    if result.decision.value == "block":
        return policy.block_message
    return result.text[:MAX_CAPTURE_CHARS]
