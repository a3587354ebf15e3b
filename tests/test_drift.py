"""Drift: the uncovered share of current texts against a reference, per window."""

from __future__ import annotations

import json
import math
import random
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import guardrails_engine as ge
from guardrails_engine._cli import main
from guardrails_engine._evals.drift import (
    DriftError,
    DriftReference,
    binomial_tail,
    read_texts,
)

SUPPORT = [
    "Your order {n} has shipped and should arrive on {day}.",
    "You can reset your password from the {place} page.",
    "I have updated the delivery address for order {n}.",
    "Our support team is available from {h} until {h2} on {day}.",
    "The refund for order {n} will appear within {k} days.",
    "To change your plan, open the {place} page and choose {plan}.",
    "Your invoice for {month} is attached to this message.",
    "The parcel for order {n} is waiting at the {place} desk.",
]
COOKING = [
    "Bake the {food} for {k} minutes until the top is golden.",
    "Chop the {veg} finely and fry it gently in butter.",
    "Whisk the eggs with sugar, then fold in the flour for the {food}.",
    "Simmer the {veg} soup for {k} minutes and season with pepper.",
]
FILL = {
    "n": [str(x) for x in range(1000, 1100)],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "place": ["account", "settings", "billing", "profile", "front"],
    "h": ["8", "9", "10"],
    "h2": ["5", "6", "7"],
    "k": [str(x) for x in range(3, 40)],
    "plan": ["basic", "team", "business"],
    "month": ["March", "April", "May", "June"],
    "food": ["cake", "bread", "pie", "tart"],
    "veg": ["onion", "leek", "carrot", "pepper"],
}


def generate(templates: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        rng.choice(templates).format(**{k: rng.choice(v) for k, v in FILL.items()})
        for _ in range(n)
    ]


def hashed(texts: list[str]) -> Any:
    """A deterministic bag-of-words embedder (no model)."""
    out = np.zeros((len(texts), 128), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().replace(".", "").replace(",", "").split():
            out[i, zlib.crc32(word.encode()) % 128] += 1.0
    return out


def shifted(share: float, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    new = generate(COOKING, round(n * share), seed + 1)
    old = generate(SUPPORT, n - len(new), seed + 2)
    mixed = new + old
    rng.shuffle(mixed)
    return mixed


def test_binomial_tail() -> None:
    exact = sum(math.comb(20, i) * 0.05**i * 0.95 ** (20 - i) for i in range(3, 21))
    assert binomial_tail(3, 20, 0.05) == pytest.approx(exact)
    assert binomial_tail(0, 20, 0.05) == 1.0 and binomial_tail(21, 20, 0.05) == 0.0


def test_no_alert_on_held_out_reference_texts_and_an_alert_at_20_percent_new_topic() -> None:
    reference = DriftReference(generate(SUPPORT, 500, 1), embedder=hashed)
    same = reference.check(generate(SUPPORT, 400, 2))
    assert not same.alert, same.to_text()
    assert 0.0 <= sum(w.uncovered for w in same.windows) / 400 <= 0.1
    drifted = reference.check(shifted(0.2, 400, 3))
    assert drifted.alert and all(w.alert for w in drifted.windows), drifted.to_text()
    # the secondary number moves the same way on average (it is the weaker signal:
    # some drifted windows are nearer the centroid than some undrifted ones)
    assert np.mean([w.centroid_distance for w in drifted.windows]) > np.mean(
        [w.centroid_distance for w in same.windows]
    )


def test_reports_hold_numbers_never_texts() -> None:
    texts = shifted(0.2, 200, 4)
    report = DriftReference(generate(SUPPORT, 300, 5), embedder=hashed).check(texts)
    shown = report.to_text() + json.dumps(report.to_dict()) + report.to_csv()
    assert not any(t in shown for t in texts)
    assert report.to_csv().splitlines()[0].startswith("window,start,texts,uncovered,share")


def test_a_short_last_window_joins_the_one_before() -> None:
    report = DriftReference(generate(SUPPORT, 100, 6), embedder=hashed).check(
        generate(SUPPORT, 240, 7), window=100
    )
    assert [w.texts for w in report.windows] == [100, 140]


def test_exported_cases_are_grouped_and_load_as_cases(tmp_path: Path) -> None:
    report = DriftReference(generate(SUPPORT, 300, 8), embedder=hashed).check(shifted(0.2, 200, 9))
    path = tmp_path / "candidates.yaml"
    path.write_text(report.export_cases(), encoding="utf-8")
    cases = ge.load_cases(path)
    assert len(cases) == len(report.uncovered) > 0
    assert {c.input for c in cases} == {t for t, _ in report.uncovered}
    # the new topic's texts come first, as the largest group
    assert any(w in cases[0].input for w in ("Bake", "Chop", "Whisk", "Simmer"))


def test_read_texts(tmp_path: Path) -> None:
    lines = tmp_path / "t.jsonl"
    lines.write_text('{"text": "a"}\n"b"\n\n{"input": "c", "expect": {"decision": "pass"}}\n')
    assert read_texts(lines) == ["a", "b", "c"]
    cases = tmp_path / "c.yaml"
    cases.write_text("- {input: hello, expect: {decision: pass}}\n")
    assert read_texts(cases) == ["hello"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"other": 1}\n')
    with pytest.raises(DriftError, match=r"bad.jsonl:2"):
        read_texts(bad)
    with pytest.raises(DriftError, match="suffixless"):
        read_texts(tmp_path / "nofile")


def _jsonl(path: Path, texts: list[str]) -> str:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return str(path)


def test_cli_drift_with_the_default_embedder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("wordllama")
    ref = _jsonl(tmp_path / "ref.jsonl", generate(SUPPORT, 500, 10))
    same = _jsonl(tmp_path / "same.jsonl", generate(SUPPORT, 300, 11))
    moved = _jsonl(tmp_path / "moved.jsonl", shifted(0.2, 300, 12))
    assert main(["drift", "--reference", ref, same]) == 0
    assert "no alert" in capsys.readouterr().out
    out = tmp_path / "cases.yaml"
    assert main(["drift", "--reference", ref, moved, "--json", "--export-cases", str(out)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["alert"] and report["windows"][0]["share"] > 0.1
    assert len(ge.load_cases(out)) == report["uncovered"]
    assert main(["drift", "--reference", ref, moved, "--csv"]) == 1
    assert capsys.readouterr().out.count("\n") == 4  # header + 3 windows
    assert main(["drift", "--reference", str(tmp_path / "missing.jsonl"), same]) == 2
    assert main(["drift", "--reference", same, same, "--q", "0.7"]) == 2
