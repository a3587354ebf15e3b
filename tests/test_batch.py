"""Batch scans (guardrails_engine.batch, ``guardrails-engine scan``): every input row
comes out exactly once, with what validate says, however the files are cut and
wherever the partitions run (this process, a process pool, a Dask LocalCluster),
also when a worker process dies mid-job; bad rows are reported, never values."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrails_engine as ge
import guardrails_engine.batch as geb
from guardrails_engine._batch.inputs import BadRecord, plan, read
from guardrails_engine._cli import main

PLUGINS = Path(__file__).parent / "plugins"

POLICY = """
version: 1
name: batch-test
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS, CREDIT_CARD, US_SSN], action: repair}
  - {id: words, type: content, terms: [forbidden], action: block}
"""

KILLER = (
    POLICY
    + """
  - {id: killer, type: custom, function: "custom_checks.killer:kill_once"}
"""
)

#: Values planted in the rows; none may appear in any output.
EMAIL, CARD = "jdoe.batch@example.com", "4111 1111 1111 1111"


def _texts(n: int) -> list[str]:
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(f"Row {i}: write to {EMAIL} today.")
        elif kind == 1:
            out.append(f"Row {i}: the card {CARD} was charged.")
        elif kind == 2:
            out.append(f"Row {i}: a forbidden word.")
        else:
            out.append(f"Row {i}: nothing to see.")
    return out


@pytest.fixture(scope="module")
def policy() -> ge.Policy:
    return ge.Policy.from_yaml(POLICY)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """Two JSON-lines files: ids, texts under ``response``, and three bad rows."""
    folder = tmp_path / "logs"
    folder.mkdir()
    texts = _texts(60)
    with open(folder / "a.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(texts[:30]):
            f.write(json.dumps({"id": f"a{i}", "response": t}) + "\n")
        f.write("{not json\n")
        f.write(json.dumps({"id": "a-int", "response": 7}) + "\n")
    with open(folder / "b.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(texts[30:]):
            f.write(json.dumps({"id": f"b{i}", "response": t}) + "\n\n")
        f.write(json.dumps({"id": "b-missing", "prompt": "no response here"}) + "\n")
    return folder


def _rows(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for part in sorted(out.glob("part-*.jsonl")):
        rows.extend(json.loads(line) for line in part.read_text(encoding="utf-8").splitlines())
    return rows


def _expected(policy: ge.Policy, folder: Path) -> dict[str, tuple[str, list[str]]]:
    """What an in-process loop over the same rows says: id -> (decision, checks)."""
    want: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            text = record.get("response")
            if isinstance(text, str):
                result = policy.validate_sync(text)
                want[record["id"]] = (
                    result.decision.value,
                    [f.check_id for f in result.findings],
                )
    return want


def _assert_matches_loop(policy: ge.Policy, logs: Path, out: Path) -> list[dict[str, Any]]:
    rows = _rows(out)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "a row was written twice"
    want = _expected(policy, logs)
    got = {r["id"]: (r["decision"], [f["check"] for f in r["findings"]]) for r in rows}
    assert {k: got[k] for k in want} == want
    errors = sorted(r["error"] for r in rows if r["decision"] == "error")
    assert errors == [
        "a line that is not valid JSON",
        "field 'response' is int, not a string",
        "no field 'response'",
    ]
    assert len(rows) == len(want) + 3
    blob = json.dumps(rows)
    assert EMAIL not in blob and CARD not in blob and "4111" not in blob
    return rows


# -- records --------------------------------------------------------------------------


def test_scan_records_checks_each_record_and_reports_bad_ones(policy: ge.Policy) -> None:
    rows = list(
        geb.scan_records(
            policy,
            [
                f"mail {EMAIL}",
                {"id": "x", "text": f"card {CARD}"},
                {"id": "y", "text": 3},
                {"id": "z", "body": "no text"},
                ["a", "list"],
            ],
            write_text=True,
        )
    )
    assert [(r.id, r.decision) for r in rows] == [
        (0, "repair"),
        ("x", "repair"),
        ("y", "error"),
        ("z", "error"),
        (4, "error"),
    ]
    assert rows[0].findings[0]["entity"] == "EMAIL_ADDRESS"
    assert rows[0].text == policy.validate_sync(f"mail {EMAIL}").text
    assert rows[2].error == "field 'text' is int, not a string"
    assert rows[3].error == "no field 'text'"
    assert rows[4].error == "a record is list, not an object"
    assert all(CARD not in json.dumps(r.to_dict()) for r in rows)


def test_rows_never_hold_the_value_without_write_text(policy: ge.Policy) -> None:
    (row,) = geb.scan_records(policy, [f"send {CARD} and {EMAIL}"])
    blob = json.dumps(row.to_dict())
    assert CARD not in blob and EMAIL not in blob and "text" not in row.to_dict()
    assert {f["entity"] for f in row.findings} == {"CREDIT_CARD", "EMAIL_ADDRESS"}


# -- partitions -----------------------------------------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(
        st.one_of(
            st.builds(lambda s: json.dumps({"text": s}), st.text(max_size=30)),
            st.sampled_from(["", "   ", "{bad", "[1, 2]"]),
        ),
        max_size=25,
    ),
    size=st.integers(min_value=1, max_value=64),
    trailing_newline=st.booleans(),
)
def test_byte_range_partitions_give_every_line_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], size: int, trailing_newline: bool
) -> None:
    path = tmp_path_factory.mktemp("p") / "x.jsonl"
    body = "\n".join(lines) + ("\n" if trailing_newline and lines else "")
    path.write_text(body, encoding="utf-8")
    got = []
    for part in plan([str(path)], partition_bytes=size):
        got.extend(read(part, field="text", id_field="id"))
    records = [r if not isinstance(r, BadRecord) else "BAD" for _, r in got]
    want = []
    for line in lines:
        if not line.strip():
            continue
        try:
            want.append(json.loads(line))
        except ValueError:
            want.append("BAD")
    assert records == want
    keys = [k for k, _ in got]
    assert len(keys) == len(set(keys))


def test_a_line_that_is_not_utf8_or_too_long_is_a_bad_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardrails_engine._batch import inputs

    monkeypatch.setattr(inputs, "MAX_LINE_BYTES", 100)
    path = tmp_path / "x.jsonl"
    path.write_bytes(
        b'{"text": "ok"}\n{"text": "\xff\xfe"}\n'
        + b'{"text": "'
        + b"a" * 500
        + b'"}\n{"text": "end"}\n'
    )
    (part,) = plan([str(path)])
    got = [
        r.why if isinstance(r, BadRecord) else r["text"]
        for _, r in read(part, field="text", id_field=None)
    ]
    assert got == ["ok", "a line that is not UTF-8", "a line longer than 100 bytes", "end"]


def test_inputs_that_cannot_be_read_are_refused_before_any_work(
    tmp_path: Path, policy: ge.Policy
) -> None:
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(geb.BatchInputError, match="not a JSON-lines"):
        geb.scan_files(policy, [str(tmp_path / "x.csv")], tmp_path / "out")
    with pytest.raises(geb.BatchInputError, match="cannot be read"):
        geb.scan_files(policy, [str(tmp_path / "missing.jsonl")], tmp_path / "out")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(geb.BatchInputError, match="not a Parquet file"):
        geb.scan_files(policy, [str(tmp_path / "bad.parquet")], tmp_path / "out")
    with pytest.raises(TypeError, match="a list of paths"):
        geb.scan_files(policy, str(tmp_path / "x.csv"), tmp_path / "out")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not int"):
        geb.scan_files(3, [], tmp_path / "out")  # type: ignore[arg-type]


# -- files, in this process -----------------------------------------------------------


def test_scan_files_in_process_equals_a_loop(policy: ge.Policy, logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = geb.scan_files(policy, [str(logs)], out, field="response", partition_bytes=300)
    rows = _assert_matches_loop(policy, logs, out)
    assert summary.rows == len(rows) and summary.bad_rows == 3
    assert summary.decisions["repair"] == 30 and summary.decisions["block"] == 15
    assert summary.entities == {"EMAIL_ADDRESS": 15, "CREDIT_CARD": 15}
    written = json.loads((out / "_summary.json").read_text())
    assert written["rows"] == len(rows) and written["decisions"]["error"] == 3
    assert len(list(out.glob("part-*.jsonl"))) > 2  # really cut into several partitions
    with pytest.raises(geb.BatchInputError, match="earlier scan"):
        geb.scan_files(policy, [str(logs)], out, field="response")
    again = geb.scan_files(policy, [str(logs)], out, field="response", overwrite=True)
    assert again.rows == summary.rows
    assert len(_rows(out)) == len(rows)


def test_write_text_writes_the_repaired_text(policy: ge.Policy, logs: Path, tmp_path: Path) -> None:
    geb.scan_files(
        policy, [str(logs / "a.jsonl")], tmp_path / "o", field="response", write_text=True
    )
    rows = {r["id"]: r for r in _rows(tmp_path / "o")}
    assert rows["a0"]["text"] == policy.validate_sync(_texts(1)[0]).text
    assert EMAIL not in rows["a0"]["text"]


def test_parquet_in_and_out(policy: ge.Policy, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    texts = _texts(40)
    table = pa.table({"answer": texts})  # no id column: rows are named path:row
    src = tmp_path / "in.parquet"
    pq.write_table(table, src, row_group_size=7)
    out = tmp_path / "out"
    summary = geb.scan_files(policy, [str(src)], out, field="answer", format="parquet")
    assert summary.rows == 40 and summary.bad_rows == 0
    got = pq.read_table(out).to_pylist()
    assert len(list(out.glob("part-*.parquet"))) == 6
    by_id = {r["id"]: r for r in got}
    assert sorted(by_id) == sorted(f"{src}:{i}" for i in range(40))
    for i, t in enumerate(texts):
        assert by_id[f"{src}:{i}"]["decision"] == policy.validate_sync(t).decision.value
    assert EMAIL not in json.dumps(got, default=str)


# -- the command ----------------------------------------------------------------------


def test_cli_scan_summary_strict_and_usage(
    logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(POLICY)
    args = ["scan", "--policy", str(policy_file), str(logs), "--field", "response"]
    assert main([*args, "--output", str(tmp_path / "o1")]) == 0
    err = capsys.readouterr().err
    assert "63 rows" in err and "error 3" in err and "EMAIL_ADDRESS 15" in err
    assert EMAIL not in err
    assert main([*args, "--output", str(tmp_path / "o2"), "--strict"]) == 1
    capsys.readouterr()
    assert main([*args, "--output", str(tmp_path / "o2")]) == 2
    assert "earlier scan" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*args, "--output", str(tmp_path / "o3"), "--workers", "2", "--local", "2"])
    assert exc.value.code == 2
    assert (
        main(
            [
                "scan",
                "--policy",
                str(policy_file),
                str(tmp_path / "nope.jsonl"),
                "--output",
                str(tmp_path / "o4"),
            ]
        )
        == 2
    )
    assert "cannot be read" in capsys.readouterr().err


# -- other processes ------------------------------------------------------------------


@pytest.fixture
def worker_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Worker processes import this checkout and the test plugins; the killer check
    takes its process down once, the first time it meets KILL-ME."""
    here = str(Path(__file__).resolve().parent.parent)
    monkeypatch.syspath_prepend(str(PLUGINS))
    old = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(PLUGINS), here, old) if p))
    marker = tmp_path / "killed"
    monkeypatch.setenv("GE_TEST_KILL_MARKER", str(marker))
    return marker


