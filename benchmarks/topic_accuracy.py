"""Denied topics: accuracy and speed of the ``topic`` check, against simpler scorers.

Corpus: ``benchmarks/data/topics.jsonl`` (350 held-out sentences: 150 of six denied
topics, 120 hard negatives that share words with a topic but not its meaning, 80
ordinary assistant sentences).  The policy, ``policies/topics.yaml``, takes its
examples from ``policies/topics.examples.yaml`` (10 per topic, 12 allow), none of
which is in the corpus: every figure is on sentences the policy never saw.

Scorers compared (each gives a sentence a score per topic; a sentence's score is
its best topic's):

  nearest   max cosine to a topic's examples, WordLlama as is (the baseline the
            issue describes);
  centred   the same after centring on ordinary text and normalising;
  meaning   logistic regression on centred WordLlama embeddings, trained at
            compile time (topics' examples against allow + packaged ordinary text);
  words     TF-IDF (words and word pairs) + logistic regression, trained the same;
  ours      the geometric mean of meaning and words, each trained with word-dropout
            variants of the examples, over the sentence and up to eight copies of it
            that each leave one word out: the shipped check.
(meaning and words are scored over the copies too.)

Figures: AUC (topic sentences against all negatives), and for the trained ones at
the default threshold: recall (flagged with the right topic), precision,
false-positive rate on hard negatives, on ordinary text and on both; recall and FPR
of ours at other thresholds; then, for the shipped check, ms per sentence (p50,
p99, warm) for the model alone and for ``validate_sync``, in wall time and in CPU
time (``time.thread_time``: what the check costs, without the time the process
waited for a core), next to a control loop of pure Python of the same median
length (what the machine adds at the tail), and the cost of a 4-character stream.

Targets (from the issue), printed PASS/FAIL: AUC >= 0.95; recall >= 0.85 with
FPR <= 5 % at the default threshold; p99 <= 5 ms per sentence.

Honesty: the policy's examples are disjoint from the corpus (checked at start), and
``--split`` reports the figures on two fixed halves of the corpus (by a CRC32 of each
sentence: ``dev`` even, ``test`` odd).  ``--variants`` scores other designs of the
scorer on both halves: a change is only worth shipping if it wins on ``dev`` and holds
on ``test`` (the shipped design was chosen before this split existed, on the whole
corpus).

Run:  .venv/bin/python benchmarks/topic_accuracy.py [--quick] [--errors] [--split]
      [--variants] [--curve]
(``--errors`` lists the misclassified sentences of the corpus: they are ours.)
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

import guardrails_engine as ge
from guardrails_engine.checks._topic import TopicModel, default_embedder
from guardrails_engine.checks._topic._background import BACKGROUND

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "data" / "topics.jsonl"
POLICY = HERE / "policies" / "topics.yaml"
EXAMPLES = HERE / "policies" / "topics.examples.yaml"
#: The check's default threshold (the lowest of two decimals at which the dev half's
#: false-positive rate is at most 5 %).
THRESHOLD = 0.26


def auc(pos: list[float], neg: list[float]) -> float:
    """Probability that a random positive outscores a random negative (ties: half)."""
    p, n = np.asarray(pos), np.asarray(neg)
    greater = (p[:, None] > n[None, :]).sum() + 0.5 * (p[:, None] == n[None, :]).sum()
    return float(greater / (len(p) * len(n)))


def load() -> tuple[list[dict[str, Any]], dict[str, list[str]], list[str]]:
    import yaml

    rows = [json.loads(x) for x in CORPUS.read_text(encoding="utf-8").splitlines() if x]
    ex = yaml.safe_load(EXAMPLES.read_text(encoding="utf-8"))
    return rows, ex["deny"], ex["allow"]


def report(
    name: str, scores: np.ndarray, topics: list[str], rows: list[dict[str, Any]], thr: float | None
) -> dict[str, float]:
    best = scores.max(axis=1)
    which = scores.argmax(axis=1)
    is_pos = np.array([r["topic"] is not None for r in rows])
    out = {"auc": auc(list(best[is_pos]), list(best[~is_pos]))}
    if thr is not None:
        flagged = best >= thr
        right = np.array([r["topic"] == topics[w] for r, w in zip(rows, which, strict=True)])
        hard = np.array([r["kind"] == "hard-negative" for r in rows])
        tp = int((flagged & is_pos & right).sum())
        out.update(
            recall=tp / int(is_pos.sum()),
            precision=tp / max(int(flagged.sum()), 1),
            fpr=float(flagged[~is_pos].mean()),
            fpr_hard=float(flagged[hard].mean()),
            fpr_ordinary=float(flagged[~is_pos & ~hard].mean()),
        )
    parts = [f"AUC {out['auc']:.3f}"]
    if thr is not None:
        parts.append(
            f"recall {out['recall']:.3f}  precision {out['precision']:.3f}  "
            f"FPR {out['fpr']:.3f} (hard {out['fpr_hard']:.3f}, ordinary {out['fpr_ordinary']:.3f})"
        )
    print(f"  {name:<10} " + "  ".join(parts))
    return out


def per_topic(scores: np.ndarray, topics: list[str], rows: list[dict[str, Any]]) -> None:
    neg = [i for i, r in enumerate(rows) if r["topic"] is None]
    for j, t in enumerate(topics):
        pos = [i for i, r in enumerate(rows) if r["topic"] == t]
        near = [i for i in neg if rows[i].get("near") == t]
        print(
            f"    {t:<20} AUC {auc(list(scores[pos, j]), list(scores[neg, j])):.3f}  "
            f"(vs its hard negatives {auc(list(scores[pos, j]), list(scores[near, j])):.3f})"
        )


def timings(policy: ge.Policy, texts: list[str], repeat: int) -> None:
    check = policy.checks[0]
    model: TopicModel = check.model  # type: ignore[attr-defined]
    for t in texts[:50]:  # warm up
        model.scores([t])
        policy.validate_sync(t)
    for what, fn in (
        ("model.scores", lambda t: model.scores([t])),
        ("validate_sync", policy.validate_sync),
    ):
        samples, cpu, control = [], [], []
        spin = 1500
        gc.disable()
        for _ in range(repeat):
            for t in texts:
                t0, c0 = time.perf_counter(), time.thread_time()
                fn(t)
                samples.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.thread_time() - c0) * 1000)
                # Control: pure Python of about the same wall time at p50, timed the same
                # way: its p99 is what the machine adds (a shared 2-core box).
                t0 = time.perf_counter()
                sum(range(spin))
                control.append((time.perf_counter() - t0) * 1000)
            spin = max(100, int(spin * statistics.median(samples) / statistics.median(control)))
        gc.enable()
        for name, values in (("wall", samples), ("cpu", cpu), ("control", control)):
            values.sort()
            p50, p99 = statistics.median(values), values[int(0.99 * (len(values) - 1))]
            print(f"  {what:<14} {name:<8} ms per sentence: p50 {p50:.3f}  p99 {p99:.3f}")
            if name == "wall":
                wall99 = p99
        if what == "validate_sync":
            flag = "PASS" if wall99 <= 5.0 else "FAIL"
            print(f"  target p99 <= 5 ms per sentence (wall): {flag}")
    # A stream of 4-character chunks, against validate of the same text, and against a
    # policy with no topic check (a length check) streamed the same way.
    text = " ".join(texts)
    policy = ge.Policy.from_yaml(
        POLICY.read_text(encoding="utf-8").replace("action: block", "action: flag"),
        base_dir=POLICY.parent,
    )  # flag: a stream runs to the end
    bare = ge.Policy.from_yaml(
        "version: 1\nname: bare\nchecks:\n  - {id: len, type: length, max_chars: 1000000}\n"
    )
    chunks = [text[i : i + 4] for i in range(0, len(text), 4)]

    def best(fn: Any, n: int = 3) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) * 1000

    v = best(lambda: policy.validate_sync(text))
    s = best(lambda: "".join(policy.stream_sync(chunks)))
    b = best(lambda: "".join(bare.stream_sync(chunks)))
    n = len(texts)
    print(
        f"  {len(text):,} characters ({n} sentences): validate {v:.1f} ms; 4-char stream "
        f"{s:.1f} ms; the same stream without the topic check {b:.1f} ms; the topic check "
        f"costs {(s - b) / n:.3f} ms per sentence in the stream"
    )


def curve(rows: list[dict[str, Any]], deny: dict[str, list[str]], allow: list[str]) -> None:
    """Why the targets are hard: AUC, recall and FPR as held-out topic sentences move
    into the policy's examples (and hard negatives into allow), averaged over two
    random splits; each figure is on what stays held out."""
    import random

    embedder = default_embedder()
    topics = list(deny)
    print("learning curve (held-out sentences moved into the examples; mean of 2 splits):")
    for extra, extra_allow in ((0, 0), (5, 0), (10, 0), (15, 0), (0, 60), (15, 60)):
        figures = []
        for seed in range(2):
            rng = random.Random(seed)
            d = {t: list(v) for t, v in deny.items()}
            test: list[dict[str, Any]] = []
            for t in topics:
                pos = [r for r in rows if r["topic"] == t]
                rng.shuffle(pos)
                d[t] += [r["text"] for r in pos[:extra]]
                test += pos[extra:]
            neg = [r for r in rows if r["topic"] is None]
            rng.shuffle(neg)
            more = [r["text"] for r in neg[:extra_allow]]
            test += neg[extra_allow:]
            s = TopicModel(embedder, d, [*allow, *more]).scores([r["text"] for r in test])
            pos_mask = np.array([r["topic"] is not None for r in test])
            best, which = s.max(axis=1), s.argmax(axis=1)
            right = np.array([r["topic"] == topics[w] for r, w in zip(test, which, strict=True)])
            flagged = best >= THRESHOLD
            figures.append(
                (
                    auc(list(best[pos_mask]), list(best[~pos_mask])),
                    (flagged & pos_mask & right).sum() / pos_mask.sum(),
                    flagged[~pos_mask].mean(),
                )
            )
        a, r, f = np.mean(figures, axis=0)
        print(
            f"  {10 + extra:>2} examples a topic, {len(allow) + extra_allow:>2} allow: "
            f"AUC {a:.3f}  recall {r:.3f}  FPR {f:.3f}"
        )


def half(text: str) -> str:
    """The fixed half of the corpus a sentence is in: ``dev`` or ``test``."""
    return "test" if zlib.crc32(text.encode("utf-8")) % 2 else "dev"


def operating(scores: np.ndarray, topics: list[str], rows: list[dict[str, Any]], thr: float) -> str:
    """AUC, recall and FPR at ``thr``, and the best recall at FPR <= 5 % (any threshold)."""
    best, which = scores.max(axis=1), scores.argmax(axis=1)
    pos = np.array([r["topic"] is not None for r in rows])
    right = np.array([r["topic"] == topics[w] for r, w in zip(rows, which, strict=True)])
    flagged = best >= thr
    negs = np.sort(best[~pos])[::-1]
    at5 = negs[int(0.05 * len(negs))] + 1e-9  # the lowest threshold with FPR <= 5 %
    area = auc(list(best[pos]), list(best[~pos]))
    recall = (flagged & pos & right).sum() / pos.sum()
    recall5 = ((best >= at5) & pos & right).sum() / pos.sum()
    return (
        f"AUC {area:.3f}  recall {recall:.3f}  FPR {flagged[~pos].mean():.3f}  "
        f"(best recall at FPR <= 5 %: {recall5:.3f})"
    )


def split(scores: np.ndarray, topics: list[str], rows: list[dict[str, Any]], thr: float) -> None:
    for name in ("dev", "test"):
        idx = [i for i, r in enumerate(rows) if half(r["text"]) == name]
        figures = operating(scores[idx], topics, [rows[i] for i in idx], thr)
        print(f"    {name:<5} ({len(idx)}): {figures}")


def variants(rows: list[dict[str, Any]], deny: dict[str, list[str]], allow: list[str]) -> None:
    """Other designs of the scorer, each on both halves (see the module docstring)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from guardrails_engine.checks._topic import model as m

    embedder = default_embedder()
    topics = list(deny)
    texts = [r["text"] for r in rows]

    def build(
        *,
        pair: bool = False,
        chars: bool = False,
        c_meaning: float = m.C_EMBEDDING,
        c_words: float = m.C_WORDS,
        weight: float = 0.5,
        drop: int = m.VARIANTS,
        mean: bool = False,
    ) -> np.ndarray:
        saved, m.VARIANTS = m.VARIANTS, drop
        try:
            grown = {t: m._with_variants(deny[t]) for t in topics}
        finally:
            m.VARIANTS = saved
        examples = [e for t in topics for e in grown[t]]
        ordinary = [*allow, *BACKGROUND]
        labels = [i for i, t in enumerate(topics) for _ in grown[t]] + [len(topics)] * len(ordinary)
        k = len(topics)
        raw = m.embed(embedder, [*examples, *ordinary])
        centre = raw[len(examples) :].mean(axis=0)
        meaning = m._Linear(m._normalised(raw - centre), labels, k + 1, c_meaning)
        vec = (
            TfidfVectorizer(
                ngram_range=(1, 2),
                sublinear_tf=True,
                token_pattern=None,
                tokenizer=m._words,
                lowercase=False,
            )
            if not chars
            else TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
        )
        vec.fit([*examples, *ordinary])
        words = m._Linear(vec.transform([*examples, *ordinary]), labels, k + 1, c_words)
        parts = [
            meaning.proba(m._normalised(m.embed(embedder, texts) - centre)),
            words.proba(vec.transform(texts)),
        ]
        # pair: a topic against ordinary text only (P(t) / (P(t) + P(ordinary))).
        a, b = (p[:, :k] / (p[:, :k] + p[:, k:]) if pair else p[:, :k] for p in parts)
        return (weight * a + (1 - weight) * b) if mean else a**weight * b ** (1 - weight)

    print(f"scorer variants (threshold {THRESHOLD}; the shipped check, then with fewer")
    print("test-time variants; then the first design, without them, at 0.3, and changes to it")
    print("at 0.3, or 0.4 for pair, whose scores run higher):")
    for name, n in (("shipped", m.SCORE_VARIANTS), ("3 test-time variants", 3)):
        print(f"  {name}:")
        model = TopicModel(embedder, deny, allow, score_variants=n)
        split(model.scores(texts), topics, rows, THRESHOLD)
    for name, kwargs in (
        ("first design (no test-time variants)", {}),
        ("pair", {"pair": True}),
        ("char n-grams", {"chars": True}),
        ("arithmetic mean", {"mean": True}),
        ("meaning weight 0.6", {"weight": 0.6}),
        ("meaning weight 0.4", {"weight": 0.4}),
        ("C meaning 10", {"c_meaning": 10.0}),
        ("C words 30", {"c_words": 30.0}),
        ("no word-drop", {"drop": 0}),
        ("6 word-drops", {"drop": 6}),
    ):
        print(f"  {name}:")
        split(build(**kwargs), topics, rows, 0.4 if kwargs.get("pair") else 0.3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one timing pass")
    ap.add_argument("--errors", action="store_true", help="list misclassified sentences")
    ap.add_argument("--curve", action="store_true", help="also the learning curve (~1 min)")
    ap.add_argument("--split", action="store_true", help="also the figures on dev and test halves")
    ap.add_argument("--variants", action="store_true", help="also other scorers, per half")
    args = ap.parse_args()
    rows, deny, allow = load()
    seen = {e for v in deny.values() for e in v} | set(allow)
    assert not seen & {r["text"] for r in rows}, "a policy example is in the corpus"
    texts = [r["text"] for r in rows]
    print(
        f"corpus: {len(rows)} held-out sentences ({sum(r['topic'] is not None for r in rows)} "
        f"topic); policy: {sum(map(len, deny.values()))} examples in {len(deny)} topics, "
        f"{len(allow)} allow"
    )
    embedder = default_embedder()
    topics = list(deny)
    print(f"scorers (AUC: topic sentences against all negatives; at threshold {THRESHOLD}):")
    examples = [e for t in topics for e in deny[t]]
    labels = np.array([i for i, t in enumerate(topics) for _ in deny[t]])
    ordinary = list(allow) + list(BACKGROUND)
    raw = np.asarray(embedder(examples + ordinary + texts), dtype=np.float64)
    n = len(examples) + len(ordinary)
    for name, x in (("nearest", raw), ("centred", raw - raw[len(examples) : n].mean(axis=0))):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        sims = x[n:] @ x[: len(examples)].T
        nearest = np.stack([sims[:, labels == i].max(axis=1) for i in range(len(topics))], 1)
        report(name, nearest, topics, rows, None)
    for part in ("meaning", "words"):
        alone = TopicModel(embedder, deny, allow, parts=(part,))
        report(part, alone.scores(texts), topics, rows, THRESHOLD)
    policy = ge.load_policy(POLICY)
    check = policy.checks[0]
    model: TopicModel = check.model  # type: ignore[attr-defined]
    ours = model.scores(texts)
    got = report("ours", ours, topics, rows, THRESHOLD)
    for thr in (0.2, 0.25, 0.35, 0.4, 0.5):
        flagged = ours.max(axis=1) >= thr
        right = np.array(
            [r["topic"] == topics[w] for r, w in zip(rows, ours.argmax(1), strict=True)]
        )
        pos = np.array([r["topic"] is not None for r in rows])
        print(
            f"    ours at {thr:.2f}: recall {(flagged & pos & right).sum() / pos.sum():.3f}, "
            f"FPR {flagged[~pos].mean():.3f}"
        )
    if args.split:
        print("  ours on the two halves of the corpus:")
        split(ours, topics, rows, THRESHOLD)
    print("per topic (ours):")
    per_topic(ours, topics, rows)
    print("targets:")
    print(f"  AUC >= 0.95: {'PASS' if got['auc'] >= 0.95 else 'FAIL'} ({got['auc']:.3f})")
    ok = got["recall"] >= 0.85 and got["fpr"] <= 0.05
    print(
        f"  recall >= 0.85 with FPR <= 5 % at {THRESHOLD}: {'PASS' if ok else 'FAIL'} "
        f"(recall {got['recall']:.3f}, FPR {got['fpr']:.3f})"
    )
    if args.errors:
        best = ours.max(axis=1)
        for r, s, w in zip(rows, best, ours.argmax(axis=1), strict=True):
            wrong = (s >= THRESHOLD) != (r["topic"] is not None) or (
                s >= THRESHOLD and r["topic"] != topics[w]
            )
            if wrong:
                print(f"    {s:.2f} {topics[w]:<18} [{r['kind']} {r['topic']}] {r['text']}")
    if args.variants:
        variants(rows, deny, allow)
    if args.curve:
        curve(rows, deny, allow)
    print("speed (the shipped check):")
    timings(policy, texts, 1 if args.quick else 5)


if __name__ == "__main__":
    main()
