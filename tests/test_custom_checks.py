"""Checks of one's own: a sentence check, a text check, an async check calling a
local service, and an incremental check, from the small package in
tests/plugins (two loaded by import path, two by entry point), in validate,
stream, eval and the CLI; their failures; and the guarantees of any check."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _child import run_limited
from _policies import make_policy
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import guardrails_engine as ge
from guardrails_engine.checks import Check, CheckConfig, Found, Hit, Session, unit_check
from guardrails_engine.testing import assert_stream_matches, check_chunkings

PLUGINS = Path(__file__).parent / "plugins"
TRUSTED = ["custom_checks", "test_custom_checks"]


@pytest.fixture(autouse=True)
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The package and its entry points are importable only in these tests."""
    monkeypatch.syspath_prepend(str(PLUGINS))


# -- a local moderation service ---------------------------------------------------------------


class _Moderation(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.texts.append(body["text"])
            self.server.in_flight += 1
            self.server.most = max(self.server.most, self.server.in_flight)
        try:
            self.server.release.wait(self.server.delay)  # (set: answer at once)
            flagged = "hateful" in body["text"].lower()
            reply = json.dumps({"flagged": flagged, "category": "hate"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Moderation)
        self.lock = threading.Lock()
        self.texts: list[str] = []
        self.in_flight = 0
        self.most = 0
        self.delay = 0.0
        self.release = threading.Event()


@pytest.fixture(scope="module")
def service() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _policy_text(url: str) -> str:
    return f"""
version: 1
name: own checks
block_message: "[blocked]"
checks:
  - id: rivals
    type: custom
    function: "custom_checks.sentences:rivals"
    action: repair
    options: {{names: [Acme, Globex]}}
  - id: terms
    type: streaming_terms
    action: repair
    replacement: "[term]"
    options: {{terms: [blue falcon, project x]}}
  - id: moderation
    type: custom
    function: "custom_checks.service:moderated"
    action: block
    options: {{url: "{url}"}}
  - id: disclaimer
    type: disclaimer
    action: block
"""


@pytest.fixture(scope="module")
def policy(service: _Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ge.Policy]:
    url = f"http://127.0.0.1:{service.server_address[1]}/moderate"
    folder = tmp_path_factory.mktemp("policy")
    (folder / "own.yaml").write_text(_policy_text(url), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(PLUGINS))
        yield ge.load_policy(folder / "own.yaml", trusted_modules=["custom_checks"])


TEXTS = {
    "pass": "Our product is fast. It ships today.",
    "rival": "We are faster than ACME. Globex agrees!",
    "term": "The code name is Blue Falcon, not project x.",
    "hateful": "Hello there. This is a hateful remark. Bye.",
    "advice": "You should invest in bonds.",
    "advice-ok": "You could invest in bonds. This is not financial advice.",
}


def test_each_kind_of_check_works_in_validate(policy: ge.Policy) -> None:
    assert policy.validate_sync(TEXTS["pass"]).decision is ge.Decision.PASS
    rival = policy.validate_sync(TEXTS["rival"])
    assert rival.text == "We are faster than <RIVAL>. <RIVAL> agrees!"
    assert [f.check_type for f in rival.findings] == ["custom", "custom"]
    assert rival.reasons[0] == "rivals: competitor name at 19-23, replaced"
    term = policy.validate_sync(TEXTS["term"])
    assert term.text == "The code name is [term], not [term]."
    assert {f.check_type for f in term.findings} == {"streaming_terms"}
    hateful = policy.validate_sync(TEXTS["hateful"])
    assert hateful.blocked and hateful.text == "[blocked]"
    assert hateful.reasons == ("moderation: flagged by moderation (hate) at 13-38, blocked",)
    advice = policy.validate_sync(TEXTS["advice"])
    assert advice.blocked
    assert advice.reasons == (
        "disclaimer: investment advice without the disclaimer at 0-27, blocked",
    )
    assert advice.findings[0].check_type == "disclaimer"
    assert policy.validate_sync(TEXTS["advice-ok"]).decision is ge.Decision.PASS


def test_async_validate_awaits_the_service_concurrently(
    policy: ge.Policy, service: _Server
) -> None:
    service.most = 0
    service.release.clear()
    service.delay = 0.3  # each answer waits, so the calls overlap if they are concurrent
    try:
        text = "One is here. Two is here. Three is here. Four is here."
        result = anyio.run(policy.validate, text)
    finally:
        service.delay = 0.0
        service.release.set()
    assert result.decision is ge.Decision.PASS
    assert service.most >= 2  # the four sentences were in flight together


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_streams_equal_validate(policy: ge.Policy, name: str) -> None:
    text = TEXTS[name]
    for size in (1, 3, 7, len(text)):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        assert_stream_matches(policy, text, chunks, asynchronous=True)


@pytest.mark.slow
def test_guarantees_hold_over_random_chunkings(policy: ge.Policy, service: _Server) -> None:
    service.release.set()
    check_chunkings(policy, list(TEXTS.values()), max_examples=40)


def test_the_service_sees_sentences_not_chunks(policy: ge.Policy, service: _Server) -> None:
    service.texts.clear()
    list(policy.stream_sync(list("First one. Second one!")))
    assert service.texts == ["First one.", "Second one!"]


def test_a_streamed_block_releases_nothing_of_the_flagged_sentence(service: _Server) -> None:
    url = f"http://127.0.0.1:{service.server_address[1]}/moderate"
    policy = _own(
        "  - {id: moderation, type: custom, function: 'custom_checks.service:moderated',"
        f" options: {{url: '{url}'}}}}\n"
    )
    text = TEXTS["hateful"]
    with policy.stream_sync([text[i : i + 2] for i in range(0, len(text), 2)]) as stream:
        events = list(stream.events())
    released = "".join(e.text for e in events if isinstance(e, ge.Released))
    assert "hateful" not in released
    assert "Hello there." in released  # the sentence before was checked and released
    assert isinstance(events[-2], ge.Blocked) and events[-2].message == "[blocked]"


def test_eval_runs_cases_with_own_checks(policy: ge.Policy, tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        f"- id: rival\n  input: {json.dumps(TEXTS['rival'])}\n"
        "  expect:\n    decision: repair\n"
        "    text: 'We are faster than <RIVAL>. <RIVAL> agrees!'\n"
        f"- id: advice\n  input: {json.dumps(TEXTS['advice'])}\n"
        "  expect: {decision: block}\n"
        f"- id: fine\n  input: {json.dumps(TEXTS['pass'])}\n"
        "  expect: {decision: pass, findings: []}\n",
        encoding="utf-8",
    )
    report = ge.evaluate(policy, ge.load_cases(cases))
    assert len(report.results) == 3
    assert report.passed, [r.to_dict() for r in report.failed]
    assert report.disagreements == 0 and report.leaked == 0


def test_the_cli_checks_a_text_with_own_checks(
    policy: ge.Policy, service: _Server, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{service.server_address[1]}/moderate"
    (tmp_path / "own.yaml").write_text(_policy_text(url), encoding="utf-8")
    (tmp_path / "reply.txt").write_text(TEXTS["rival"], encoding="utf-8")
    env = {"PYTHONPATH": str(PLUGINS), "GUARDRAILS_TRUSTED_MODULES": "custom_checks"}
    for extra in ([], ["--stream"]):
        done = subprocess.run(
            [
                *(sys.executable, "-m", "guardrails_engine", "check", "--policy"),
                *(str(tmp_path / "own.yaml"), str(tmp_path / "reply.txt"), "--json", *extra),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**_env(), **env},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["decision"] == "repair"
        assert out["text"] == "We are faster than <RIVAL>. <RIVAL> agrees!"


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


# -- units ------------------------------------------------------------------------------------


def _own(body: str, *, cap: int = 1024) -> ge.Policy:
    return make_policy(body, block_message="[blocked]", cap=cap, trusted=TRUSTED)


def test_units_are_cut_the_same_in_stream_and_validate() -> None:
    from custom_checks import sentences

    policy = _own("  - {id: r, type: custom, function: 'custom_checks.sentences:recorded'}\n")
    text = 'He said "stop." Then left... Why? Really?! No\nnew line.  End'
    sentences.calls.clear()
    policy.validate_sync(text)
    whole = list(sentences.calls)
    assert whole == [
        'He said "stop."',
        "Then left...",
        "Why?",
        "Really?!",
        "No",
        "new line.",
        "End",
    ]
    for size in (1, 2, 5):
        sentences.calls.clear()
        list(policy.stream_sync([text[i : i + size] for i in range(0, len(text), size)]))
        assert sentences.calls == whole


def test_line_and_text_units_and_long_units() -> None:
    from custom_checks import sentences

    policy = _own(
        "  - {id: r, type: custom, function: 'custom_checks.sentences:recorded', unit: line}\n"
    )
    sentences.calls.clear()
    policy.validate_sync("one. two\n\nthree\n")
    assert sentences.calls == ["one. two", "three"]
    policy = _own(
        "  - {id: r, type: custom, function: 'custom_checks.sentences:recorded', unit: text}\n"
    )
    sentences.calls.clear()
    list(policy.stream_sync(["one. ", "two\n", "three"]))
    assert sentences.calls == ["one. two\nthree"]
    # A sentence longer than max_unit_chars is checked in parts of that size.
    policy = _own(
        "  - {id: r, type: custom, function: 'custom_checks.sentences:recorded',"
        " max_unit_chars: 20}\n",
        cap=64,
    )
    sentences.calls.clear()
    policy.validate_sync("a" * 50)
    assert sentences.calls == ["a" * 20, "a" * 20, "a" * 10]
    sentences.calls.clear()
    list(policy.stream_sync(["a"] * 50))
    assert sentences.calls == ["a" * 20, "a" * 20, "a" * 10]


def test_a_disguised_rival_is_found_in_the_canonical_view() -> None:
    policy = _own(
        "  - {id: r, type: custom, function: 'custom_checks.sentences:rivals', action: repair,"
        " options: {names: [Acme]}}\n"
    )
    result = policy.validate_sync("We beat A\u200b\u0441me today.")  # ZWSP, Cyrillic es
    assert result.text == "We beat <RIVAL> today."


# -- failures ---------------------------------------------------------------------------------


@unit_check
def boom(sentence: str) -> None:
    if "boom" in sentence:
        raise RuntimeError("secret 4111 1111 1111 1111 inside")


@unit_check
async def aboom(sentence: str) -> None:
    await anyio.lowlevel.checkpoint()
    if "boom" in sentence:
        raise RuntimeError("secret inside")


@unit_check
def not_a_list(sentence: str) -> Any:
    return 42


@unit_check
def wrong_items(sentence: str) -> Any:
    return [(0, 3)]


@unit_check
def out_of_range(sentence: str) -> Any:
    return [Found(0, len(sentence) + 5)]


@unit_check
def quoting(sentence: str) -> Any:
    i = sentence.find("Acme")
    return (
        [Found(i, i + 4, label="RIVAL", reason=f"mentions {sentence[i : i + 4]}")] if i >= 0 else []
    )


@pytest.mark.parametrize("name", ["boom", "aboom"])
@pytest.mark.parametrize("on_error", ["block", "pass"])
def test_a_raising_check_follows_on_error(name: str, on_error: str) -> None:
    policy = _own(
        f"  - {{id: c, type: custom, function: 'test_custom_checks:{name}',"
        f" on_error: {on_error}}}\n"
    )
    text = "Fine start. Then boom here. More text."
    result = policy.validate_sync(text)
    pieces = list(policy.stream_sync(list(text)))
    if on_error == "block":
        assert result.blocked
        assert result.reasons == ("c: check failed (RuntimeError), blocked",)
        assert "boom" not in "".join(pieces)
        assert pieces[-1] == "[blocked]"
    else:
        assert result.decision is ge.Decision.PASS
        assert result.text == text
        assert result.reasons == ("c: check failed (RuntimeError), skipped (on_error: pass)",)
    assert "4111" not in "".join(result.reasons)


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("not_a_list", "returns findings (Found) or None, got int"),
        ("wrong_items", "a finding must be a Found, got tuple"),
        ("out_of_range", "is not inside its unit"),
    ],
)
def test_malformed_findings_are_a_failure_with_a_clear_reason(name: str, detail: str) -> None:
    policy = _own(f"  - {{id: c, type: custom, function: 'test_custom_checks:{name}'}}\n")
    text = "Some text here. And more."
    result = policy.validate_sync(text)
    assert result.blocked
    (reason,) = result.reasons
    assert reason.startswith("c: check returned a malformed finding (")
    assert detail in reason
    assert "Some text" not in reason
    pieces = list(policy.stream_sync(list(text)))
    assert pieces == ["[blocked]"]


def test_a_reason_never_quotes_what_it_found() -> None:
    policy = _own(
        "  - {id: c, type: custom, function: 'test_custom_checks:quoting', action: repair}\n"
    )
    result = policy.validate_sync("We beat Acme.")
    assert result.text == "We beat <RIVAL>."
    assert result.reasons == ("c: RIVAL at 8-12, replaced",)


_HANGING = """
import sys, time, anyio
sys.path.insert(0, {plugins!r})
import guardrails_engine as ge
from guardrails_engine.checks import unit_check

@unit_check
async def hangs(s):
    if "hang" in s:
        await anyio.sleep(3600)

@unit_check(blocking=True)
def blocks(s):
    if "hang" in s:
        time.sleep(3600)

mod = sys.modules[__name__]
sys.modules["hangmod"] = mod
for name in ("hangs", "blocks"):
    for on_error in ("block", "pass"):
        policy = ge.Policy.from_yaml(
            "version: 1\\nname: t\\nblock_message: '[blocked]'\\nchecks:\\n"
            f"  - {{{{id: c, type: custom, function: 'hangmod:{{name}}', timeout_ms: 300,"
            f" on_error: {{on_error}}}}}}\\n",
            trusted_modules=["hangmod"],
        )
        text = "Fine start. Now hang here. More."
        result = policy.validate_sync(text)
        pieces = list(policy.stream_sync(list(text)))
        async def main():
            return await policy.validate(text)
        result_async = anyio.run(main)
        print(name, on_error, result.decision, result.reasons, "".join(pieces),
              result_async.decision)
"""


def test_a_hanging_check_times_out_and_on_error_decides() -> None:
    out = run_limited(_HANGING.format(plugins=str(PLUGINS)), seconds=60)
    lines = out.strip().splitlines()
    assert len(lines) == 4
    for line in lines:
        _, on_error, decision = line.split()[:3]
        assert "c: check timed out after 300 ms" in line
        if on_error == "block":
            assert decision == "block"
            assert line.endswith("Fine start. [blocked] block")  # nothing of the hanging unit
        else:
            assert decision == "pass"
            assert line.endswith("Fine start. Now hang here. More. pass")


# -- incremental checks that break their contract -----------------------------------------------


class _BadSession(Session):
    scans = True

    def __init__(self, check: Check, mode: str) -> None:
        self.check = check
        self.mode = mode
        self.hold = 0

    def feed(self, buf: str, base: int, chunk: str) -> list[Hit]:
        return self._misbehave(base + len(buf))

    def finish(self, buf: str, base: int) -> list[Hit]:
        return self._misbehave(base + len(buf))

    def _misbehave(self, end: int) -> list[Hit]:
        if end <= 10:
            if self.mode == "before-hold":
                self.hold = end  # all before here is decided...
            return []
        if self.mode == "hold-back":
            self.hold = 5 if self.hold > 5 else end
            return []
        if self.mode == "before-hold":
            return [Hit(self.check, 2, 4, "late")]  # ...and yet a hit starts there
        if self.mode == "past-end":
            return [Hit(self.check, 0, end + 10, "too long")]
        return ["x"]  # type: ignore[list-item]


class _Mode(BaseModel):
    mode: str


class BadCheck(Check):
    Options = _Mode

    def session(self) -> Session:
        return _BadSession(self, self.config.options.mode)


@pytest.mark.parametrize(
    ("mode", "detail"),
    [
        ("hold-back", "hold moved back"),
        ("before-hold", "starts before the session's hold"),
        ("past-end", "is not inside the text"),
        ("not-hits", "a hit must be a Hit, got str"),
    ],
)
def test_an_incremental_check_that_breaks_its_contract_fails(mode: str, detail: str) -> None:
    policy = _own(
        f"  - {{id: c, type: custom, function: 'test_custom_checks:BadCheck',"
        f" options: {{mode: {mode}}}}}\n"
    )
    text = "abcdefghijklmnopqrstuvwxyz " * 2
    results = [_streamed(policy, text)]
    if mode in ("past-end", "not-hits"):  # (validate makes one call: no hold to break)
        results.append(policy.validate_sync(text))
    for result in results:
        assert result.blocked
        (reason,) = result.reasons
        assert detail in reason, reason


def _streamed(policy: ge.Policy, text: str) -> ge.Result:
    with policy.stream_sync(list(text)) as stream:
        list(stream)
        assert stream.result is not None
        return stream.result


# -- the policy names them: errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ("{id: c, type: custom, function: 'no_such_mod:f'}", "checks[0].function", "not trusted"),
        (
            "{id: c, type: custom, function: 'custom_checks.nothing:f'}",
            "checks[0].function",
            "cannot import 'custom_checks.nothing:f': No module named",
        ),
        (
            "{id: c, type: custom, function: 'custom_checks.sentences:nope'}",
            "checks[0].function",
            "module 'custom_checks.sentences' has no attribute 'nope'",
        ),
        ("{id: c, type: custom, function: 'not a path'}", "checks[0].function", "match pattern"),
        ("{id: c, type: custom}", "checks[0]", "exactly one of `function` and `entry_point`"),
        ("{id: c, type: no_such_check}", "checks[0].type", "unknown check type 'no_such_check'"),
        ("{id: c, type: streaming_term}", "checks[0].type", "did you mean 'streaming_terms'"),
        ("{id: c, type: broken}", "checks[0].type", "cannot load the installed check 'broken'"),
        (
            "{id: c, type: custom, entry_point: nope}",
            "checks[0].entry_point",
            "no installed check 'nope'",
        ),
        (
            "{id: c, type: custom, function: 'custom_checks.sentences:rivals',"
            " options: {nmes: [x]}}",
            "checks[0].options.nmes",
            "unknown option",
        ),
        (
            "{id: c, type: custom, function: 'custom_checks.sentences:rivals'}",
            "checks[0].options",
            "required option `names` is missing",
        ),
        (
            "{id: c, type: disclaimer, options: {x: 1}}",
            "checks[0].options",
            "this check takes no options",
        ),
        (
            "{id: c, type: streaming_terms, unit: line, options: {terms: [a]}}",
            "checks[0].unit",
            "only unit checks take `unit`",
        ),
        (
            "{id: c, type: disclaimer, max_unit_chars: 5000}",
            "checks[0].max_unit_chars",
            "at most stream.max_holdback_chars",
        ),
        (
            "{id: c, type: custom, function: 'custom_checks.sentences:re'}",
            "checks[0].function",
            "is not a check",
        ),
        ("{id: c, type: custom, function: 'json:dumps', unit: word}", "checks[0].unit", "'line'"),
    ],
)
def test_a_bad_custom_entry_names_file_line_and_field(entry: str, field: str, message: str) -> None:
    text = f"version: 1\nname: t\nchecks:\n  - {entry}\n"
    with pytest.raises(ge.PolicyError) as info:
        ge.Policy.from_yaml(text, source="own.yaml", trusted_modules=["custom_checks"])
    problems = info.value.problems or (info.value,)
    assert any(p.field == field and message in str(p) for p in problems), [str(p) for p in problems]
    assert all(p.source == "own.yaml" and p.line == 4 for p in problems)


