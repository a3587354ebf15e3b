"""What the two missed cost targets leave for the work that matters (diagnostic, not a target).

Both targets compare a 4-character stream with one whole-text pass.  A stream
also pays for things the whole-text pass never does: the driver and the
pipeline per chunk (measured here as a stream through a policy whose only check
is a length limit it never reaches: no scanning, no parsing), and, for JSON,
the final ``jsonschema`` pass that the structured-output issue requires.  What
is left under the target is the budget for the incremental work itself: the
scans at word ends (prose), the push parser with its schema checks (JSON).

1. Prose, pattern-pii policy, PII-free text (issue 2 target: stream <= 2x validate).
   The stream must also do validate's detection work (phonenumbers on the digit
   runs), so: budget = 2x - validate - pipeline floor.
2. JSON, ~1 MB order list, schema check (issue 4 target: stream <= 3x one
   jsonschema validation).  Budget = 3x - final jsonschema pass - pipeline floor,
   against the push parser alone with an empty schema (private ``JsonScan``).

3. The pii policies of issue 25 beside the floor, in one run: one pii check of
   EMAIL_ADDRESS (the e-mail policy) and one of the six pattern entities, default
   disguise families, on PII-free prose in 4-character chunks: us per chunk, the same
   minus the floor of the same round, the ratio to the floor, and validate_sync in us
   per character; the median of ``--rounds`` interleaved rounds, with the load average.

    .venv/bin/python benchmarks/floors.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time

import _common as c
import json_stream
import jsonschema

import guardrails_engine as ge
from guardrails_engine.checks._schema.jsonstream import JsonScan

LENGTH_ONLY = ge.Policy.from_yaml(
    "version: 1\nname: pipeline-floor\nchecks:\n"
    "  - {id: l, type: length, max_chars: 100000000, action: block}\n"
)


def stream(policy: ge.Policy, chunks: list[str]) -> str:
    return "".join(policy.stream_sync(iter(chunks)))


def parse_only(chunks: list[str], schema: object) -> None:
    scan = JsonScan(
        schema, resolve=lambda ref: None, known=frozenset(), conforms=None, extract=False
    )
    at = 0
    for chunk in chunks:
        scan.feed(chunk, at)
        at += len(chunk)
    scan.finish(at)


def row(label: str, seconds: float, base: float, per: int, note: str = "") -> None:
    print(
        f"  {label:44s} {seconds * 1e3:8.1f} ms  {seconds / base:5.2f}x  "
        f"{seconds / per * 1e6:5.2f} us/chunk  {note}"
    )


def prose(repeat: int) -> None:
    print("## 1. prose: 32,000 chars of PII-free text in 4-char chunks, pattern-pii policy")
    text = c.clean_text(32_000)
    chunks = c.chunks(text, 4)
    word_ends = sum(1 for ch in chunks if any(x.isspace() for x in ch))
    policy = c.load(c.PATTERN_PII)
    whole, _ = c.timed(lambda: policy.validate_sync(text), repeat)
    floor, _ = c.timed(lambda: stream(LENGTH_ONLY, chunks), repeat)
    full, out = c.timed(lambda: stream(policy, chunks), repeat)
    assert out == text
    n = len(chunks)
    row("validate_sync (the baseline)", whole, whole, n)
    row("stream, length-only policy (pipeline floor)", floor, whole, n, "no checking at all")
    row("stream, pattern-pii", full, whole, n)
    budget = 2 * whole - whole - floor
    spent = full - whole - floor
    print(
        f"  the scans cost {spent * 1e3:.1f} ms = {spent / word_ends * 1e6:.2f} us per chunk "
        f"with whitespace ({word_ends:,})"
    )
    if budget > 0:
        print(
            f"  at <= 2x they may cost {budget * 1e3:.1f} ms = "
            f"{budget / word_ends * 1e6:.2f} us ({spent / budget:.1f}x over)"
        )
    else:
        print(
            f"  at <= 2x nothing is left for them: the pipeline floor alone is "
            f"{floor / whole:.2f}x validate"
        )


def structured(size: int, repeat: int) -> None:
    print(f"\n## 2. JSON: {size / 1e6:.1f} MB order list in 4-char chunks, one schema check")
    text = json_stream.document(size)
    chunks = c.chunks(text, 4)
    doc = json.loads(text)
    validator = jsonschema.Draft202012Validator(json_stream.SCHEMA)
    policy = json_stream.policy()
    base, _ = c.timed(lambda: validator.validate(doc), repeat)
    floor, _ = c.timed(lambda: stream(LENGTH_ONLY, chunks), repeat)
    bare, _ = c.timed(lambda: parse_only(chunks, {}), repeat)
    checked, _ = c.timed(lambda: parse_only(chunks, json_stream.SCHEMA), repeat)
    full, out = c.timed(lambda: stream(policy, chunks), 1)
    assert out == text
    n = len(chunks)
    row("jsonschema, one validation (the baseline)", base, base, n)
    row("stream, length-only policy (pipeline floor)", floor, base, n, "no parsing at all")
    row("final jsonschema pass (required)", base, base, n, "= the baseline")
    row("push parser alone, empty schema", bare, base, n)
    row("push parser with the schema's checks", checked, base, n)
    row("stream, schema check (all of the above)", full, base, n)
    budget = 3 * base - base - floor
    print(
        f"  at <= 3x, parsing and checking may cost {budget * 1e3:.1f} ms = "
        f"{budget / n * 1e6:.2f} us per chunk; the parser alone, checking nothing, costs "
        f"{bare / n * 1e6:.2f} us ({bare / budget:.1f}x the budget)"
    )


SIX = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE"]


def pii_policy(name: str, entities: list[str]) -> ge.Policy:
    """One pii check (repair: mask, default disguise families)."""
    return ge.Policy.from_yaml(
        f"version: 1\nname: {name}\ncheck_timeout_ms: 3600000\nchecks:\n"
        f"  - {{id: pii, type: pii, entities: [{', '.join(entities)}], action: repair, "
        "repair: mask}\n"
    )


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def beside_floor(size: int, rounds: int) -> None:
    """Issue 25's figures: the e-mail and six-entity pii policies beside the floor."""
    print(
        f"\n## 3. the pii policies beside the floor: {size:,} chars of PII-free prose in "
        f"4-char chunks, median of {rounds} interleaved rounds"
    )
    text = c.clean_text(size)
    chunks = c.chunks(text, 4)
    policies = {
        "e-mail": pii_policy("email", ["EMAIL_ADDRESS"]),
        "six entities": pii_policy("six", SIX),
    }
    jobs = {"floor": lambda: stream(LENGTH_ONLY, chunks)}
    for name, policy in policies.items():
        jobs[name] = lambda policy=policy: stream(policy, chunks)  # type: ignore[misc]
        jobs[f"validate {name}"] = lambda policy=policy: policy.validate_sync(text).text  # type: ignore[misc]
    times: dict[str, list[float]] = {k: [] for k in jobs}
    loads = []
    for rnd in range(rounds + 1):  # round 0 warms up
        for name, job in jobs.items():
            gc.collect()
            t0 = time.perf_counter()
            out = job()
            dt = time.perf_counter() - t0
            assert out == text, name  # (PII-free: nothing to repair)
            if rnd:
                times[name].append(dt)
        loads.append(load_average())
    n = len(chunks)
    floor = [t / n * 1e6 for t in times["floor"]]
    print(f"  load average after each round: {'; '.join(loads[1:])}")
    print(
        f"  {'stream, length-only policy (the floor)':44s} {statistics.median(floor):6.2f} us/chunk"
    )
    for name in policies:
        per = [t / n * 1e6 for t in times[name]]
        over = [a - b for a, b in zip(per, floor, strict=True)]
        ratio = [a / b for a, b in zip(per, floor, strict=True)]
        print(
            f"  {'stream, pii ' + name:44s} {statistics.median(per):6.2f} us/chunk  "
            f"{statistics.median(over):6.2f} over the floor  "
            f"{statistics.median(ratio):5.2f}x the floor"
        )
    for name in policies:
        per_char = statistics.median(times[f"validate {name}"]) / len(text) * 1e6
        print(f"  {'validate_sync, pii ' + name:44s} {per_char:6.3f} us/char")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of section 3 (3)")
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    c.header("floors: what the stream pays before it checks anything")
    print(f"# load average {load_average()}")
    prose(repeat)
    structured(200_000 if args.quick else 1_000_000, repeat)
    beside_floor(8_000 if args.quick else 32_000, max(3, args.rounds))


if __name__ == "__main__":
    main()