def _with_killer(logs: Path) -> Path:
    """The logs, plus a file whose row k21 takes its worker down the first time."""
    texts = _texts(40)
    texts[21] = "Row 21: KILL-ME please."
    with open(logs / "k.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": f"k{i}", "response": t}) + "\n")
    return logs


def _assert_survived(killer: ge.Policy, logs: Path, out: Path, marker: Path) -> None:
    assert marker.exists(), "no worker was killed: the test tests nothing"
    rows = _assert_matches_loop(killer, logs, out)
    assert {f"k{i}" for i in range(40)} <= {r["id"] for r in rows}


def test_a_process_pool_equals_a_loop_and_survives_a_killed_worker(
    worker_path: Path, logs: Path, tmp_path: Path
) -> None:
    killer = ge.Policy.from_yaml(KILLER, trusted_modules=["custom_checks"])
    _with_killer(logs)
    out = tmp_path / "out"
    geb.scan_files(killer, [str(logs)], out, field="response", workers=2, partition_bytes=400)
    _assert_survived(killer, logs, out, worker_path)


def test_a_dask_cluster_equals_a_loop_and_loses_nothing_when_a_worker_dies(
    worker_path: Path, logs: Path, tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    killer = ge.Policy.from_yaml(KILLER, trusted_modules=["custom_checks"])
    _with_killer(logs)
    out = tmp_path / "out"
    # A LocalCluster of two worker processes, started after the fixture set the
    # plugin path and the marker, so that the workers inherit them.
    geb.scan_files(killer, [str(logs)], out, field="response", local=2, partition_bytes=400)
    _assert_survived(killer, logs, out, worker_path)


def test_scan_dask_dataframe_and_bag(policy: ge.Policy) -> None:
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    db = pytest.importorskip("dask.bag")
    texts = _texts(20)
    frame = dd.from_pandas(
        pd.DataFrame({"id": [f"r{i}" for i in range(20)], "answer": texts}), npartitions=3
    )
    got = geb.scan_dask(policy, frame, field="answer").compute(scheduler="sync")
    assert list(got["id"]) == [f"r{i}" for i in range(20)]
    assert list(got["decision"]) == [policy.validate_sync(t).decision.value for t in texts]
    assert EMAIL not in got.to_json()
    bag = db.from_sequence([*texts[:4], {"text": 5}], npartitions=2)
    rows = geb.scan_dask(policy, bag, write_text=True).compute(scheduler="sync")
    assert [r["decision"] for r in rows] == ["repair", "repair", "block", "pass", "error"]
    assert rows[0]["text"] == policy.validate_sync(texts[0]).text
    with pytest.raises(TypeError, match="Dask DataFrame or bag"):
        geb.scan_dask(policy, [1, 2])


def test_an_eval_suite_spread_over_workers_gives_the_same_report(
    worker_path: Path, policy: ge.Policy, policies_dir: Path
) -> None:
    support = ge.load_policy(policies_dir / "strict-redact.yaml")
    cases = ge.load_cases(policies_dir / "strict-redact.cases.yaml")[:20]
    here = ge.evaluate(support, cases)
    spread = geb.evaluate(support, cases, workers=2)
    assert spread.to_dict() == here.to_dict()
    assert [r.case.id for r in spread.results] == [r.case.id for r in here.results]
