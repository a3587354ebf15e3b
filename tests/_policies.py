"""One way for tests to build a policy from its checks (a shared factory)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import guardrails_engine as ge

#: The pii entities found by patterns alone (no NER model).
PATTERN_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "IBAN_CODE",
)


def make_policy(
    checks: str | Sequence[str | Mapping[str, Any]],
    *,
    name: str = "t",
    block_message: str | None = None,
    cap: int | None = None,
    trusted: Sequence[str] = (),
    **top: Any,
) -> ge.Policy:
    """A version 1 policy with these ``checks``: YAML list items as one block
    (``"  - {id: c, type: content, terms: [x]}\\n"``), or entries, each a YAML flow
    mapping or a dict (written as JSON).

    ``cap`` is ``stream.max_holdback_chars``; ``trusted`` the modules checks of
    one's own may come from; other keywords are top-level keys (values as JSON).
    The header is written in this order, one line each: version, name,
    block_message, stream, the other keys; then ``checks:``.
    """
    head = f"version: 1\nname: {name}\n"
    if block_message is not None:
        head += f"block_message: {json.dumps(block_message)}\n"
    if cap is not None:
        head += f"stream: {{max_holdback_chars: {cap}}}\n"
    head += "".join(f"{key}: {json.dumps(value)}\n" for key, value in top.items())
    if isinstance(checks, str):
        body = checks
    else:
        body = "".join(f"  - {c if isinstance(c, str) else json.dumps(c)}\n" for c in checks)
    return ge.Policy.from_yaml(head + "checks:\n" + body, trusted_modules=list(trusted))
