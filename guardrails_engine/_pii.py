"""The ``pii`` check: personal data, found with presidio's recognizers."""

from __future__ import annotations

from collections.abc import Sequence

from ._check import PatternCheck
from ._config import PiiSpec
from ._model import Action, Finding
from ._presidio import Detector, catalog
from ._scan import PatternSet, ScanMatch

__all__ = ["PiiCheck"]


class PiiCheck(PatternCheck):
    """Finds the policy's entities; masks, redacts, blocks or flags them."""

    type = "pii"

    def __init__(self, spec: PiiSpec, on_error: str) -> None:
        self.id = spec.id
        self.action = Action(spec.action)
        self.on_error = spec.on_error or on_error
        self.min_score = spec.min_score
        self.repair = spec.repair
        cat = catalog()
        detectors: list[Detector] = []
        for entity in spec.entities:
            detectors.extend(cat.detectors(entity))
        self.detectors = tuple(detectors)
        self.patterns = PatternSet([d.pattern for d in detectors])

    def interpret(self, matches: Sequence[ScanMatch]) -> list[Finding]:
        out: list[Finding] = []
        detectors = self.detectors
        masked = "masked" if self.repair == "mask" else "redacted"
        for m in matches:
            detector = detectors[m.index]
            entity = detector.entity
            for start, end, score in detector.interpret(m):
                if score < self.min_score:
                    continue
                out.append(
                    self.finding(
                        entity,
                        start,
                        end,
                        f"<{entity}>" if self.repair == "mask" else "",
                        entity_type=entity,
                        score=score,
                        repaired=masked,
                    )
                )
        return out
