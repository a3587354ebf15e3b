"""Checks: the public check API, and the built-in checks written on it.

Two ways to write a check of your own (docs/writing-checks.md):

* a **unit check**: a function of one complete unit of text (a sentence, a
  line, or the whole text) that returns :class:`Found` findings, declared with
  :func:`unit_check`; it may be ``async``, or ``blocking`` (run in a thread);
* an **incremental check**: a :class:`Check` subclass whose :class:`Session`
  is fed text as it streams, reports a *hold* (no finding still to come starts
  before it) and returns :class:`Hit` findings; the protocol the built-in
  checks (pii, content, length, schema) implement.

A policy names either with ``type: custom`` and ``function: package.module:name``
(a trusted module), or by the type name an installed package registers in the
entry-point group ``guardrails_engine.checks``.  :mod:`guardrails_engine.testing`
property-tests a policy with your check the way the built-in ones are tested.
"""

from .._common.public import report_as
from ._base import Check, CheckConfig, Hit, RunContext, Session
from ._unit import Found, MalformedFinding, UnitCheck, unit_check

__all__ = [
    "Check",
    "CheckConfig",
    "Found",
    "Hit",
    "MalformedFinding",
    "RunContext",
    "Session",
    "UnitCheck",
    "unit_check",
]

report_as(__name__, globals(), __all__)
del report_as
