"""TraceStore: a trace sink writing to SQLite, and the ``traces`` report on it.

Usable as ``on_trace=`` anywhere; under many concurrent streams and several processes
it loses and duplicates no record; retention by age and by rows; a versioned schema; a
planted PII value never reaches the file, captured content or not.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import guardrails_engine as ge
from guardrails_engine._cli import main

ROOT = Path(__file__).resolve().parent.parent
EMAIL = "jdoe@example.com"
CARD = "4111 1111 1111 1111"
SECRET = "sk-" + "a1B2c3D4e5" * 3
PLANTED = (EMAIL, CARD, SECRET)
LIGHT = """\
version: 1
name: light
checks:
  - id: secrets
    type: content
    patterns: [{name: key, regex: 'sk-[A-Za-z0-9]{20,}'}]
    action: block
  - {id: len, type: length, max_chars: 60, action: repair}
"""


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _call(
    policy: ge.Policy,
    store: ge.TraceStore,
    *,
    model: str = "m1",
    trace_id: str | None = None,
    chunks: tuple[str, ...] = ("Hello ", "there"),
    capture: bool = False,
    started: float | None = None,
) -> ge.CallTrace:
    rec = ge.CallRecorder(
        policy,
        provider="openai",
        request_model=model,
        trace_id=trace_id,
        on_trace=store,
        capture_content=capture,
        started=started,
    )
    rec.prompt(f"card {CARD}")
    push = policy.push_sync(trace_id=rec.trace_id, on_trace=rec.run("choice", 0))
    for chunk in chunks:
        rec.upstream_chunk()
        out = push.feed(chunk)
        if out:
            rec.released(out)
    out = push.finish()
    if out:
        rec.released(out)
    rec.usage(input_tokens=3, output_tokens=len(chunks))
    rec.finish_reason("stop")
    return rec.finish()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "traces.db"


@pytest.fixture(scope="module")
def light() -> ge.Policy:
    return ge.Policy.from_yaml(LIGHT)


def test_on_trace_anywhere(db: Path, policies_dir: Path) -> None:
    with ge.TraceStore(db) as store:
        policy = ge.load_policy(policies_dir / "support-chat.yaml", on_trace=store)
        policy.validate_sync(f"mail {EMAIL}")
        "".join(policy.stream_sync(["a ", "b"]))
        push = policy.push_sync()
        push.feed("pushed")
        push.finish()
        plain = ge.load_policy(policies_dir / "support-chat.yaml")
        plain.validate_sync("per call", on_trace=store)
        _call(policy, store)  # the policy's sink and the call's are one: one record
        assert store.flush(10)
    kinds = _rows(db, "SELECT kind, decision FROM calls ORDER BY id")
    assert kinds == [
        ("validate", "repair"),
        ("stream", "pass"),
        ("stream", "pass"),
        ("validate", "pass"),
        ("call", "pass"),
    ]
    assert _rows(db, "SELECT check_id, action, entity_type FROM findings") == [
        ("pii", "repair", "EMAIL_ADDRESS")
    ]
    assert _rows(db, "SELECT part, idx FROM runs WHERE call_id = 5") == [("choice", 0)]


@pytest.mark.anyio
async def test_200_concurrent_streams_lose_and_duplicate_nothing(
    db: Path, light: ge.Policy
) -> None:
    store = ge.TraceStore(db, batch_size=16)

    async def source(i: int) -> Any:
        for word in ("stream ", str(i), " says ", "hi"):
            await anyio.lowlevel.checkpoint()
            yield word

    async def one(i: int) -> None:
        async with light.stream(source(i), trace_id=f"s{i}", on_trace=store) as s:
            async for _ in s:
                pass

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(one, i)
    await store.aclose()
    ids = [r[0] for r in _rows(db, "SELECT trace_id FROM calls")]
    assert sorted(ids) == sorted(f"s{i}" for i in range(200))
    assert _rows(db, "SELECT COUNT(*) FROM runs") == [(200,)]
    assert store.dropped == 0


CHILD = """
import sys
import guardrails_engine as ge
db, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
policy = ge.Policy.from_yaml({light!r})
store = ge.TraceStore(db, batch_size=8, max_rows=100000)
for i in range(n):
    rec = ge.CallRecorder(policy, provider="p", request_model=name, trace_id=f"{{name}}-{{i}}",
                          on_trace=store)
    push = policy.push_sync(trace_id=rec.trace_id, on_trace=rec.run("choice", 0))
    rec.upstream_chunk(); rec.released(push.feed("hello")); rec.released(push.finish())
    rec.finish()
    if i % 50 == 0:
        policy.validate_sync("on its own", trace_id=f"{{name}}-v{{i}}", on_trace=store)
