"""Scoring a text against denied topics, by meaning and by words.

Built once per compiled policy from its examples (their embeddings are computed
here and never again), as two classifiers trained at compile time on the same
data: each topic's examples are a class, and *ordinary text* is one more class:
the policy's ``allow`` examples and a packaged set of ordinary assistant
sentences (:mod:`._background`).

- **Meaning**: logistic regression on the embeddings (WordLlama by default),
  centred on the mean of ordinary text and normalised (averaged word vectors
  share a large common direction; removing it spreads sentences apart).  It
  generalises past the examples' words ("Tylenol" near "paracetamol").
- **Words**: logistic regression on TF-IDF of words and word pairs.  It is
  precise where a sentence shares a topic's words but not its meaning ("the
  dosage of the API rate limit").

Each example is also learned with one word left out (three variants), so that
no single word carries a topic; and a unit is scored the same way: with up to
:data:`SCORE_VARIANTS` copies of it that each leave one word out.  A unit's score
for a topic is the geometric mean of the two probabilities (both views must agree),
over the unit and its variants (a score that rests on one word falls when that
word is left out).
``benchmarks/topic_accuracy.py`` compares each part, and plain nearest-example
cosine, on held-out sentences; ``docs/semantic.md`` says why this combination.
"""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import regex

from ._background import BACKGROUND
from .embed import Embedder, Matrix, WordLlamaEmbedder, embed

__all__ = ["ClassifierMissing", "TopicModel"]

#: Inverse regularisation of both regressions (scikit-learn's ``C``).
C_EMBEDDING, C_WORDS = 30.0, 10.0

Vector = npt.NDArray[np.float32]


_WORD = regex.compile(r"\w\w+")


def _words(text: str) -> list[str]:
    """The words of a text, as the TF-IDF part counts them (lower case, 2+ letters)."""
    return _WORD.findall(text.casefold())


#: Variants of an example made by leaving one word out (examples of four words or more).
VARIANTS = 3
#: Variants of a unit scored with it, each leaving one word out (units of four words
#: or more; chosen by a generator seeded with the unit, so a unit always scores the same).
SCORE_VARIANTS = 8


def left_out_words(text: str, n: int) -> tuple[list[str], list[int]]:
    """The words of ``text`` (split at whitespace) and which of them (up to ``n``; none
    for a text of fewer than four words) its variants leave out, chosen by a generator
    seeded with the text."""
    words = text.split()
    if len(words) < 4 or n < 1:
        return words, []
    which = list(range(len(words)))
    if n < len(words):
        which = random.Random(zlib.crc32(text.encode("utf-8"))).sample(which, n)
    return words, which


def _left_out(text: str, n: int) -> list[str]:
    """Up to ``n`` copies of ``text`` that each leave a different word out."""
    words, which = left_out_words(text, n)
    return [" ".join(words[:i] + words[i + 1 :]) for i in which]


def _with_variants(examples: Sequence[str]) -> list[str]:
    """The examples, each followed by :data:`VARIANTS` copies that leave one word out
    (chosen by a generator seeded with the example: the same policy compiles the same):
    a topic is learned from what its examples share, not from any one word."""
    out: list[str] = []
    for example in examples:
        out.append(example)
        words = example.split()
        if len(words) < 4:
            continue
        rng = random.Random(zlib.crc32(example.encode("utf-8")))
        for _ in range(VARIANTS):
            i = rng.randrange(len(words))
            out.append(" ".join(words[:i] + words[i + 1 :]))
    return out


class ClassifierMissing(ImportError):
    """scikit-learn (the ``semantic`` extra) is not installed."""


