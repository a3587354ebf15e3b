"""Test a policy, and your own checks in it, the way the built-in checks are tested.

Two guarantees hold for every check, built in or yours:

1. **chunking does not change the answer**: streaming a text in any chunks gives
   the result of ``validate`` on the whole text (decision, text, findings);
2. **nothing unsafe is released**: what a stream releases is, at every point, a
   prefix of the safe output (repairs applied; before a block, only text before it).

:func:`assert_stream_matches` checks both for one chunking; :func:`check_chunkings`
checks them for random chunkings of your texts (with hypothesis, installed by
the ``[testing]`` extra)::

    from guardrails_engine.testing import check_chunkings

    def test_my_check_streams_like_validate():
        policy = ge.load_policy("policies/mine.yaml", trusted_modules=["my_checks"])
        check_chunkings(policy, ["We beat Acme. Fine.", "Invest now!"])

(The guarantees hold while no unit or match is longer than the policy's
``stream.max_holdback_chars``: past it a stream decides as the text stands, and
may repair more than ``validate``, never less.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._common.model import Action, Decision, Finding, Result
from ._common.syncrun import run_sync
from ._policy.policy import Policy

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["assert_stream_matches", "check_chunkings", "chunkings", "safe_prefix"]


def assert_stream_matches(
    policy: Policy, text: str, chunks: Sequence[str], *, asynchronous: bool = False
) -> Result:
    """Stream ``chunks`` (which join to ``text``) through ``policy`` and assert both
    guarantees against ``validate_sync(text)``; returns that result.

    ``asynchronous``: also stream with :meth:`Policy.stream` on an event loop.
    """
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy, got {type(policy).__name__}")
    if "".join(chunks) != text:
        raise ValueError("the chunks do not join to the text")
    whole = policy.validate_sync(text)
    drivers = [_sync] + ([_async] if asynchronous else [])
    for drive in drivers:
        pieces, streamed = drive(policy, list(chunks))
        how = f"{drive.__name__.strip('_')} stream of {len(chunks)} chunks"
        assert streamed.decision == whole.decision, (
            f"{how}: decision {streamed.decision}, validate says {whole.decision}"
        )
        assert streamed.findings == whole.findings, (
            f"{how}: findings differ from validate's:\n  {_reasons(streamed)}\n  {_reasons(whole)}"
        )
        assert streamed.text == whole.text, f"{how}: the result's text differs from validate's"
        released = "".join(pieces)
        if whole.decision is Decision.BLOCK:
            message = policy.block_message
            assert released.endswith(message), f"{how}: the block message was not released last"
            released = released[: len(released) - len(message)]
            upto = min(f.start for f in whole.findings if f.action is Action.BLOCK)
        else:
            assert released == whole.text, f"{how}: released text differs from validate's"
            upto = len(text)
        safe = safe_prefix(text, whole.findings, upto)
        assert safe.startswith(released), f"{how}: released text that is not safe"
    return whole


def safe_prefix(text: str, findings: Iterable[Finding], upto: int) -> str:
    """The safe output of ``text`` before ``upto``: repairs applied (overlapping ones
    merged, the first and longest replacement winning), cut at a truncation."""
    ordered = sorted(
        (f for f in findings if f.action is Action.REPAIR and f.start < upto),
        key=lambda f: (f.start, -f.end),
    )
    cut = upto
    merged: list[tuple[int, int, str]] = []
    for f in ordered:
        if f.replacement is None:  # a truncation
            cut = min(cut, f.start)
            continue
        if merged and f.start < merged[-1][1]:
            s, e, r = merged[-1]
            merged[-1] = (s, max(e, f.end), r)
        else:
            merged.append((f.start, f.end, f.replacement))
    out: list[str] = []
    pos = 0
    for s, e, r in merged:
        if s >= cut:
            break
        out += [text[pos:s], r]
        pos = e
    if pos < cut:
        out.append(text[pos:cut])
    return "".join(out)


def chunkings(text: str, *, max_chunk: int = 12) -> SearchStrategy[list[str]]:
    """A hypothesis strategy: ``text`` cut into chunks at random places (from one
    character each to ``max_chunk``, single characters and surrogates included)."""
    from hypothesis import strategies as st

    if not text:
        return st.just([])

    def cut(sizes: list[int]) -> list[str]:
        out, i, k = [], 0, 0
        while i < len(text):
            n = sizes[k % len(sizes)]
            out.append(text[i : i + n])
            i += n
            k += 1
        return out

    return st.lists(st.integers(1, max_chunk), min_size=1, max_size=40).map(cut)


def check_chunkings(
    policy: Policy,
    texts: Iterable[str],
    *,
    max_examples: int = 100,
    asynchronous: bool = True,
    max_chunk: int = 12,
) -> None:
    """Property-test both guarantees over random chunkings of each text (hypothesis).

    Each text is also streamed one character at a time.  Raises ``AssertionError``
    (hypothesis reports the smallest failing chunking).
    """
    try:
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st
    except ImportError:  # pragma: no cover - the [testing] extra
        raise ImportError(
            "check_chunkings needs hypothesis: pip install 'guardrails-engine[testing]'"
        ) from None
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a non-empty iterable of str")
    for text in texts:
        assert_stream_matches(policy, text, list(text), asynchronous=asynchronous)

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def property_(data: Any) -> None:
        text = data.draw(st.sampled_from(texts), label="text")
        chunks = data.draw(chunkings(text, max_chunk=max_chunk), label="chunks")
        assert_stream_matches(policy, text, chunks, asynchronous=asynchronous)

    property_()


def _reasons(result: Result) -> str:
    return "; ".join(result.reasons) or "(none)"


def _sync(policy: Policy, chunks: list[str]) -> tuple[list[str], Result]:
    with policy.stream_sync(chunks) as stream:
        pieces = list(stream)
        result = stream.result
    assert result is not None, "the stream did not end"
    return pieces, result


def _async(policy: Policy, chunks: list[str]) -> tuple[list[str], Result]:
    async def main() -> tuple[list[str], Result]:
        async with policy.stream(chunks) as stream:
            pieces = [piece async for piece in stream]
            result = stream.result
        assert result is not None, "the stream did not end"
        return pieces, result

    return run_sync(main)
