"""guardrails-engine: check LLM output as it streams, release only what is safe.

>>> import guardrails_engine as ge
>>> policy = ge.load_policy("policies/support-chat.yaml")   # doctest: +SKIP
>>> policy.validate_sync("mail me at jdoe@example.com").text  # doctest: +SKIP
'mail me at <EMAIL_ADDRESS>'

Every public name is loaded on first use, from the module that defines it, so
``import guardrails_engine`` and ``guardrails-engine --version`` stay cheap:
pydantic, the YAML reader, anyio and the scanner load when a name needs them.
"""

import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:  # what a type checker sees; at run time ``__getattr__`` loads them
    from ._common.errors import GuardrailsError, PolicyError, StreamStateError
    from ._common.model import Action, Decision, Finding, Result
    from ._evals.eval import Case, CaseError, EvalReport, evaluate, load_cases
    from ._observe.calls import CallAttempt, CallRecorder, CallTrace, RunRecord
    from ._observe.store import TraceStore, TraceStoreError
    from ._policy.policy import Policy, ToolPolicy, load_policy
    from ._runtime.drive import Blocked, Ended, Released, Stream, StreamEvent, SyncStream
    from ._runtime.fallback import (
        Attempt,
        Breaker,
        Fallback,
        FallbackEvent,
        FallbackResult,
        Interrupted,
        Refusal,
    )
    from ._runtime.fallback_drive import FallbackStream, SyncFallbackStream
    from ._runtime.push import Push, SyncPush
    from ._runtime.trace import Trace
    from ._spec.config import policy_json_schema

# Quiet unless the application configures logging (traces go out at INFO).
_logging.getLogger("guardrails_engine").addHandler(_logging.NullHandler())
del _logging

__all__ = [
    "Action",
    "Attempt",
    "Blocked",
    "Breaker",
    "CallAttempt",
    "CallRecorder",
    "CallTrace",
    "Case",
    "CaseError",
    "Decision",
    "Ended",
    "EvalReport",
    "Fallback",
    "FallbackEvent",
    "FallbackResult",
    "FallbackStream",
    "Finding",
    "GuardrailsError",
    "Interrupted",
    "Policy",
    "PolicyError",
    "Push",
    "Refusal",
    "Released",
    "Result",
    "RunRecord",
    "Stream",
    "StreamEvent",
    "StreamStateError",
    "SyncFallbackStream",
    "SyncPush",
    "SyncStream",
    "ToolPolicy",
    "Trace",
    "TraceStore",
    "TraceStoreError",
    "evaluate",
    "load_cases",
    "load_policy",
    "policy_json_schema",
]

#: Every public name, by the module that defines it: a module is imported the first
#: time one of its names is asked for, and its names then report the package.
_LAZY_FROM = {
    "_common.errors": ("GuardrailsError", "PolicyError", "StreamStateError"),
    "_common.model": ("Action", "Decision", "Finding", "Result"),
    "_evals.eval": ("Case", "CaseError", "EvalReport", "evaluate", "load_cases"),
    "_observe.calls": ("CallAttempt", "CallRecorder", "CallTrace", "RunRecord"),
    "_observe.store": ("TraceStore", "TraceStoreError"),
    "_policy.policy": ("Policy", "ToolPolicy", "load_policy"),
    "_runtime.drive": ("Blocked", "Ended", "Released", "Stream", "StreamEvent", "SyncStream"),
    "_runtime.fallback": (
        "Attempt",
        "Breaker",
        "Fallback",
        "FallbackEvent",
        "FallbackResult",
        "Interrupted",
        "Refusal",
    ),
    "_runtime.fallback_drive": ("FallbackStream", "SyncFallbackStream"),
    "_runtime.push": ("Push", "SyncPush"),
    "_runtime.trace": ("Trace",),
    "_spec.config": ("policy_json_schema",),
}
_LAZY = tuple(n for names in _LAZY_FROM.values() for n in names)


def __getattr__(name: str) -> _Any:
    for module, names in _LAZY_FROM.items():
        if name in names:
            from importlib import import_module

            from ._common.public import report_as

            loaded = vars(import_module(f".{module}", __name__))
            report_as(__name__, loaded, names)
            globals().update({n: loaded[n] for n in names})
            return globals()[name]
    if name == "__version__":
        from importlib import metadata

        try:
            version = metadata.version("guardrails-engine")
        except metadata.PackageNotFoundError:  # pragma: no cover - a checkout not installed
            version = "0+unknown"
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "__version__"})
