"""The ``pii`` check: personal data, found with presidio's recognizers.

Pattern entities are found by presidio's regular expressions (driven by our
scanner), custom recognizers and deny-lists; NER entities by presidio's spaCy
recognizer, a sentence at a time.  Detection runs on the canonical view of
the text (see ``_scanning/canon.py``).  Scores follow presidio, including its context
rule: a context word among the five words before a value raises its score by
0.35 (to at least 0.4).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Sequence

import regex

from ..._common.deadline import Deadline
from ..._common.model import Action, done
from ..._scanning.scan import PatternSet, ScanMatch, ScanView
from ..._scanning.terms import term_pattern
from ..._spec.config import DEFAULT_MIN_SCORE, AllowRegexSpec, PiiSpec
from .._base import Hit, PatternCheck, PatternSession, RunContext, Session
from .ner import NerModel, sentence_end
from .presidio import POSSIBLE_PHONE_SCORE, Detector, catalog, plain_interpreter

__all__ = ["PARTIAL_ENTITIES", "PiiCheck"]

#: Entities whose `partial` repair keeps the last four characters: cards,
#: phones and account numbers.  Others are masked.
PARTIAL_ENTITIES = frozenset({"CREDIT_CARD", "PHONE_NUMBER", "IBAN_CODE", "US_BANK_NUMBER"})

#: presidio's LemmaContextAwareEnhancer defaults.
CONTEXT_WORDS_BEFORE = 5
CONTEXT_WINDOW_CHARS = 200
CONTEXT_BOOST = 0.35
CONTEXT_MIN_SCORE = 0.4

_WORD = regex.compile(r"\w+")
_ALNUM = regex.compile(r"[^\W_]")
_OUTCOME = {
    "mask": "masked",
    "redact": "redacted",
    "partial": "partially masked",
    "hash": "hashed",
    "pseudonym": "pseudonymised",
}


def _normal(value: str) -> str:
    """A value as compared for allow-lists, hashes and pseudonyms."""
    return " ".join(value.split()).casefold()


class PiiCheck(PatternCheck):
    """Finds the policy's entities; masks, redacts, blocks or flags them."""

    type = "pii"

    def __init__(
        self,
        spec: PiiSpec,
        on_error: str,
        *,
        ner: NerModel | None = None,
        ner_entities: Sequence[str] = (),
        hash_key: bytes | None = None,
        cap: int = 1024,
    ) -> None:
        self.id = spec.id
        self.action = Action(spec.action)
        self.on_error = spec.on_error or on_error
        self.template = spec.mask_template
        self.hash_key = hash_key
        if isinstance(spec.min_score, dict):
            self.min_scores = dict(spec.min_score)
            self.default_min = self.min_scores.pop("default", DEFAULT_MIN_SCORE)
        elif "min_score" in spec.model_fields_set:
            self.min_scores, self.default_min = {}, spec.min_score
        else:
            # The default takes a phone-shaped number phonenumbers finds possible but
            # not valid (scored lower); a `min_score` written in the policy decides.
            self.min_scores = {"PHONE_NUMBER": POSSIBLE_PHONE_SCORE}
            self.default_min = spec.min_score
        if isinstance(spec.repair, dict):
            self.styles = dict(spec.repair)
            self.default_style = self.styles.pop("default", "mask")
        else:
            self.styles, self.default_style = {}, spec.repair
        self.allow_values = frozenset(_normal(a) for a in spec.allow if isinstance(a, str))
        self.allow_patterns = tuple(
            regex.compile(a.regex) for a in spec.allow if isinstance(a, AllowRegexSpec)
        )

        detectors: list[Detector] = []
        pattern_entities = [e for e in spec.entities if e not in ner_entities]
        if pattern_entities:
            # (Imported here: its patterns compile as it is imported, and only a
            # policy with a pii check needs them.)
            from .disguise import FAMILIES
            from .disguise import detectors as disguised

            cat = catalog()
            for entity in pattern_entities:
                detectors.extend(cat.detectors(entity))
            if spec.disguises == "all":
                families: tuple[str, ...] = FAMILIES
            elif spec.disguises == "none":
                families = ()
            else:
                families = tuple(f for f in FAMILIES if f in spec.disguises)
            detectors.extend(disguised(tuple(pattern_entities), families))
        for rec in spec.recognizers:
            for i, p in enumerate(rec.patterns):
                detectors.append(
                    Detector(
                        rec.entity,
                        p.name or f"{rec.entity} pattern {i}",
                        regex.compile(p.regex),
                        plain_interpreter(p.score),
                        tuple(w.casefold() for w in rec.context),
                    )
                )
        for entity, terms in spec.deny.items():
            for term in terms:
                detectors.append(
                    Detector(entity, "deny", term_pattern(term), plain_interpreter(1.0))
                )
        self.detectors = tuple(detectors)
        self.patterns = PatternSet([d.pattern for d in detectors])
        self.ner = ner
        self.ner_entities = tuple(ner_entities)
        self.blocking = ner is not None and bool(ner_entities)
        self.cap = cap

    # -- sessions ---------------------------------------------------------------
    def session(self, scan: ScanView | None = None, deadline: Deadline | None = None) -> Session:
        if not self.blocking:
            return PatternSession(self, scan, deadline)
        return _PiiSession(self, deadline)

    # -- hits -------------------------------------------------------------------
    def _min_score(self, entity: str) -> float:
        return self.min_scores.get(entity, self.default_min)

    def _allowed(self, value: str) -> bool:
        if _normal(value) in self.allow_values:
            return True
        return any(p.fullmatch(value) for p in self.allow_patterns)

    def keep(
        self, entity: str, start: int, end: int, score: float, value: str, *, ner: bool = False
    ) -> Hit | None:
        if score < self._min_score(entity) or self._allowed(value):
            return None
        return Hit(self, start, end, entity, entity=entity, score=score, value=value, ner=ner)

    def interpret(self, matches: Sequence[ScanMatch]) -> list[Hit]:
        out: list[Hit] = []
        detectors = self.detectors
        for m in matches:
            detector = detectors[m.index]
            text, base = m.match.string, m.base
            for start, end, score in detector.interpret(m):
                if (
                    detector.context
                    and score < 1.0
                    and _has_context(text, start - base, detector.context)
                ):
                    score = min(1.0, max(score + CONTEXT_BOOST, CONTEXT_MIN_SCORE))
                hit = self.keep(detector.entity, start, end, score, text[start - base : end - base])
                if hit is not None:
                    out.append(hit)
        return out

    def undecided(self, index: int, start: int, end: int, value: str) -> Hit:
        entity = self.detectors[index].entity
        what = f"{entity} (in progress at the hold-back cap)"
        return Hit(self, start, end, what, entity=entity, score=1.0, value=value)

    # -- repairs ----------------------------------------------------------------
    def style(self, entity: str | None) -> str:
        """The repair style that applies to an entity."""
        style = self.styles.get(entity or "", self.default_style)
        if style == "partial" and entity not in PARTIAL_ENTITIES:
            return "mask"
        return style

    def outcome(self, hit: Hit) -> str:
        if self.action is Action.REPAIR:
            return _OUTCOME[self.style(hit.entity)]
        return done(self.action)

    def render(self, hit: Hit, context: RunContext) -> str:
        entity = hit.entity or "PII"
        value = hit.value or ""
        style = self.style(entity)
        if style == "redact":
            return ""
        if style == "partial":
            return _partial(value)
        if style == "hash" and self.hash_key is not None:
            digest = hmac.new(
                self.hash_key, f"{entity}\0{_normal(value)}".encode(), hashlib.sha256
            ).hexdigest()
            return f"<{entity}:{digest[:6]}>"
        if style == "pseudonym":
            names: dict[tuple[str, str], int] = context.setdefault(self.id, {})
            key = (entity, _normal(value))
            if key not in names:
                names[key] = 1 + sum(1 for e, _ in names if e == entity)
            return f"<{entity}_{names[key]}>"
        return self.template.format(entity=entity)


