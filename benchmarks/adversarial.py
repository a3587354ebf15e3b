"""Adversarial outputs: long runs that are hard on the patterns (diagnostic, not a target).

A model can be talked into writing long runs of digits, dots or address-like
fragments.  For each run, prints the time of one ``validate_sync`` and of a
stream in 4-character chunks, for the shipped support-chat policy and for a
pattern policy that also detects URLs (presidio's URL patterns are the costly
ones), and whether the stream's output equals validate's (past
``max_holdback_chars`` a match still in progress is decided as the text stands,
so a difference there is the documented exception).

    .venv/bin/python benchmarks/adversarial.py [--size N] [--quick]
"""

from __future__ import annotations

import argparse
import time

import _common as c

import guardrails_engine as ge

RUNS = {
    "digits": "1",
    "spaced digits": "12 ",
    "phone-like": "415-555-0100-",
    "dotted digits": "1.2.",
    "at signs": "a@",
    "hex": "deadbeef",
    "plus and parens": "+(1) ",
    "addresses without a domain": "a@b",
    "www fragments": "www.a",
}

WITH_URL = ge.Policy.from_yaml(
    "version: 1\nname: pii-and-url\nchecks:\n  - id: pii\n    type: pii\n"
    "    entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE, URL]\n"
    "    action: repair\n"
)


def timed(fn: object) -> tuple[float, object]:
    t0 = time.perf_counter()
    value = fn()  # type: ignore[operator]
    return time.perf_counter() - t0, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=5000, help="characters per run (default 5000)")
    parser.add_argument("--quick", action="store_true", help="1,000 characters")
    args = parser.parse_args()
    size = 1000 if args.quick else args.size
    c.header(f"adversarial runs of {size:,} characters, 4-character chunks")
    policies = {"support-chat": c.load(c.SUPPORT_CHAT), "pii-and-url": WITH_URL}
    head = f"{'run':28s} {'policy':13s} {'validate ms':>11s} {'stream ms':>10s} {'us/char':>8s}"
    print(head + "  same")
    for name, unit in RUNS.items():
        text = (unit * (size // len(unit) + 1))[:size]
        chunks = c.chunks(text, 4)
        for label, policy in policies.items():
            whole_s, whole = timed(lambda p=policy, t=text: p.validate_sync(t))
            stream_s, out = timed(
                lambda p=policy, ch=chunks: "".join(p.stream_sync(iter(ch)))  # type: ignore[misc]
            )
            same = "yes" if out == whole.text else "no (cap)"  # type: ignore[attr-defined]
            print(
                f"{name:28s} {label:13s} {whole_s * 1e3:11.1f} {stream_s * 1e3:10.1f} "
                f"{stream_s / size * 1e6:8.1f}  {same}",
                flush=True,
            )


if __name__ == "__main__":
    main()