# -- unit checks: properties over random chunkings -------------------------------------------

_WORDS = st.sampled_from(["Acme", "acme", "Globex", "we", "win", ".", "!", "?", " ", "\n", "  "])


@settings(max_examples=150, deadline=None)
@given(words=st.lists(_WORDS, max_size=30), cuts=st.lists(st.integers(1, 9), min_size=1))
def test_a_sentence_check_streams_like_validate(words: list[str], cuts: list[int]) -> None:
    policy = _RIVALS
    text = "".join(words)
    chunks, i, k = [], 0, 0
    while i < len(text):
        chunks.append(text[i : i + cuts[k % len(cuts)]])
        i += cuts[k % len(cuts)]
        k += 1
    assert_stream_matches(policy, text, chunks)


@unit_check
def rival_words(sentence: str) -> list[Found]:
    out, i = [], sentence.lower().find("acme")
    while i >= 0:
        out.append(Found(i, i + 4, label="RIVAL"))
        i = sentence.lower().find("acme", i + 4)
    return out


@unit_check
def no_win(sentence: str) -> Found | None:
    return Found(reason="boasting") if "Globexwin" in sentence.replace(" ", "") else None


_RIVALS = ge.Policy.from_yaml(
    "version: 1\nname: t\nchecks:\n"
    "  - {id: r, type: custom, function: 'test_custom_checks:rival_words', action: repair}\n"
    "  - {id: s, type: custom, function: 'test_custom_checks:no_win', action: block}\n",
    trusted_modules=["test_custom_checks"],
)


def test_check_config_reaches_an_incremental_check() -> None:
    policy = _own("  - {id: t, type: streaming_terms, action: flag, options: {terms: [Zeta]}}\n")
    check = policy.checks[0]
    assert check.type == "streaming_terms" and check.id == "t"
    result = policy.validate_sync("a zeta b")
    assert result.decision is ge.Decision.PASS
    assert result.reasons == ("t: listed term at 2-6, flagged",)
    assert isinstance(CheckConfig, type)