def _partial(value: str) -> str:
    """Every letter and digit starred but the last four: ``**** **** **** 4242``."""
    positions = [m.start() for m in _ALNUM.finditer(value)]
    starred = set(positions[:-4])
    return "".join("*" if i in starred else ch for i, ch in enumerate(value))


def _has_context(text: str, start: int, words: tuple[str, ...]) -> bool:
    """presidio's context rule (``LemmaContextAwareEnhancer``), without spaCy: among the
    five words before the value that are not stop words, and the value's own first word
    (a context word glued to it or inside it: ``HRB 123456``), one contains a context word.

    Words are read as spaCy's tokenizer reads them here: a run of word characters joined
    by ``-``, ``.``, ``/`` or ``@`` is one word (``536-90-4399``), so a list of values after
    one label counts each value once.
    """
    window = text[max(0, start - CONTEXT_WINDOW_CHARS) : start]
    # (The value's first word is read as far as the window's size: a run of
    # dotted digits is one word as long as the text, read again per value.)
    first = _TOKEN.match(text, start, start + CONTEXT_WINDOW_CHARS)
    tokens = _TOKEN.findall(window) + ([first.group()] if first else [])
    stop = _stop_words()
    kept = [t for t in (t.casefold() for t in tokens) if t not in stop]
    return any(w in t for t in kept[-(CONTEXT_WORDS_BEFORE + 1) :] for w in words)


