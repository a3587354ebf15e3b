"""guardrails-engine: check LLM output as it streams, release only what is safe.

>>> import guardrails_engine as ge
>>> policy = ge.load_policy("policies/support-chat.yaml")   # doctest: +SKIP
>>> policy.validate_sync("mail me at jdoe@example.com").text  # doctest: +SKIP
'mail me at <EMAIL_ADDRESS>'
"""

import logging as _logging
from typing import Any as _Any

from ._core.errors import GuardrailsError, PolicyError, StreamStateError
from ._core.model import Action, Decision, Finding, Result
from ._core.public import report_as as _report_as
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
from ._runtime.trace import Trace
from ._spec.config import policy_json_schema

# Quiet unless the application configures logging (traces go out at INFO).
_logging.getLogger("guardrails_engine").addHandler(_logging.NullHandler())

__all__ = [
    "Action",
    "Blocked",
    "Case",
    "CaseError",
    "Decision",
    "Ended",
    "EvalReport",
    "Finding",
    "GuardrailsError",
    "Policy",
    "PolicyError",
    "Push",
    "Released",
    "Result",
    "Stream",
    "StreamEvent",
    "StreamStateError",
    "SyncPush",
    "SyncStream",
    "ToolPolicy",
    "Trace",
    "evaluate",
    "load_cases",
    "load_policy",
    "policy_json_schema",
]

#: Names loaded on first use (``import guardrails_engine`` stays cheap): evaluation.
_LAZY = ("Case", "CaseError", "EvalReport", "evaluate", "load_cases")

_report_as(__name__, globals(), [n for n in __all__ if n not in _LAZY])
del _logging


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        from ._evals import eval as _eval

        _report_as(__name__, vars(_eval), _LAZY)
        globals().update({n: getattr(_eval, n) for n in _LAZY})
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
