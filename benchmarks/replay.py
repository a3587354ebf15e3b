"""Side-by-side streams: the same token streams through every engine, in one run.

The texts are the labelled corpus (``data/pii_dev.jsonl``, a copy of the shared set:
300 assistant-style texts, variants plain, zwsp, fullwidth, nbsp) and the same texts
with every labelled value replaced by plain words (*PII-free*, ``_common.NEUTRAL``).
Each text is cut into 4-character chunks and into word-like tokens (a word or a run of
punctuation with the whitespace before it, as a model's tokens come), and replayed,
text by text, through:

- **ours, e-mail**: one ``pii`` check, EMAIL_ADDRESS, ``repair: mask``, default disguise
  families (``policy.stream_sync``);
- **ours, six entities**: the same with EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN,
  IP_ADDRESS, IBAN_CODE;
- **floor**: a policy whose only check is a length limit it never reaches (the driver and
  the pipeline, no checking at all);
- **presidio re-scan, e-mail**: the naive integration, presidio's ``EmailRecognizer``
  re-analysing the whole text so far after every token (pattern recognizer only, no spaCy;
  its ``tldextract`` limited to the bundled suffix list, so nothing touches the network);
  its output is the final analysis applied to the text.

Guardrails AI and NeMo Guardrails are not installed here (heavy dependencies); they are
not replayed.

Reported per engine, tokenization and text set: microseconds per chunk (all texts' time /
all chunks; the median of ``--rounds`` rounds, engines interleaved in each round so they
share the machine's load), the same minus the floor measured in that round, labelled
values whose original text is still in the output (leaks), how many outputs equal the
whole-text answer (ours: ``validate_sync(text).text``; floor: the text), hold-back (p50 /
p95 / max characters received but not released, after every chunk; an untimed pass), and
``validate_sync`` in microseconds per character.  The load average is printed with the
figures: the machine is shared.

Run:  .venv/bin/python benchmarks/replay.py [--rounds 3] [--texts 300] [--no-presidio]
"""

from __future__ import annotations

import argparse
import gc
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import _common as c
import holdback
from floors import LENGTH_ONLY as FLOOR
from floors import SIX, load_average, pii_policy

import guardrails_engine as ge

_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+")


def word_tokens(text: str) -> list[str]:
    out = _TOKEN.findall(text)
    assert "".join(out) == text
    return out


class Engine:
    def __init__(self, name: str, entities: list[str] | None) -> None:
        self.name = name
        self.entities = entities

    def stream(self, tokens: list[str]) -> str:
        raise NotImplementedError

    def whole(self, text: str) -> str:
        raise NotImplementedError


class Ours(Engine):
    def __init__(self, name: str, policy: ge.Policy, entities: list[str] | None) -> None:
        super().__init__(name, entities)
        self.policy = policy

    def stream(self, tokens: list[str]) -> str:
        return "".join(self.policy.stream_sync(iter(tokens)))

    def whole(self, text: str) -> str:
        return self.policy.validate_sync(text).text

    def holdback(self, tokens: list[str]) -> list[int]:
        return holdback.sample(self.policy, tokens)[0]


class Presidio(Engine):
    def __init__(self) -> None:
        super().__init__("presidio re-scan, e-mail", ["EMAIL_ADDRESS"])
        from presidio_analyzer.predefined_recognizers import EmailRecognizer
        from rescan_baseline import offline_tldextract

        offline_tldextract()
        self.rec = EmailRecognizer()

    def _apply(self, text: str, found: list[Any]) -> str:
        for r in sorted(found, key=lambda r: -r.start):
            text = text[: r.start] + "<EMAIL_ADDRESS>" + text[r.end :]
        return text

    def stream(self, tokens: list[str]) -> str:
        buf = ""
        found: list[Any] = []
        for t in tokens:
            buf += t
            found = self.rec.analyze(buf, ["EMAIL_ADDRESS"], None)
        return self._apply(buf, found)

    def whole(self, text: str) -> str:
        return self._apply(text, self.rec.analyze(text, ["EMAIL_ADDRESS"], None))


