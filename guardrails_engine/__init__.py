"""guardrails-engine: check LLM output as it streams, release only what is safe.

>>> import guardrails_engine as ge
>>> policy = ge.load_policy("policies/support-chat.yaml")   # doctest: +SKIP
>>> policy.validate_sync("mail me at jdoe@example.com").text  # doctest: +SKIP
'mail me at <EMAIL_ADDRESS>'
"""

import logging as _logging
from importlib import metadata as _metadata

from ._core.errors import GuardrailsError, PolicyError, StreamStateError
from ._core.model import Action, Decision, Finding, Result
from ._evals.eval import Case, CaseError, EvalReport, evaluate, load_cases
from ._observe.calls import CallAttempt, CallRecorder, CallTrace, RunRecord
from ._observe.store import TraceStore, TraceStoreError
from ._policy.policy import Policy, ToolPolicy, load_policy
from ._runtime.drive import (
    Blocked,
    Ended,
    Push,
    Released,
    Stream,
    StreamEvent,
    SyncPush,
    SyncStream,
)
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
from ._runtime.trace import Trace
from ._spec.config import policy_json_schema

try:
    __version__: str = _metadata.version("guardrails-engine")
except _metadata.PackageNotFoundError:  # pragma: no cover - a checkout that is not installed
    __version__ = "0+unknown"

# Quiet unless the application configures logging (traces go out at INFO).
_logging.getLogger("guardrails_engine").addHandler(_logging.NullHandler())

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

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__"):
        try:
            _obj.__module__ = __name__
        except (AttributeError, TypeError):  # pragma: no cover
            pass
del _name, _obj, _metadata, _logging
