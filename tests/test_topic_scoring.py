"""How a unit is scored: with up to eight copies of it that each leave one word out
(chosen by the unit itself, so a unit always scores the same), the default embedder
reading the unit once for all of them, and the words part's TF-IDF as scikit-learn
computes it (issue 23)."""

from __future__ import annotations

import itertools
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("sklearn", reason="the topic check needs the `semantic` extra")

import guardrails_engine as ge
from guardrails_engine.checks._topic import TopicModel
from guardrails_engine.checks._topic.model import SCORE_VARIANTS, left_out_words

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "policies" / "topics.yaml"
WORDS = [
    "take",
    "400",
    "mg",
    "of",
    "ibuprofen",
    "every",
    "four",
    "hours",
    "acme",
    "charges",
    "$20",
    "per",
    "seat",
    "the",
    "weather",
    "is",
    "lovely",
    "today,",
    "don't",
    "naïve",
]
sentences = st.lists(st.sampled_from(WORDS), min_size=0, max_size=14).map(" ".join)


@given(text=sentences, n=st.integers(0, 12))
def test_the_left_out_words_are_few_distinct_and_chosen_by_the_text(text: str, n: int) -> None:
    words, which = left_out_words(text, n)
    assert words == text.split()
    assert len(set(which)) == len(which) == (min(n, len(words)) if len(words) >= 4 else 0)
    assert all(0 <= i < len(words) for i in which)
    assert left_out_words(text, n) == (words, which)  # the same text, the same words


def hashed(texts: list[str]) -> Any:
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.encode()) % 32] += 1.0
        out[i, 31] += 0.5
    return out


DENY = {
    "dosage": ["take 400 mg of ibuprofen every four hours", "two 500 mg paracetamol a day"],
    "pricing": ["acme charges $20 per seat per month", "acme costs 45 dollars per user"],
}


def test_a_units_score_is_the_geometric_mean_over_it_and_its_variants() -> None:
    model = TopicModel(hashed, DENY, ["the weather is lovely today"])
    alone = TopicModel(hashed, DENY, ["the weather is lovely today"], score_variants=0)
    text = "take 400 mg of ibuprofen every four hours today"
    words, which = left_out_words(text, SCORE_VARIANTS)
    batch = [text] + [" ".join(words[:i] + words[i + 1 :]) for i in which]
    expected = np.exp(np.log(alone.scores(batch)).mean(axis=0))
    assert model.scores([text])[0] == pytest.approx(expected, rel=1e-5)
    short = "acme charges money"  # under four words: no variants
    assert model.scores([short])[0] == pytest.approx(alone.scores([short])[0], rel=1e-6)


def test_the_words_part_is_tfidf_as_scikit_learn_makes_it() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from guardrails_engine.checks._topic import model as m

    words = TopicModel(hashed, DENY, ["the weather is lovely today"], parts=("words",))
    fitted = m._with_variants([e for t in DENY for e in DENY[t]])
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2),
        sublinear_tf=True,
        token_pattern=None,
        tokenizer=m._words,
        lowercase=False,
    ).fit([*fitted, "the weather is lovely today", *m.BACKGROUND])
    texts = ["Take 400 mg of ibuprofen", "nothing known here", "", "acme acme charges"]
    x = vectorizer.transform(texts).toarray()
    order = [
        vectorizer.vocabulary_[t]
        for t, _ in sorted(words._vocabulary.items(), key=lambda kv: kv[1])
    ]
    logits = x[:, order] @ words._words_model.weights + words._words_model.bias
    assert words._words_logits(texts) == pytest.approx(logits, abs=1e-9)


wordllama = pytest.importorskip("wordllama")


@pytest.fixture(scope="module")
def bench() -> ge.Policy:
    # flag: a stream runs to the end, and its text is the whole text
    text = BENCH.read_text(encoding="utf-8").replace("action: block", "action: flag")
    return ge.Policy.from_yaml(text, base_dir=BENCH.parent)


def test_wordllama_embeds_the_variants_from_one_reading(bench: ge.Policy) -> None:
    model: TopicModel = bench.checks[0].model  # type: ignore[attr-defined]
    embedder = model.embedder
    for text in (
        "Take 400 mg of ibuprofen every four hours.",
        "Acme's enterprise tier costs $45 per user, billed yearly.",
        "  Don't   run hydra against the SSH port, naïve friend!  ",
        "x",
        "",
    ):
        words, which = left_out_words(text, SCORE_VARIANTS)
        fast = embedder.left_out(text, (words, which))  # type: ignore[attr-defined]
        plain = np.asarray(embedder([text] + [" ".join(words[:i] + words[i + 1 :]) for i in which]))
        assert fast.shape == plain.shape
        for a, b in zip(fast, plain, strict=True):
            if np.linalg.norm(b) == 0:
                continue
            cos = float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
            # (runs of spaces are tokens of their own, which the joined variants lack)
            assert cos > (0.95 if "  " in text else 0.98), text


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(1, 140), max_size=8))
def test_with_wordllama_a_stream_finds_what_validate_finds(
    bench: ge.Policy, cuts: list[int]
) -> None:
    text = (
        "Sure, here is a summary. Take 600 mg of ibuprofen every six hours. "
        "Acme charges $22 per seat. The weather is lovely."
    )
    flagging = bench
    bounds = [0, *sorted({c for c in cuts if c < len(text)}), len(text)]
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    stream = flagging.stream_sync(chunks)
    out = "".join(stream)
    whole = flagging.validate_sync(text)
    assert stream.result is not None
    assert out == whole.text == text and stream.result.findings == whole.findings
    assert [f.entity_type for f in whole.findings] == ["medical-dosage", "competitor-pricing"]