def leaks(rows: list[dict[str, Any]], outs: list[str], entities: list[str] | None) -> int:
    if entities is None:
        return -1
    n = 0
    for row, out in zip(rows, outs, strict=True):
        for e in row["entities"]:
            if e["type"] in entities and row["text"][e["start"] : e["end"]] in out:
                n += 1
    return n


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (3); the median is shown")
    ap.add_argument("--texts", type=int, default=300, help="corpus texts (300)")
    ap.add_argument("--no-presidio", action="store_true", help="leave the peer out")
    ap.add_argument("--only", choices=["pii", "clean"], help="one text set only")
    args = ap.parse_args()
    c.header("replay: the same token streams through every engine, side by side")
    t_start = time.perf_counter()
    print(f"# load average at start {load_average()}")

    import json

    with c.DATA.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][: args.texts]
    clean_rows = [{**r, "text": c._scrub(r), "entities": []} for r in rows]
    sets = [("PII", rows), ("PII-free", clean_rows)]
    if args.only:
        sets = [sets[0] if args.only == "pii" else sets[1]]

    engines: list[Engine] = [
        Ours("ours, e-mail", pii_policy("email", ["EMAIL_ADDRESS"]), ["EMAIL_ADDRESS"]),
        Ours("ours, six entities", pii_policy("six", SIX), SIX),
        Ours("floor (no check)", FLOOR, None),
    ]
    if not args.no_presidio:
        engines.append(Presidio())
    cuts: list[tuple[str, Callable[[str], list[str]]]] = [
        ("4-char", lambda t: c.chunks(t, 4)),
        ("words", word_tokens),
    ]

    code = 0
    for set_name, set_rows in sets:
        texts = [r["text"] for r in set_rows]
        n_chars = sum(len(t) for t in texts)
        print(f"\n## {set_name}: {len(texts)} texts, {n_chars:,} characters")
        for cut_name, cut in cuts:
            streams = [cut(t) for t in texts]
            n_chunks = sum(len(s) for s in streams)
            times: dict[str, list[float]] = {e.name: [] for e in engines}
            outs: dict[str, list[str]] = {}
            loads = []
            for rnd in range(args.rounds + 1):  # round 0 warms up
                for e in engines:
                    dt, out = timed(lambda e=e, ss=streams: [e.stream(s) for s in ss])  # type: ignore[misc]
                    if rnd:
                        times[e.name].append(dt)
                    outs[e.name] = out
                loads.append(load_average())
            floors = times["floor (no check)"]
            print(
                f"### {cut_name} tokens: {n_chunks:,} chunks ({n_chars / n_chunks:.1f} chars a "
                f"chunk), median of {args.rounds} rounds; load average after each round: "
                + "; ".join(loads[1:])
            )
            print(
                f"{'engine':26s} {'us/chunk':>9s} {'- floor':>8s} {'leaks':>6s} "
                f"{'output == whole':>16s} {'hold-back p50/p95/max':>22s}"
            )
            for e in engines:
                per = [t / n_chunks * 1e6 for t in times[e.name]]
                over = [
                    (t - f) / n_chunks * 1e6 for t, f in zip(times[e.name], floors, strict=True)
                ]
                want = [e.whole(t) if e.entities is not None else t for t in texts]
                same = sum(1 for a, b in zip(outs[e.name], want, strict=True) if a == b)
                if isinstance(e, Ours) and same != len(texts):
                    code = 1
                lk = leaks(set_rows, outs[e.name], e.entities)
                hb = ""
                if isinstance(e, Ours) and e.entities is not None:
                    samples = [h for s in streams for h in e.holdback(s)]
                    hb = (
                        f"{c.percentile(samples, 50):.0f} / {c.percentile(samples, 95):.0f} / "
                        f"{max(samples)}"
                    )
                print(
                    f"{e.name:26s} {statistics.median(per):9.2f} "
                    f"{statistics.median(over):8.2f} {('-' if lk < 0 else lk):>6} "
                    f"{f'{same}/{len(texts)}':>16s} {hb:>22s}"
                )
        # validate, per character, interleaved rounds
        ours = [e for e in engines if isinstance(e, Ours) and e.entities is not None]
        vt: dict[str, list[float]] = {e.name: [] for e in ours}
        for rnd in range(args.rounds + 1):
            for e in ours:
                dt, _ = timed(lambda e=e, tt=texts: [e.whole(t) for t in tt])  # type: ignore[misc]
                if rnd:
                    vt[e.name].append(dt)
        print(
            "### validate_sync, us per character (median of rounds): "
            + "; ".join(
                f"{name} {statistics.median(ts) / n_chars * 1e6:.3f}" for name, ts in vt.items()
            )
            + f"  (load average {load_average()})"
        )
    print(f"\n# wall time {time.perf_counter() - t_start:.1f} s; load average {load_average()}")
    return code


if __name__ == "__main__":
    sys.exit(main())