def _normalised(m: Matrix) -> Matrix:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    out: Matrix = (m / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def _softmax(z: npt.NDArray[Any]) -> Matrix:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Matrix = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


class _Linear:
    """A fitted multinomial logistic regression, as plain arrays (topic columns first,
    ordinary text last)."""

    __slots__ = ("bias", "weights")

    def __init__(self, x: Any, labels: list[int], n_classes: int, c: float) -> None:
        try:
            from sklearn.linear_model import LogisticRegression
            from threadpoolctl import threadpool_limits
        except ImportError:
            raise ClassifierMissing(
                "a topic check needs scikit-learn: pip install 'guardrails-engine[semantic]'"
            ) from None
        clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
        # One BLAS thread: on a busy machine, BLAS threads waiting for each other made
        # this fit 20 times slower (8 s against 0.4 s for the benchmark's policy).
        with threadpool_limits(limits=1):
            clf.fit(x, labels)
        order = [list(clf.classes_).index(i) for i in range(n_classes)]
        coef = np.asarray(clf.coef_, dtype=np.float64)
        bias = np.asarray(clf.intercept_, dtype=np.float64)
        if n_classes == 2:  # binary: one row, the second class's log-odds
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            bias = np.array([-bias[0] / 2, bias[0] / 2])
        self.weights = coef[order].T.copy()
        self.bias = bias[order].copy()

    def proba(self, x: Any) -> Matrix:
        return _softmax(np.asarray(x @ self.weights) + self.bias)


class TopicModel:
    """Denied topics with their examples, embedded and fitted (immutable)."""

    def __init__(
        self,
        embedder: Embedder,
        deny: Mapping[str, Sequence[str]],
        allow: Sequence[str] = (),
        *,
        background: Sequence[str] = BACKGROUND,
        parts: tuple[str, ...] = ("meaning", "words"),
        score_variants: int = SCORE_VARIANTS,
    ) -> None:
        if not deny:
            raise ValueError("no denied topic")
        if not parts or not set(parts) <= {"meaning", "words"}:
            raise ValueError(f"parts are 'meaning' and/or 'words', got {parts!r}")
        self.embedder = embedder
        self.topics: tuple[str, ...] = tuple(deny)
        self.parts = parts
        self.score_variants = score_variants
        grown = {t: _with_variants(deny[t]) for t in self.topics}
        examples = [e for t in self.topics for e in grown[t]]
        ordinary = [*allow, *background]
        labels = [i for i, t in enumerate(self.topics) for _ in grown[t]]
        labels += [len(self.topics)] * len(ordinary)
        n_classes = len(self.topics) + 1
        if not ordinary:
            raise ValueError("no ordinary text to tell the topics from")
        self.mean: Vector | None = None
        self.dim = 0
        self._meaning: _Linear | None = None
        self._words_model: _Linear | None = None
        if "meaning" in parts:
            raw = embed(embedder, [*examples, *ordinary])
            self.dim = raw.shape[1]
            self.mean = raw[len(examples) :].mean(axis=0).astype(np.float32)
            x = _normalised(raw - self.mean)
            self._meaning = _Linear(x, labels, n_classes, C_EMBEDDING)
        if "words" in parts:
            from sklearn.feature_extraction.text import TfidfVectorizer

            vectorizer = TfidfVectorizer(
                ngram_range=(1, 2),
                sublinear_tf=True,
                token_pattern=None,
                tokenizer=_words,
                lowercase=False,
            )
            x = vectorizer.fit_transform([*examples, *ordinary])
            self._words_model = _Linear(x, labels, n_classes, C_WORDS)
            # Transformed here, not by scikit-learn (ten times faster on one sentence).
            self._vocabulary: dict[str, int] = {
                str(k): int(v) for k, v in vectorizer.vocabulary_.items()
            }
            self._idf = np.asarray(vectorizer.idf_, dtype=np.float64)

    def vectors(self, texts: Sequence[str]) -> Matrix:
        """The texts' embeddings, centred and normalised as the examples were."""
        assert self.mean is not None
        return _normalised(embed(self.embedder, texts, self.dim) - self.mean)

    def _words_logits(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """The words part's logits: TF-IDF rows as scikit-learn's vectorizer makes them
        (sublinear tf, l2), each multiplied by the weights of its own terms only."""
        assert self._words_model is not None
        vocabulary = self._vocabulary
        rows: list[int] = []
        terms: list[int] = []
        counts: list[int] = []
        for row, text in enumerate(texts):
            seen: dict[int, int] = {}
            tokens = _words(text)
            for gram in (*tokens, *(f"{a} {b}" for a, b in itertools.pairwise(tokens))):
                j = vocabulary.get(gram)
                if j is not None:
                    seen[j] = seen.get(j, 0) + 1
            rows.extend([row] * len(seen))
            terms.extend(seen)
            counts.extend(seen.values())
        out = np.tile(self._words_model.bias, (len(texts), 1))
        if terms:
            at = np.array(rows)
            idx = np.array(terms)
            vals = (1.0 + np.log(np.array(counts, dtype=np.float64))) * self._idf[idx]
            norms = np.sqrt(np.bincount(at, weights=vals * vals, minlength=len(texts)))
            vals /= norms[at]
            member = np.zeros((len(texts), len(idx)))
            member[at, np.arange(len(idx))] = vals  # (np.add.at is slower)
            out += member @ self._words_model.weights[idx]
        return out

    def part_scores(
        self, texts: Sequence[str], units: Sequence[str] | None = None
    ) -> dict[str, Matrix]:
        """Each part's probabilities (rows: texts, columns: topics).  With ``units``,
        ``texts`` are the units each followed by its variants (as :meth:`scores` makes
        them): the default embedder embeds those from one reading of each unit."""
        out: dict[str, Matrix] = {}
        k = len(self.topics)
        if self._meaning is not None:
            if units is not None and isinstance(self.embedder, WordLlamaEmbedder):
                left_out = self.embedder.left_out
                rows = [left_out(u, left_out_words(u, self.score_variants)) for u in units]
                assert self.mean is not None
                raw = embed(lambda _: np.concatenate(rows), texts, self.dim)
                vectors = _normalised(raw - self.mean)
            else:
                vectors = self.vectors(texts)
            out["meaning"] = self._meaning.proba(vectors)[:, :k]
        if self._words_model is not None:
            out["words"] = _softmax(self._words_logits(texts))[:, :k]
        return out

    def scores(self, texts: Sequence[str]) -> Matrix:
        """Each text's score for each topic, in 0-1 (rows: texts, columns: :attr:`topics`):
        the geometric mean of the parts' probabilities (both must agree), over the text
        and its one-word-left-out variants."""
        batch: list[str] = []
        rows: list[int] = []  # the row of each text in the batch, then the end
        for text in texts:
            rows.append(len(batch))
            batch.append(text)
            batch.extend(_left_out(text, self.score_variants))
        rows.append(len(batch))
        parts = list(self.part_scores(batch, texts).values())
        logs = np.zeros(parts[0].shape, dtype=np.float64)
        for part in parts:
            logs += np.log(np.maximum(part.astype(np.float64), 1e-12))
        logs /= len(parts)
        out: Matrix = np.exp(
            np.stack([logs[a:b].mean(axis=0) for a, b in itertools.pairwise(rows)])
        ).astype(np.float32)
        return out
