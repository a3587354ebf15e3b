"""Adversarial outputs and policies: the per-character cost of each pathological
family, in validate and in a 4-character stream (diagnostic, not a target).

A model can be talked into writing long runs of digits, dots or address-like
fragments; a policy can carry ten thousand terms or a pattern that backtracks.
For each family, at 10k and 100k characters (and 1M with ``--full``), with a
policy that has a length limit (support-chat), one without (pii-and-url) and
the shipped strict-redact, prints the time of one ``validate_sync``, of a
stream in 4-character chunks and of a stream of the whole text as one chunk,
microseconds per character, validate's decision, and whether the
streams' outputs equal validate's (past ``max_holdback_chars`` a match still in
progress is decided as the text stands, so a difference there is the
documented exception).  ``--deadline-cost`` instead prints what a 4-character
chunk of ordinary prose costs a stream over validate.

Every policy is written inline in the syntax of every version since the start
of issue 11, so the same script measures "before" (an older checkout on
``PYTHONPATH``) and "after":

    .venv/bin/python benchmarks/adversarial.py [--full] [--size N] [--quick] [--only NAME]
    PYTHONPATH=/tmp/before .venv/bin/python benchmarks/adversarial.py   # an older copy
    .venv/bin/python benchmarks/adversarial.py --deadline-cost
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import _common as c

import guardrails_engine as ge

SUPPORT_CHAT = r"""
version: 1
name: support-chat
block_message: "Sorry, I can't share that."
checks:
  - id: pii
    type: pii
    entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE]
  - id: secrets
    type: content
    patterns: ['\bsk-[A-Za-z0-9]{20,}\b', '\bAKIA[0-9A-Z]{16}\b']
    terms: ["internal use only", "confidential - do not share"]
    action: block
  - id: max-length
    type: length
    max_chars: 2000
