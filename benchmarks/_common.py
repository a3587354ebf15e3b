"""Shared helpers for the benchmark scripts: texts, policies, chunking, timing.

Everything is read from ``benchmarks/`` itself (``data/pii_dev.jsonl`` is a copy
of the shared labelled data set), so the scripts run from any directory.
"""

from __future__ import annotations

import gc
import json
import platform
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import guardrails_engine as ge

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data" / "pii_dev.jsonl"
PATTERN_PII = HERE / "policies" / "pattern-pii.yaml"
SUPPORT_CHAT = ROOT / "policies" / "support-chat.yaml"

#: What a labelled entity becomes in the PII-free prose: ordinary words, no digits.
NEUTRAL = {
    "EMAIL_ADDRESS": "their work address",
    "PHONE_NUMBER": "the support line",
    "CREDIT_CARD": "the card on file",
    "US_SSN": "their tax number",
    "IP_ADDRESS": "the office router",
    "IBAN_CODE": "the new account",
    "PERSON": "the customer",
    "LOCATION": "the city",
}


def rows(variant: str = "plain") -> list[dict[str, Any]]:
    with DATA.open(encoding="utf-8") as f:
        out = [json.loads(line) for line in f if line.strip()]
    return [r for r in out if r["variant"] == variant]


def _scrub(row: dict[str, Any]) -> str:
    text: str = row["text"]
    for e in sorted(row["entities"], key=lambda e: -e["start"]):
        text = text[: e["start"]] + NEUTRAL[e["type"]] + text[e["end"] :]
    return text


def _concat(pieces: Sequence[str], n: int) -> str:
    out: list[str] = []
    size = 0
    i = 0
    while size < n:
        piece = pieces[i % len(pieces)]
        out.append(piece)
        size += len(piece) + 1
        i += 1
    return " ".join(out)[:n]


def pii_text(n: int, variant: str = "plain") -> str:
    """``n`` characters of the texts of one variant, concatenated (and repeated as needed)."""
    return _concat([r["text"] for r in rows(variant)], n)


def clean_text(n: int) -> str:
    """``n`` characters of the same prose with every labelled entity replaced by plain words."""
    return _concat([_scrub(r) for r in rows("plain")], n)


def load(path: Path) -> ge.Policy:
    return ge.load_policy(path)


def support_chat_uncapped() -> ge.Policy:
    """policies/support-chat.yaml with its length check lifted (so a stream reads the whole text).

    Built in memory; the policy file is not touched.
    """
    text = SUPPORT_CHAT.read_text(encoding="utf-8")
    lifted = text.replace("max_chars: 2000", "max_chars: 100000000")
    if lifted == text:
        raise SystemExit("support-chat.yaml no longer says 'max_chars: 2000'; update _common.py")
    return ge.Policy.from_yaml(lifted, source="support-chat (length lifted)", base_dir=ROOT)


def chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def random_chunks(text: str, lo: int, hi: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    i = 0
    while i < len(text):
        k = rng.randint(lo, hi)
        out.append(text[i : i + k])
        i += k
    return out


T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int, warmup: bool = True) -> tuple[float, T]:
    """Best (minimum) wall time of ``repeat`` calls after one untimed warm-up, and the last value.

    The minimum, not the median: the machine is shared, and interference only ever adds time.
    """
    if warmup:
        fn()
    times: list[float] = []
    for _ in range(max(1, repeat)):
        gc.collect()
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def percentile(values: Sequence[int], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))
    return float(ordered[k])


def library_version() -> str:
    """The commit of the library under test, and whether guardrails_engine/ has local edits."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "guardrails_engine"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return f"commit {head}" + (" + uncommitted edits in guardrails_engine/" if dirty else "")


def header(title: str) -> None:
    import os

    print(f"# {title}")
    print(
        f"# python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus; "
        f"guardrails_engine {library_version()}"
    )
