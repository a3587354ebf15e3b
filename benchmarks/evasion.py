"""Evasion: disguised values caught or leaked, per family, ours against raw presidio.

The corpus is ``tests/_disguised.py`` (our own: every family of the README's
"Disguised values" section, plus the stretch families base64, hex, reversed
and spelled-out numbers, which we do not claim).  A value is *caught* when
every letter and digit of it is covered by a finding that repairs or blocks
(for presidio: by a result of the value's entity type with a score of at
least 0.4, the policy's ``min_score``).

Then the same table for what a renderer undoes (HTML tags with attributes, comments,
inline tags, markdown escapes and emphasis, bidi overrides and ``<bdo>``, LaTeX spacing,
spacing around the ``@``; ``tests/_rendered.py``) and for encoded values (base64, hex,
double percent-encoding), caught by the default policy and with the opt-in ``encodings``
family.

It prints, per family: cases, caught and leaked by ``policies/support-chat.yaml``
(validate, and a stream in random 1-8 character chunks, which must agree), and
by presidio's ``AnalyzerEngine.analyze`` for the same entities; then false
positives on the PII-free prose of ``data/pii_dev.jsonl`` (every labelled
entity replaced by plain words) and on the shipped eval cases that pass
unchanged, for ours with all disguise families, ours with ``disguises: none``
and presidio.

    .venv/bin/python benchmarks/evasion.py [--no-presidio]
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
from pathlib import Path
from typing import Any

import yaml
from _common import ROOT, SUPPORT_CHAT, _scrub, library_version, random_chunks, rows
from pii_accuracy import build_presidio

import guardrails_engine as ge

sys.path.insert(0, str(ROOT / "tests"))
from _disguised import corpus, value_positions
from _rendered import ENCODED, RENDERED
from _rendered import corpus as rendered_corpus

ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE"]
MIN_SCORE = 0.4


def _covered(spans: list[tuple[int, int]], case: Any) -> bool:
    covered: set[int] = set()
    for s, e in spans:
        covered.update(range(s, e))
    return all(i in covered for i in value_positions(case))


def ours(policy: ge.Policy, case: Any, seed: int) -> tuple[bool, bool]:
    """(caught by validate, the stream agreed with validate)."""
    whole = policy.validate_sync(case.text)
    spans = [(f.start, f.end) for f in whole.findings if f.action is not ge.Action.FLAG]
    stream = policy.stream_sync(random_chunks(case.text, 1, 8, seed))
    out = "".join(stream)
    agree = stream.result == whole and out == whole.text
    return _covered(spans, case), agree


def theirs(engine: Any, case: Any) -> bool:
    results = engine.analyze(case.text, entities=ENTITIES, language="en")
    spans = [
        (r.start, r.end) for r in results if r.entity_type == case.entity and r.score >= MIN_SCORE
    ]
    return _covered(spans, case)


def _pii(policy: ge.Policy, text: str) -> bool:
    return any(f.check_id == "pii" for f in policy.validate_sync(text).findings)


def _passing_eval_texts() -> list[str]:
    out = []
    for path in sorted((ROOT / "policies").glob("*.cases.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            if case.get("expect", {}).get("decision") == "pass":
                out.append(case["input"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-presidio", action="store_true", help="skip raw presidio")
    args = parser.parse_args()
    print(f"library: {library_version()}")
    policy = ge.load_policy(SUPPORT_CHAT)
    source = SUPPORT_CHAT.read_text(encoding="utf-8")
    plain = ge.Policy.from_yaml(
        source.replace("repair: mask\n", "repair: mask\n    disguises: none\n", 1),
        base_dir=Path(SUPPORT_CHAT).parent,
    )
    engine = None if args.no_presidio else build_presidio()

    cases = corpus(stretch=True)
    table: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    rnd = random.Random(7)
    for case in cases:
        row = table[case.family]
        row["cases"] += 1
        caught, agree = ours(policy, case, rnd.randrange(1 << 30))
        row["ours caught"] += caught
        row["stream disagrees"] += not agree
        if engine is not None:
            row["presidio caught"] += theirs(engine, case)
    head = f"{'family':16} {'cases':>5} {'ours':>6} {'leaked':>6} {'stream!=':>8}"
    if engine is not None:
        head += f" {'presidio':>8} {'leaked':>6}"
    print(f"\ncorpus: {len(cases)} disguised values (tests/_disguised.py)\n")
    print(head)
    total: collections.Counter[str] = collections.Counter()
    for family, row in table.items():
        total.update(row)
        line = (
            f"{family:16} {row['cases']:>5} {row['ours caught']:>6} "
            f"{row['cases'] - row['ours caught']:>6} {row['stream disagrees']:>8}"
        )
        if engine is not None:
            line += f" {row['presidio caught']:>8} {row['cases'] - row['presidio caught']:>6}"
        print(line)
    line = (
        f"{'all':16} {total['cases']:>5} {total['ours caught']:>6} "
        f"{total['cases'] - total['ours caught']:>6} {total['stream disagrees']:>8}"
    )
    if engine is not None:
        line += f" {total['presidio caught']:>8} {total['cases'] - total['presidio caught']:>6}"
    print(line)

    # (A stream holds an encoded run until it ends, up to the cap: the corpus has runs of
    # 1,360 characters, over the default cap of 1,024.)
    encodings = ge.Policy.from_yaml(
        source.replace(
            "repair: mask\n",
            "repair: mask\n    disguises: [separators, words, context, encodings]\n",
            1,
        )
        + "\nstream:\n  max_holdback_chars: 4096\n",
        base_dir=Path(SUPPORT_CHAT).parent,
    )
    rendered_table(policy, encodings, engine)

    prose = [_scrub(r) for v in ("plain", "zwsp", "fullwidth", "nbsp") for r in rows(v)]
    shipped = _passing_eval_texts()
    print("\nfalse positives (texts with a pii finding):")
    for name, texts in (("PII-free prose (pii_dev)", prose), ("shipped pass cases", shipped)):
        mine = sum(1 for t in texts if _pii(policy, t))
        none = sum(1 for t in texts if _pii(plain, t))
        enc = sum(1 for t in texts if _pii(encodings, t))
        line = (
            f"  {name:26} {len(texts):>4} texts: ours {mine}, with encodings {enc}, "
            f"ours with disguises: none {none}"
        )
        if engine is not None:
            theirs_fp = sum(
                1
                for t in texts
                if any(
                    r.score >= MIN_SCORE
                    for r in engine.analyze(t, entities=ENTITIES, language="en")
                )
            )
            line += f", presidio {theirs_fp}"
        print(line)


def rendered_table(policy: ge.Policy, encodings: ge.Policy, engine: Any) -> None:
    """Rendered and encoded values: ours (default; encodings on) against presidio."""
    cases = rendered_corpus()
    rnd = random.Random(11)
    table: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for case in cases:
        row = table[case.family]
        row["cases"] += 1
        caught, agree = ours(policy, case, rnd.randrange(1 << 30))
        row["default"] += caught
        enc_caught, enc_agree = ours(encodings, case, rnd.randrange(1 << 30))
        row["encodings"] += enc_caught
        row["stream disagrees"] += (not agree) + (not enc_agree)
        if engine is not None:
            row["presidio"] += theirs(engine, case)
    print(f"\nrendered and encoded: {len(cases)} values (tests/_rendered.py)\n")
    head = f"{'family':18} {'cases':>5} {'default':>7} {'+encodings':>10} {'stream!=':>8}"
    if engine is not None:
        head += f" {'presidio':>8}"
    print(head)
    total: collections.Counter[str] = collections.Counter()
    for family in (*RENDERED, *ENCODED, "all"):
        row = total if family == "all" else table[family]
        if family != "all":
            total.update(row)
        line = (
            f"{family:18} {row['cases']:>5} {row['default']:>7} {row['encodings']:>10} "
            f"{row['stream disagrees']:>8}"
        )
        if engine is not None:
            line += f" {row['presidio']:>8}"
        print(line)


if __name__ == "__main__":
    main()
