"""The call trace of a guarded call: the adapters' side of :class:`~.._observe.calls.CallRecorder`.

Every entry point makes one recorder (:func:`recorder`); its runs get the recorder's
hooks (:class:`~._guard.Runs`); the guarded stream notes each upstream event and the
first released piece, and finishes the record (``_stream.py``); each translator notes
the reply's fields (id, model, usage, finish reasons) where it reads them.

The request: from ``parameters=`` (the keyword arguments given to ``create()``) if the
caller gave them, else from the HTTP request of the SDK stream (its JSON body).  Only
the model and the generation parameters named in :data:`PARAMETERS` are kept; the
messages are read only with ``capture_content`` (the prompt, screened by the recorder).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from .. import Blocked, Policy, Trace
from .._observe.calls import CallRecorder, TraceSink
from .._runtime.trace import finding_record

__all__ = [
    "PARAMETERS",
    "adapter_block",
    "ended",
    "prompt_of",
    "read_request",
    "recorder",
    "request_of",
]

#: The request parameters a call's trace keeps (a fixed list: a request's other fields,
#: such as ``user``, ``metadata`` or ``instructions``, may hold personal data).
PARAMETERS: Final = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "stop",
        "stop_sequences",
        "n",
        "logprobs",
        "top_logprobs",
        "parallel_tool_calls",
        "reasoning_effort",
        "service_tier",
        "tool_choice",
    }
)
#: A request body longer than this is not read (its model and parameters are not known).
MAX_REQUEST_BYTES: Final = 1 << 20


def recorder(
    policy: Policy,
    provider: str,
    *,
    streamed: bool,
    trace_id: object,
    on_trace: object,
    capture_content: object,
    request_model: object,
    parameters: object,
    started: object,
) -> CallRecorder:
    """The recorder of one guarded call, its arguments checked (``TypeError``)."""
    if trace_id is not None and not isinstance(trace_id, str):
        raise TypeError(f"trace_id must be a str, got {type(trace_id).__name__}")
    if on_trace is not None and not callable(on_trace):
        raise TypeError(f"on_trace must be callable, got {type(on_trace).__name__}")
    if not isinstance(capture_content, bool):
        raise TypeError(f"capture_content must be a bool, got {type(capture_content).__name__}")
    if request_model is not None and not isinstance(request_model, str):
        raise TypeError(f"request_model must be a str, got {type(request_model).__name__}")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a mapping, got {type(parameters).__name__}")
    if started is not None and (isinstance(started, bool) or not isinstance(started, int | float)):
        raise TypeError(f"started must be a perf_counter() value, got {type(started).__name__}")
    sink: TraceSink | None = on_trace
    rec = CallRecorder(
        policy,
        provider=provider,
        request_model=request_model,
        streamed=streamed,
        trace_id=trace_id,
        on_trace=sink,
        capture_content=capture_content,
        started=float(started) if started is not None else None,
    )
    if parameters is not None:
        read_request(rec, parameters, model=request_model is None)
    return rec


def read_request(rec: CallRecorder, request: Mapping[str, Any], *, model: bool = True) -> None:
    """What a trace keeps of a request: its model (unless ``model`` is false: given
    already), the parameters of :data:`PARAMETERS`, and the prompt (capture only); each
    only where the recorder does not have it yet."""
    given = request.get("model")
    rec.request(
        model=given if model and isinstance(given, str) else None,
        parameters={k: v for k, v in request.items() if k in PARAMETERS},
        prompt=prompt_of(request) if rec.capturing else None,
    )


def ended(rec: CallRecorder, policy: Policy, blocked: Blocked | None, upstream: object) -> None:
    """Before a stream's record is made: the request as the SDK sent it (what was not
    given), and a block the adapter made itself (a tool without a rule, a renamed call,
    too many runs), which no run of the policy saw, as a run of its own."""
    body = request_of(upstream)
    if body is not None:
        read_request(rec, body)
    if blocked is not None and any(f.check_id == "tools" for f in blocked.findings):
        adapter_block(rec, policy, blocked)  # (the others are noted as their run is made)


def adapter_block(rec: CallRecorder, policy: Policy, blocked: Blocked | None) -> None:
    """A block made by the adapter itself (a tool without a rule, a renamed call, too
    many runs), which no run of the policy saw, as a run ``"adapter"`` of the record."""
    if blocked is None:
        return
    findings = tuple(finding_record(f) for f in blocked.findings)
    trace = Trace(
        trace_id=rec.trace_id,
        kind="adapter",
        policy=policy.name,
        policy_hash=policy.content_hash,
        decision="block",
        ending="blocked",
        findings=findings,
        check_ms={},
        duration_ms=0.0,
        chunks_in=0,
        chars_in=0,
        chunks_out=0,
        chars_out=0,
        holdback_max=0,
        holdback_median=0.0,
        first_out_ms=None,
    )
    rec.run_ended(trace, part="adapter")


def request_of(upstream: object) -> Mapping[str, Any] | None:
    """The JSON body of the HTTP request an SDK stream answers (``stream.response``),
    or ``None`` (not an SDK stream, not JSON, or longer than :data:`MAX_REQUEST_BYTES`)."""
    response = getattr(upstream, "response", None)
    request = getattr(response, "request", None)
    try:
        body = request.content if request is not None else None
    except Exception:  # a streamed request body: not read
        return None
    if not isinstance(body, bytes) or len(body) > MAX_REQUEST_BYTES:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _text(content: Any) -> list[str]:
    """The texts of a message's content: a string, or parts (blocks) with ``text``."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        ]
    return []


def prompt_of(request: Mapping[str, Any]) -> str | None:
    """The prompt of a request as text: the system text and instructions, then every
    message's text (Chat ``messages``, Responses ``input``, Anthropic ``system`` and
    ``messages``), one per line; ``None`` when it has none of them."""
    texts: list[str] = []
    found = False
    for key in ("system", "instructions", "input", "messages", "prompt"):
        value = request.get(key)
        if value is None:
            continue
        found = True
        if isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    texts += _text(item.get("content")) or _text([item])
                else:
                    texts += _text(item)
        else:
            texts += _text(value)
    return "\n".join(texts) if found else None