"""

PII_AND_URL = c.HERE / "policies" / "pii-and-url.yaml"

# Runs of one unit, with the shipped policy (its length limit: validate may stop
# early) and with a pattern policy without one that also detects URLs.
RUNS = {
    "digits": "1",
    "spaced digits": "12 ",
    "phone-like": "415-555-0100-",
    "dotted digits": "1.2.",
    "PII-dense": "bob@example.com 4111 1111 1111 1111 10.0.0.1 +1 415 555 0100 ",
    "at signs": "a@",
    "hex": "deadbeef",
    "plus and parens": "+(1) ",
    "addresses without a domain": "a@b",
    "www fragments": "www.a",
}


def _terms(n: int, words: int, seed: int = 0) -> list[str]:
    rnd = random.Random(seed)

    def word() -> str:
        return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(4, 9)))

    return [" ".join(word() for _ in range(words)) for _ in range(n)]


def _term_policy(terms: list[str]) -> str:
    quoted = ", ".join('"' + t + '"' for t in terms)
    return (
        "version: 1\nname: terms\nchecks:\n  - id: words\n    type: content\n"
        f"    action: repair\n    terms: [{quoted}]\n"
    )


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def _row(name: str, label: str, policy: ge.Policy, text: str, *, one_chunk: bool = True) -> None:
    chunks = c.chunks(text, 4)
    whole_s, whole = timed(lambda: policy.validate_sync(text))
    stream_s, out = timed(lambda: "".join(policy.stream_sync(iter(chunks))))
    same = "yes" if out == whole.text else "no (cap)"  # type: ignore[attr-defined]
    if any("timed out" in r for r in whole.reasons):  # type: ignore[attr-defined]
        same = "timed out"
    one = ""
    if one_chunk:
        # The whole text as one chunk: what an SDK reading a full socket hands over.
        one_s, one_out = timed(lambda: "".join(policy.stream_sync([text])))
        one = f" {one_s * 1e3:10.1f} {'yes' if one_out == whole.text else 'no':>4s}"  # type: ignore[attr-defined]
    n = len(text)
    print(
        f"{name:28s} {label:13s} {n:>9,d} {whole_s * 1e3:11.1f} {stream_s * 1e3:10.1f} "
        f"{whole_s / n * 1e6:9.1f} {stream_s / n * 1e6:9.1f}  {same:9s} "
        f"{whole.decision.value:6s}{one}",  # type: ignore[attr-defined]
        flush=True,
    )


STRICT_REDACT = c.HERE.parent / "policies" / "strict-redact.yaml"


def families(sizes: list[int], only: str | None) -> None:
    c.header("adversarial runs, validate and a stream in 4-character chunks and in one chunk")
    policies = {
        "support-chat": ge.Policy.from_yaml(SUPPORT_CHAT),  # a length limit (2,000)
        "pii-and-url": c.load(PII_AND_URL),  # no length limit
        "strict-redact": c.load(STRICT_REDACT),  # a word limit, redact, cap 256
    }
    head = f"{'run':28s} {'policy':13s} {'chars':>9s} {'validate ms':>11s} {'stream ms':>10s}"
    print(
        head + f" {'us/char v':>9s} {'us/char s':>9s}  {'same':9s} {'result':6s}"
        f" {'1-chunk ms':>10s} same"
    )
    for size in sizes:
        for name, unit in RUNS.items():
            if only and only not in name:
                continue
            text = (unit * (size // len(unit) + 1))[:size]
            for label, policy in policies.items():
                _row(name, label, policy, text)
    size = sizes[0]
    # Many terms: the per-chunk cost of a content check against one with 10 terms.
    prose = c.clean_text(size)
    for words in (1, 2):
        name = "10k terms" if words == 1 else "10k two-word terms"
        if only and only not in name:
            continue
        for n in (10, 10_000):
            terms = _terms(n, words)
            load_s, policy = timed(lambda t=terms: ge.Policy.from_yaml(_term_policy(t)))
            text = prose[: size // 2] + " " + terms[n // 2] + " " + prose[size // 2 :]
            _row(f"{name} ({n:,}; load {load_s:.1f} s)", "terms", policy, text, one_chunk=False)  # type: ignore[arg-type]
    # A pattern that backtracks catastrophically, let past the load-time analysis.
    if not only or "backtracking" in only:
        import guardrails_engine._spec.config as config

        if hasattr(config, "backtracking"):
            config.backtracking = lambda *a: None  # type: ignore[attr-defined]
        deadline = "    timeout_ms: 200\n" if hasattr(config, "DEFAULT_CHECK_TIMEOUT_MS") else ""
        policy = ge.Policy.from_yaml(
            "version: 1\nname: bt\nchecks:\n  - id: secrets\n    type: content\n"
            "    patterns: ['(?:a|aa)+b']\n" + deadline
        )
        # Without a deadline the cost doubles every ~1.5 characters: 30 is ~1 s.
        for n in (30, size) if deadline else (24, 27, 30):
            _row(f"backtracking (a|aa)+b, {n:,}", "deadline" if deadline else "none",
                 policy, "x " + "a" * n, one_chunk=False)  # fmt: skip


def deadline_cost(repeat: int) -> None:
    c.header("per-chunk cost of a 4-character stream over validate, ordinary prose")
    policies = {"pattern-pii": c.load(c.PATTERN_PII), "support-chat (lifted)": None}
    lifted = SUPPORT_CHAT.replace("max_chars: 2000", "max_chars: 100000000")
    policies["support-chat (lifted)"] = ge.Policy.from_yaml(lifted)
    for kind, text in (("PII-free", c.clean_text(32_000)), ("PII", c.pii_text(32_000))):
        chunks = c.chunks(text, 4)
        for label, policy in policies.items():
            assert policy is not None
            v, _ = c.timed(lambda p=policy, t=text: p.validate_sync(t), repeat)
            s, _ = c.timed(lambda p=policy, ch=chunks: "".join(p.stream_sync(iter(ch))), repeat)
            print(
                f"{label:22s} {kind:8s} validate {v * 1e3:6.1f} ms  stream {s * 1e3:6.1f} ms  "
                f"{(s - v) / len(chunks) * 1e6:5.2f} us/chunk over validate",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, help="characters per run (default: 10k and 100k)")
    parser.add_argument("--full", action="store_true", help="also 1M characters (minutes)")
    parser.add_argument("--quick", action="store_true", help="1,000 characters")
    parser.add_argument("--only", help="only the families whose name contains this")
    parser.add_argument("--deadline-cost", action="store_true", help="per-chunk cost on prose")
    parser.add_argument("--repeat", type=int, default=5, help="runs of --deadline-cost (best)")
    args = parser.parse_args()
    if args.deadline_cost:
        deadline_cost(1 if args.quick else args.repeat)
    else:
        if args.quick:
            sizes = [1000]
        elif args.size:
            sizes = [args.size]
        else:
            sizes = [10_000, 100_000] + ([1_000_000] if args.full else [])
        families(sizes, args.only)


if __name__ == "__main__":
    main()