_TOKEN = regex.compile(r"\w+(?:[\-./@]\w+)*")


@functools.cache
def _stop_words() -> frozenset[str]:
    """spaCy's English stop words (presidio's filter), without loading a model."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


class _PiiSession(Session):
    """Patterns as they stream, NER a sentence at a time."""

    __slots__ = ("_check", "_context", "_patterns", "_sentence", "deadline", "hold", "needed")

    capped = True
    scans = True
    reads_back = True  # NER reads the sentence before its hold

    def __init__(self, check: PiiCheck, deadline: Deadline | None) -> None:
        self._check = check
        self.deadline = Deadline() if deadline is None else deadline
        self._patterns = PatternSession(check, None, self.deadline) if check.detectors else None
        self._sentence = 0  # start of the sentence still open
        self._context = 0  # start of the sentence before it
        self.hold = 0
        self.needed = 0

    def _ner(self, buf: str, base: int, start: int, end: int) -> list[Hit]:
        """Entities that start in the sentence ``[start, end)``, read after the one before."""
        if not buf[start - base : end - base].strip():
            self._context = start
            return []
        check = self._check
        assert check.ner is not None
        lead = self._context
        text = buf[lead - base : end - base]
        out = []
        for s, e, entity, score in check.ner.analyze(text, check.ner_entities):
            # A sentence ends with its line break, which spaCy may take into an entity
            # that ends the text it sees (presidio, reading on, does not): never a span's.
            while e > s and text[e - 1].isspace():
                e -= 1
            if lead + s < start or e == s:
                continue  # in the context sentence: it was decided with its own
            hit = check.keep(entity, lead + s, lead + e, score, text[s:e], ner=True)
            if hit is not None:
                out.append(hit)
        self._context = start
        return out

    def _sentences(self, buf: str, base: int) -> list[Hit]:
        out: list[Hit] = []
        while True:
            end = sentence_end(buf, self._sentence - base, len(buf), self._check.cap)
            if end is None:
                return out
            out += self._ner(buf, base, self._sentence, base + end)
            self._sentence = base + end

    def _update(self) -> None:
        p = self._patterns
        # The sentence before the open one is kept as context for NER.
        self.hold = self._sentence if p is None else min(p.hold, self._sentence)
        self.needed = min(self.hold, self._context)

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        out = list(self._patterns.feed(buf, base, chunk)) if self._patterns else []
        out += self._sentences(buf, base)
        self._update()
        return out

    def finish(self, buf: str, base: int) -> Sequence[Hit]:
        out = list(self._patterns.finish(buf, base)) if self._patterns else []
        out += self._sentences(buf, base)
        end = base + len(buf)
        if self._sentence < end:
            out += self._ner(buf, base, self._sentence, end)
            self._sentence = end
        self.hold = end
        return out

    def force(self, buf: str, base: int, upto: int) -> Sequence[Hit]:
        out = list(self._patterns.force(buf, base, upto)) if self._patterns else []
        self._update()
        return out
