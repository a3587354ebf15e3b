"""Which modules a policy may import (``model:``, ``function:``): only those its owner trusts."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

__all__ = ["TRUST_ENV", "UntrustedModule", "import_trusted", "is_trusted"]

#: The environment variable that lists trusted modules (comma-separated).
TRUST_ENV = "GUARDRAILS_TRUSTED_MODULES"


class UntrustedModule(ValueError):
    """A policy names a module its owner did not trust."""


def is_trusted(module: str, trusted: Sequence[str]) -> bool:
    return any(module == t or module.startswith(t + ".") for t in trusted)


def import_trusted(name: str, trusted: Sequence[str]) -> Any:
    """The object ``package.module:attr.path`` names, if its module is trusted.

    :raises UntrustedModule: if it is not; ImportError, AttributeError: if it
        cannot be imported or found.
    """
    module_name, _, attr = name.partition(":")
    if not is_trusted(module_name, trusted):
        raise UntrustedModule(
            f"module {module_name!r} is not trusted: a policy imports only the modules its "
            f"owner allows (trusted_modules=[{module_name!r}] or {TRUST_ENV})"
        )
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
