"""What a run needs from a compiled policy (the policy layer, above, provides it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .._scanning.scan import PatternSet
from .._spec.config import PolicySpec
from ..checks._base import Check

__all__ = ["Plan"]


class Plan(Protocol):
    """A compiled policy as the run core sees it; :class:`~guardrails_engine.Policy` is one."""

    @property
    def name(self) -> str: ...

    @property
    def content_hash(self) -> str: ...

    @property
    def spec(self) -> PolicySpec: ...

    @property
    def checks(self) -> tuple[Check, ...]: ...

    @property
    def shared_patterns(self) -> tuple[PatternSet, tuple[int, ...], tuple[int, ...]] | None: ...

    @property
    def block_message(self) -> str: ...

    @property
    def max_holdback_chars(self) -> int: ...

    @property
    def blocking(self) -> bool: ...

    @property
    def on_trace(self) -> Callable[[Any], object] | None: ...

    @property
    def drift(self) -> Any:
        """A drift reference with ``max_chars`` and ``measure(text) -> numbers``, or None."""
        ...
