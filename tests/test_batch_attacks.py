"""Hostile inputs for batch scans: each test is an input that broke a promise of
docs/batch.md (every row once, bad rows reported without their content, no value
in any output, never a hang) before it was fixed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import guardrails_engine as ge
import guardrails_engine.batch as geb
from guardrails_engine._batch.inputs import BatchInputError, plan
from guardrails_engine._cli import main

POLICY = """
version: 1
name: batch-attacks
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS], action: repair}
"""
EMAIL = "jdoe.attack@example.com"


@pytest.fixture(scope="module")
def policy() -> ge.Policy:
    return ge.Policy.from_yaml(POLICY)


def _out_rows(out: Path) -> list[dict[str, object]]:
    rows = []
    for part in sorted(out.glob("part-*.jsonl")):
        raw = part.read_bytes()
        raw.decode("utf-8")  # strict: the output is UTF-8
        for line in raw.splitlines():
            # strict JSON: NaN and Infinity are not JSON
            rows.append(json.loads(line, parse_constant=_no_constant))
    return rows


def _no_constant(name: str) -> object:
    raise AssertionError(f"{name} written to the output: not JSON")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_before_any_read(tmp_path: Path) -> None:
    # Before: a FIFO has size 0, so it became one empty partition, and opening it
    # to read blocked the worker for ever (no writer ever comes).
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(BatchInputError, match="not a regular file"):
        plan([str(fifo)])
    folder = tmp_path / "logs"
    folder.mkdir()
    os.mkfifo(folder / "in-a-folder.jsonl")
    with pytest.raises(BatchInputError, match="not a regular file"):
        plan([str(folder)])


def test_a_symlink_to_a_file_is_read(policy: ge.Policy, tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text(json.dumps({"id": "s1", "text": f"mail {EMAIL}"}) + "\n", encoding="utf-8")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    summary = geb.scan_files(policy, [str(link)], tmp_path / "out")
    assert summary.decisions == {"repair": 1}


def test_the_input_folder_as_output_folder_is_refused(policy: ge.Policy, tmp_path: Path) -> None:
    # Before: the first scan wrote its part files and _summary.json among the inputs;
    # the next scan of the folder read them as inputs (.json counts as JSON lines),
    # and --overwrite deleted them after planning, so the workers crashed on
    # FileNotFoundError (and deleted an input named part-*.jsonl).
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_text('{"id": 1, "text": "hello"}\n', encoding="utf-8")
    for paths, out in (([logs], logs), ([logs / "a.jsonl"], logs)):
        for overwrite in (False, True):
            with pytest.raises(BatchInputError, match="holds the input"):
                geb.scan_files(policy, [str(p) for p in paths], out, overwrite=overwrite)
    alias = tmp_path / "alias"
    alias.symlink_to(logs)
    with pytest.raises(BatchInputError, match="holds the input"):
        geb.scan_files(policy, [str(logs)], alias)
    assert sorted(p.name for p in logs.iterdir()) == ["a.jsonl"]


def test_an_output_path_that_is_a_file_is_a_usage_error(policy: ge.Policy, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "hi"}\n', encoding="utf-8")
    (tmp_path / "taken").write_text("keep me", encoding="utf-8")
    with pytest.raises(BatchInputError, match="not a folder"):
        geb.scan_files(policy, [str(tmp_path / "a.jsonl")], tmp_path / "taken")


def test_ids_that_are_not_scalars_or_not_json_are_bad_rows(
    policy: ge.Policy, tmp_path: Path
) -> None:
    # Before: NaN/Infinity ids were written as bare NaN (not JSON); a list or object
    # id was copied whole into the output (with whatever it held, here an address).
    lines = [
        '{"id": NaN, "text": "one"}',
        '{"id": -Infinity, "text": "two"}',
        '{"id": ["' + EMAIL + '"], "text": "three"}',
        '{"id": {"who": "' + EMAIL + '"}, "text": "four"}',
        '{"id": 7, "text": "five"}',
        '{"id": 7, "text": "duplicate ids are both kept"}',
        '{"id": 2.5, "text": "six"}',
    ]
    src = tmp_path / "ids.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = geb.scan_files(policy, [str(src)], tmp_path / "out")
    rows = _out_rows(tmp_path / "out")
    assert len(rows) == summary.rows == len(lines)
    assert [r["decision"] for r in rows] == ["error"] * 4 + ["pass"] * 3
    assert [r["id"] for r in rows[4:]] == [7, 7, 2.5]
    assert all(str(r["id"]).startswith(str(src)) for r in rows[:4])
    assert EMAIL not in (tmp_path / "out" / "part-00000.jsonl").read_text(encoding="utf-8")
    assert summary.errors == {
        "an id that is not a finite number": 2,
        "an id that is list, not a string or a number": 1,
        "an id that is dict, not a string or a number": 1,
    }


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_lone_surrogates_are_bad_rows_not_a_crashed_job(
    policy: ge.Policy, tmp_path: Path, fmt: str
) -> None:
    # Before: JSON allows "\ud800" (and json.loads of bytes lets CESU-8 through), so
    # a single such row raised UnicodeEncodeError while writing the part file and
    # the whole scan died.
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    src = tmp_path / "surrogates.jsonl"
    src.write_bytes(
        b'{"id": "\\ud800", "text": "hello"}\n'
        b'{"id": 2, "text": "escaped \\udfff here"}\n'
        b'{"id": 3, "text": "raw \xed\xa0\x80 bytes"}\n'
        b'{"id": 4, "text": "fine"}\n'
    )
    out = tmp_path / "out"
    summary = geb.scan_files(policy, [str(src)], out, write_text=True, format=fmt)  # type: ignore[arg-type]
    assert summary.rows == 4
    assert summary.decisions == {"error": 3, "pass": 1}
    assert summary.errors == {
        "an id that is not valid Unicode": 1,
        "a text that is not valid Unicode": 2,
    }
    if fmt == "jsonl":
        assert [r["decision"] for r in _out_rows(out)] == ["error"] * 3 + ["pass"]


def test_records_in_memory_with_lone_surrogates(policy: ge.Policy) -> None:
    rows = list(geb.scan_records(policy, ["a \ud83d b", {"id": "\udc00", "text": "x"}]))
    assert [r.decision for r in rows] == ["error", "error"]
    assert [r.id for r in rows] == [0, 1]


def test_the_text_field_as_id_field_is_refused(policy: ge.Policy, tmp_path: Path) -> None:
    # Before: --id-field text wrote every text, unrepaired, as the row's id.
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"text": f"mail {EMAIL}"}) + "\n", encoding="utf-8")
    with pytest.raises(BatchInputError, match="the text would be the id"):
        geb.scan_files(policy, [str(src)], tmp_path / "out", id_field="text")
    with pytest.raises(BatchInputError):
        list(geb.scan_records(policy, [{"text": EMAIL}], field="t", id_field="t"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text(POLICY, encoding="utf-8")
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"text": f"mail {EMAIL}"}) + "\n", encoding="utf-8")
    base = ["scan", "--policy", str(pol), str(src)]
    # Before: nan and inf passed the "<= 0" test and crashed in int() with a traceback.
    for mb in ("nan", "inf", "-1", "0"):
        assert main([*base, "--output", str(tmp_path / f"o{mb}"), "--partition-mb", mb]) == 2
    assert main([*base, "--output", str(tmp_path / "o"), "--id-field", "text"]) == 2
    assert main([*base, "--output", str(tmp_path), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and EMAIL not in err
    assert src.exists()


def test_crlf_bom_no_final_newline_and_tiny_partitions_give_each_row_once(
    policy: ge.Policy, tmp_path: Path
) -> None:
    records = [{"id": i, "text": f"row {i} " + "x" * (i % 7)} for i in range(40)]
    body = "\r\n".join(json.dumps(r) for r in records).encode("utf-8")
    src = tmp_path / "crlf.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + body)  # a BOM, CRLF, no newline at the end
    for size in (1, 2, 3, 17, len(body) // 2, len(body), 10 * len(body)):
        out = tmp_path / f"out{size}"
        geb.scan_files(policy, [str(src)], out, partition_bytes=size)
        assert sorted(r["id"] for r in _out_rows(out)) == list(range(40)), size  # type: ignore[type-var]


def test_a_pool_charges_a_lost_worker_to_the_item_it_ran_not_the_queue(tmp_path: Path) -> None:
    # Before: each time the pool broke, every item still queued was charged an
    # attempt, so crashes of items 1 and 2 (each fine when run again) and one of
    # item 3 failed the job with "item 3 stopped its worker process 3 times" when
    # it had run once; a long job lost to three unrelated worker deaths.
    import functools

    from _dying import die

    from guardrails_engine._batch.runners import BatchError, ProcessPool

    how = {1: "once", 2: "once", 3: "always"}
    items = [(i, how.get(i, "")) for i in range(5)]
    results = {}
    with pytest.raises(BatchError, match="item 3 stopped its worker process 3 times"):
        for i, r in ProcessPool(1).map(functools.partial(die, str(tmp_path)), items):
            results[i] = r
    assert results == {0: 0, 1: 10, 2: 20}
    deaths = {p.name: len(p.read_text()) for p in tmp_path.iterdir()}
    assert deaths == {"killed-1": 1, "killed-2": 1, "killed-3": 3}  # a poison item still ends it


def test_a_file_named_twice_is_read_once(policy: ge.Policy, tmp_path: Path) -> None:
    # Before: `scan logs/ logs/a.jsonl` (or a symlink beside its target) wrote every
    # row of a.jsonl twice.
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_text('{"id": 1, "text": "one"}\n{"id": 2, "text": "two"}\n')
    (tmp_path / "alias.jsonl").symlink_to(logs / "a.jsonl")
    paths = [str(logs), str(logs / "a.jsonl"), str(tmp_path / "alias.jsonl"), str(logs)]
    summary = geb.scan_files(policy, paths, tmp_path / "out")
    assert summary.rows == 2
    assert sorted(r["id"] for r in _out_rows(tmp_path / "out")) == [1, 2]  # type: ignore[type-var]


def test_part_files_half_written_by_a_killed_worker_are_removed(
    policy: ge.Policy, tmp_path: Path
) -> None:
    # Before: a worker killed while writing left .part-*.tmp in the output folder
    # for ever (as large as a partition), through --overwrite too.
    src = tmp_path / "a.jsonl"
    src.write_text('{"id": 1, "text": "one"}\n', encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    half = out / ".part-00000.jsonl.4242.0123abcd.tmp"
    half.write_text('{"id": 1, "decision": "pa', encoding="utf-8")
    geb.scan_files(policy, [str(src)], out)
    assert sorted(p.name for p in out.iterdir()) == ["_summary.json", "part-00000.jsonl"]
    half.write_text("again", encoding="utf-8")
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    geb.scan_files(policy, [str(src)], out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "_summary.json",
        "notes.txt",
        "part-00000.jsonl",
    ]


def test_a_folder_of_results_is_read_without_its_metadata(
    policy: ge.Policy, tmp_path: Path
) -> None:
    # Before: a folder input took _summary.json (pretty-printed, so a bad row per
    # line) and hidden files as JSON lines.
    first = tmp_path / "first"
    src = tmp_path / "a.jsonl"
    src.write_text('{"id": 1, "text": "one"}\n', encoding="utf-8")
    geb.scan_files(policy, [str(src)], first, write_text=True)
    (first / ".hidden.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    summary = geb.scan_files(policy, [str(first)], tmp_path / "second")
    assert summary.rows == 1 and summary.bad_rows == 0