store.close()
print(store.dropped)
"""


def test_two_processes_lose_and_duplicate_nothing(db: Path) -> None:
    script = textwrap.dedent(CHILD.format(light=LIGHT))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(db), name, "300"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("a", "b")
    ]
    for child in children:
        try:
            out, err = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            for c in children:
                c.kill()
            raise AssertionError("a writer did not finish within 60 s") from None
        assert child.returncode == 0, err[-2000:]
        assert out.strip() == "0"  # nothing dropped
    ids = [r[0] for r in _rows(db, "SELECT trace_id FROM calls")]
    expected = [f"{p}-{i}" for p in "ab" for i in range(300)]
    expected += [f"{p}-v{i}" for p in "ab" for i in range(0, 300, 50)]
    assert sorted(ids) == sorted(expected)
    assert _rows(db, "SELECT COUNT(*) FROM runs") == [(len(expected),)]


def test_a_policy_with_a_store_pickles_to_a_store_on_the_same_file(
    db: Path, policies_dir: Path
) -> None:
    with ge.TraceStore(db, max_rows=50) as store:
        policy = ge.load_policy(policies_dir / "support-chat.yaml", on_trace=store)
        copy = pickle.loads(pickle.dumps(policy))
        other = copy.on_trace
        assert isinstance(other, ge.TraceStore) and other is not store
        assert (other.path, other.max_rows) == (db, 50)
        copy.validate_sync("from the copy", trace_id="copy")
        policy.validate_sync("from the original", trace_id="original")
        other.close()
    assert sorted(_rows(db, "SELECT trace_id FROM calls")) == [("copy",), ("original",)]


def test_retention_by_rows_keeps_the_newest_and_leaves_no_orphans(
    db: Path, light: ge.Policy
) -> None:
    with ge.TraceStore(db, max_rows=5, batch_size=1) as store:
        for i in range(12):
            _call(light, store, trace_id=f"t{i}", chunks=("x", SECRET) if i % 2 else ("x",))
            store.flush(10)
    assert [r[0] for r in _rows(db, "SELECT trace_id FROM calls ORDER BY id")] == [
        f"t{i}" for i in range(7, 12)
    ]
    assert _rows(db, "SELECT COUNT(*) FROM runs WHERE call_id NOT IN (SELECT id FROM calls)") == [
        (0,)
    ]
    assert _rows(db, "SELECT COUNT(*) FROM findings") == [(3,)]  # t7, t9, t11 blocked


def test_retention_by_age(db: Path, light: ge.Policy) -> None:
    with ge.TraceStore(db, max_age_s=60) as store:
        _call(light, store, trace_id="old", started=time.perf_counter() - 120)
        _call(light, store, trace_id="new")
    assert _rows(db, "SELECT trace_id FROM calls") == [("new",)]


@pytest.mark.parametrize("capture", [False, True])
def test_planted_values_never_reach_the_file(db: Path, policies_dir: Path, capture: bool) -> None:
    with ge.TraceStore(db) as store:
        policy = ge.load_policy(policies_dir / "support-chat.yaml", on_trace=store)
        policy.validate_sync(f"mail {EMAIL}, card {CARD}, key {SECRET}")
        _call(policy, store, chunks=("mail ", EMAIL, " card ", CARD), capture=capture)
        _call(policy, store, chunks=("key ", SECRET), capture=capture)
    conn = sqlite3.connect(db)
    dump = "\n".join(conn.iterdump())
    conn.close()
    raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    for value in PLANTED:
        assert value not in dump
        assert value.encode() not in raw
    prompts = _rows(db, "SELECT prompt, output FROM calls WHERE kind = 'call'")
    if capture:
        assert prompts == [
            ("card <CREDIT_CARD>", "mail <EMAIL_ADDRESS> card <CREDIT_CARD>"),
            ("card <CREDIT_CARD>", ""),  # the blocked run released nothing
        ]
    else:
        assert prompts == [(None, None), (None, None)]


def test_a_newer_schema_and_other_files_are_refused(db: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ge.TraceStoreError, match="schema version 99 is newer"):
        ge.TraceStore(db)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ge.TraceStoreError, match="not a trace database"):
        ge.TraceStore(junk)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"path": 3}, "path must be a str or a Path, got int"),
        ({"max_rows": 0}, "max_rows must be a positive int, got 0"),
        ({"max_age_s": "1d"}, "max_age_s must be a positive number, got '1d'"),
        ({"batch_size": True}, "batch_size must be a positive int, got True"),
    ],
)
def test_wrong_arguments(db: Path, kwargs: dict[str, Any], message: str) -> None:
    path = kwargs.pop("path", db)
    with pytest.raises(TypeError, match=message):
        ge.TraceStore(path, **kwargs)


def test_a_store_takes_only_records(db: Path) -> None:
    with ge.TraceStore(db) as store, pytest.raises(TypeError, match="got dict"):
        store({"trace_id": "x"})  # type: ignore[arg-type]


def test_a_closed_store_drops_with_a_warning(
    db: Path, light: ge.Policy, caplog: pytest.LogCaptureFixture
) -> None:
    store = ge.TraceStore(db)
    store.close()
    store.close()
    light.validate_sync("late", on_trace=store)
    assert "closed TraceStore" in caplog.text
    assert _rows(db, "SELECT COUNT(*) FROM calls") == [(0,)]


# -- the report -----------------------------------------------------------------------


@pytest.fixture
def filled(db: Path, light: ge.Policy) -> Path:
    with ge.TraceStore(db) as store:
        for i in range(6):
            _call(light, store, model="m1", chunks=("hi ", SECRET) if i == 0 else ("hi",))
        for _ in range(3):
            _call(light, store, model="m2", chunks=("x" * 80,))  # repaired (length)
        _call(light, store, model="m2", started=time.perf_counter() - 7200)
    return db


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["traces", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_traces_json(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(filled), "--json")
    data = json.loads(out)
    assert code == 0 and data["calls"] == 10
    assert data["overall"]["blocked"] == 1 and data["overall"]["repaired"] == 3
    assert data["overall"]["input_tokens"] == 30
    assert set(data["overall"]["ttft_ms"]) == {"p50", "p95", "p99"}
    assert data["models"]["m1"]["calls"] == 6 and data["models"]["m1"]["block_rate"] == 0.1667
    assert data["checks"]["secrets"]["block_rate"] == 0.1
    assert data["checks"]["len"]["repair_rate"] == 0.3
    assert data["reasons"][0]["check_id"] == "len" and data["reasons"][0]["count"] == 3
    assert sum(int(b["count"]) for b in data["ttft_histogram"]) == 10
    assert SECRET not in out


def test_traces_since_and_model(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert json.loads(_run(capsys, str(filled), "--json", "--since", "1h")[1])["calls"] == 9
    data = json.loads(_run(capsys, str(filled), "--json", "--model", "m2")[1])
    assert data["calls"] == 4 and list(data["models"]) == ["m2"]
    code, _, err = _run(capsys, str(filled), "--since", "yesterday")
    assert code == 2 and "--since takes a duration" in err


def test_traces_csv_and_text(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _run(capsys, str(filled), "--csv")[1].splitlines()
    assert rows[0].startswith("scope,name,calls,blocked,repaired,block_rate")
    assert [r.split(",")[:3] for r in rows[1:]] == [
        ["all", "", "10"],
        ["model", "m1", "6"],
        ["model", "m2", "4"],
        ["check", "len", "3"],
        ["check", "secrets", "1"],
    ]
    text = _run(capsys, str(filled))[1]
    assert text.startswith("calls: 10\n")
    assert "time to first token (ms): p50" in text and "#" in text
    assert "most frequent reasons:" in text


def test_traces_refuses_what_is_not_a_trace_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, str(tmp_path / "missing.db"))
    assert code == 2 and "no such trace database" in err
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    code, _, err = _run(capsys, str(other))
    assert code == 2 and "not a trace database" in err
    assert _rows(other, "SELECT name FROM sqlite_master") == [("t",)]  # left as it was


def test_a_full_queue_drops_instead_of_growing(
    db: Path, light: ge.Policy, caplog: pytest.LogCaptureFixture
) -> None:
    store = ge.TraceStore(db, max_queue=5)
    trace = _call(light, None)
    # The writer is behind (it is woken only when a record is given): fill its queue.
    store._queue.extend((time.time(), trace) for _ in range(5))
    store(trace)
    assert store.dropped == 1
    assert "queue full, 1 traces dropped" in caplog.text
    store.close()


def test_a_forked_child_writes_through_the_store_it_inherited(db: Path, light: ge.Policy) -> None:
    with ge.TraceStore(db) as store:
        light.validate_sync("parent", trace_id="parent", on_trace=store)
        store.flush(10)
        pid = os.fork()
        if pid == 0:  # the child: its own writer; exit without running the parent's tests
            try:
                light.validate_sync("child", trace_id="child", on_trace=store)
                store.close()
            finally:
                os._exit(0)
        deadline = time.monotonic() + 30
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, "the forked child did not finish"
            time.sleep(0.02)
    assert sorted(_rows(db, "SELECT trace_id FROM calls")) == [("child",), ("parent",)]
