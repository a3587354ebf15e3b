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
from ._core.public import report_as as _report_as
from ._evals.eval import Case, CaseError, EvalReport, evaluate, load_cases
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

try:
    __version__: str = _metadata.version("guardrails-engine")
except _metadata.PackageNotFoundError:  # pragma: no cover - a checkout that is not installed
    __version__ = "0+unknown"

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

_report_as(__name__, globals(), __all__)
del _metadata, _logging, _report_as
