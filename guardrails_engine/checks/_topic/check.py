"""The ``topic`` check: each sentence (or the text) scored against denied topics.

It is a unit check (``_unit.py``): the engine holds the open sentence, cuts
units by a rule that reads only the text, and scores each complete unit once, so
a stream and ``validate`` score the same units and find the same topics.  A
finding names the topic and the score, never the text.

Each run keeps, per topic, the highest score of its units (numbers only): the
run's trace carries them (``Trace.topic_scores``), below the threshold too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._base import CheckConfig, Session
from .._unit import Compiled, Found, Unit, UnitCheck, UnitSession
from .model import TopicModel

__all__ = ["TopicCheck"]


class TopicCheck(Compiled):
    """Denied topics, as a policy configured them (shared by every run)."""

    #: An embedding and two classifiers per sentence: an async validate of any length
    #: runs in a worker thread, never on the event loop.
    costly = True

    def __init__(
        self,
        config: CheckConfig,
        model: TopicModel,
        thresholds: Mapping[str, float],
        *,
        unit: Unit,
        max_unit_chars: int,
    ) -> None:
        self.model = model
        self.thresholds = tuple(thresholds[t] for t in model.topics)
        declared = UnitCheck(self._find, unit=unit)
        super().__init__(config, declared, unit=unit, max_unit_chars=max_unit_chars)

    def session(self) -> Session:
        return TopicSession(self)

    def scores(self, text: str) -> dict[str, float]:
        """The score of ``text`` (one unit) for each topic."""
        row = self.model.scores([text])[0]
        return {t: float(s) for t, s in zip(self.model.topics, row, strict=True)}

    def _find(self, text: str) -> list[Found]:
        return self.found(self.model.scores([text])[0])

    def found(self, row: Any) -> list[Found]:
        """The finding of a unit whose topic scores are ``row`` (none under threshold)."""
        over = [(float(s), i) for i, s in enumerate(row) if s >= self.thresholds[i]]
        if not over:
            return []
        score, best = max(over)  # the topic the unit is most like
        topic = self.model.topics[best]
        return [Found(label=topic, reason=f"topic {topic} (score {score:.2f})", score=score)]

    def text_scores(self, text: str) -> dict[str, float]:
        """Each topic's best score over the units of ``text``, cut as a run cuts them
        (for evaluation: AUC needs the scores below the threshold too)."""
        units: list[str] = []
        cutter = Compiled(
            self.config,
            UnitCheck(units.append, unit=self.unit),
            unit=self.unit,
            max_unit_chars=self.max_unit_chars,
        )
        cutter.session().finish(text, 0)
        if not units:
            return dict.fromkeys(self.model.topics, 0.0)
        best = self.model.scores(units).max(axis=0)
        return {t: float(s) for t, s in zip(self.model.topics, best, strict=True)}


_MAIN = threading.main_thread()


class TopicSession(UnitSession):
    """A run of a topic check: its units, and each topic's best score so far."""

    traces_numbers = True

    def __init__(self, check: TopicCheck) -> None:
        super().__init__(check)
        self.topic = check
        self.best = np.zeros(len(check.model.topics))
        self.units = 0

    def call(self, text: str) -> Any:
        if threading.current_thread() is not _MAIN:
            # In a worker thread (an async validate): let the event loop's thread take the
            # interpreter between two units, rather than wait for the switch interval
            # behind every busy worker (loop lag p99 31 ms against 8-11 ms, see
            # benchmarks/loop_lag.py --topic).
            time.sleep(0)
        row = self.topic.model.scores([text])[0]
        np.maximum(self.best, row, out=self.best)
        self.units += 1
        return self.topic.found(row)

    def trace_numbers(self) -> dict[str, float]:
        """Each topic's highest score over the units scored in this run (0.0 when no
        unit was scored)."""
        return {
            t: round(float(s), 4) for t, s in zip(self.topic.model.topics, self.best, strict=True)
        }
