"""The command line: exit codes, stdout and stderr, --json, --stream, lint and schema."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

import guardrails_engine as ge
from guardrails_engine._cli import main

SECRET = "sk-" + "Zx9" * 8
BLOCK_MESSAGE = "Sorry, I can't share that."


def _file(tmp_path: Path, text: str, name: str = "answer.txt") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def chat(policies_dir: Path) -> str:
    return str(policies_dir / "support-chat.yaml")


# -- check -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_check_pass(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, chat: str, stream: bool
) -> None:
    text = "Your order shipped today. Café ☕ for everyone!\n"
    args = ["check", "--policy", chat, _file(tmp_path, text)] + (["--stream"] if stream else [])
    status, out, err = _run(capsys, *args)
    assert status == 0
    assert out == text
    assert err == "decision: pass\n"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_check_repair(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, chat: str, stream: bool
) -> None:
    text = "Mail jdoe@example.com or call +1 415 555 0132.\n"
    args = ["check", "--policy", chat, _file(tmp_path, text)] + (["--stream"] if stream else [])
    status, out, err = _run(capsys, *args)
    assert status == 0
    assert out == "Mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>.\n"
    assert err == (
        "decision: repair; pii: EMAIL_ADDRESS at 5-21, masked; pii: PHONE_NUMBER at 30-45, masked\n"
    )
    assert "jdoe" not in err


def test_check_block(capsys: pytest.CaptureFixture[str], tmp_path: Path, chat: str) -> None:
    text = f"Here is the key: {SECRET} enjoy.\n"
    status, out, err = _run(capsys, "check", "--policy", chat, _file(tmp_path, text))
    assert status == 1
    assert out == BLOCK_MESSAGE + "\n"  # its own line: stderr does not run into it
    assert err == "decision: block; secrets: api-key at 17-44, blocked\n"
    assert SECRET not in out + err


def test_check_block_streamed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, chat: str
) -> None:
    text = f"Here is the key: {SECRET} enjoy.\n"
    status, out, err = _run(capsys, "check", "--stream", "--policy", chat, _file(tmp_path, text))
    assert status == 1
    # What was released before the key may have gone out; then the block message, on its line.
    assert out.endswith(BLOCK_MESSAGE + "\n")
    assert "Here is the key: ".startswith(out.removesuffix(BLOCK_MESSAGE + "\n"))
    assert "sk-" not in out
    assert err == "decision: block; secrets: api-key at 17-44, blocked\n"


def test_check_reads_stdin(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    chat: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _file(tmp_path, "write to jdoe@example.com")
    with open(path, encoding="utf-8") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        status, out, err = _run(capsys, "check", "--policy", chat)  # FILE defaults to -
    assert status == 0
    assert out == "write to <EMAIL_ADDRESS>"
    assert err == "decision: repair; pii: EMAIL_ADDRESS at 9-25, masked\n"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(
    "text",
    ["Nothing to see.", "Mail jdoe@example.com now", f"key {SECRET} here", "word " * 450],
    ids=["pass", "repair", "block", "truncate"],
)
def test_check_json_is_the_whole_result(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    chat: str,
    support_policy: ge.Policy,
    text: str,
    stream: bool,
) -> None:
    args = ["check", "--json", "--policy", chat, _file(tmp_path, text)]
    status, out, err = _run(capsys, *args + (["--stream"] if stream else []))
    expected = support_policy.validate_sync(text)
    assert status == (1 if expected.decision is ge.Decision.BLOCK else 0)
    assert json.loads(out) == expected.to_dict()
    assert json.loads(out)["decision"] == expected.decision.value
    assert err.count("\n") == 1 and err.startswith(f"decision: {expected.decision.value}")


def test_stderr_is_one_line_with_several_findings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, chat: str
) -> None:
    text = (Path(chat).parent.parent / "examples" / "support_reply.txt").read_text(encoding="utf-8")
    status, out, err = _run(capsys, "check", "--policy", chat, _file(tmp_path, text))
    assert status == 0
    assert err.endswith("\n") and err.count("\n") == 1
    parts = err.rstrip("\n").split("; ")
    assert parts[0] == "decision: repair"
    assert len(parts) == 5
    assert all(p.startswith("pii: ") and p.endswith(", masked") for p in parts[1:])
    assert "billing@example.com" not in out + err


# -- exit 2: bad policy, unreadable input, bad usage -------------------------------------


def test_check_with_a_bad_policy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    policy = _file(
        tmp_path,
        "version: 1\nname: t\nchecks:\n  - id: l\n    type: length\n    max_chars: 0\n",
        "bad.yaml",
    )
    status, out, err = _run(capsys, "check", "--policy", policy, _file(tmp_path, "hello"))
    assert status == 2
    assert out == ""
    assert err == (
        f"guardrails-engine: {policy}:6: checks[0].max_chars (check 'l'): "
        "Input should be greater than or equal to 1\n"
    )


def test_check_with_a_missing_policy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    policy = str(tmp_path / "nope.yaml")
    status, out, err = _run(capsys, "check", "--policy", policy, _file(tmp_path, "hello"))
    assert status == 2
    assert out == ""
    assert err.startswith(f"guardrails-engine: {policy}: cannot read the policy: FileNotFoundError")


def test_check_with_a_missing_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, chat: str
) -> None:
    missing = tmp_path / "nope.txt"
    status, out, err = _run(capsys, "check", "--policy", chat, str(missing))
    assert status == 2
    assert out == ""
    assert err == (
        f"guardrails-engine: cannot read the input: [Errno 2] No such file or directory: "
        f"'{missing}'\n"
    )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_check_with_input_that_is_not_utf8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, chat: str, stream: bool
) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 jdoe@example.com".encode("latin-1"))
    args = ["check", "--policy", chat, str(path)] + (["--stream"] if stream else [])
    status, out, err = _run(capsys, *args)
    assert status == 2
    assert "jdoe" not in out
    assert err.startswith("guardrails-engine: cannot read the input: 'utf-8' codec can't decode")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["check"],  # --policy is required
        ["check", "--policy"],
        ["check", "--policy", "p.yaml", "a.txt", "b.txt"],
        ["lint"],
        ["check", "--policy", "p.yaml", "--colour"],
    ],
    ids=[
        "nothing",
        "unknown-command",
        "no-policy",
        "policy-without-value",
        "two-files",
        "lint-nothing",
        "unknown-option",
    ],
)
def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "usage: guardrails-engine" in err


# -- lint ------------------------------------------------------------------------------


def test_lint_good_policies(capsys: pytest.CaptureFixture[str], policies_dir: Path) -> None:
    paths = sorted(
        str(p) for p in policies_dir.glob("*.yaml") if not p.name.endswith(".cases.yaml")
    )
    status, out, err = _run(capsys, "lint", *paths)
    assert status == 0
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == len(paths)
    for path, line in zip(paths, lines, strict=True):
        policy = ge.load_policy(path)
        assert line == f"{path}: ok ({policy.name}, {len(policy.checks)} checks)"


def test_lint_reports_every_bad_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, chat: str
) -> None:
    dup = _file(
        tmp_path,
        "version: 1\nname: t\nchecks:\n  - id: a\n    type: length\n    max_chars: 3\n"
        "  - id: a\n    type: length\n    max_chars: 4\n",
        "dup.yaml",
    )
    empty = _file(tmp_path, "", "empty.yaml")
    status, out, err = _run(capsys, "lint", dup, chat, empty)
    assert status == 2
    assert out == f"{chat}: ok (support-chat, 3 checks)\n"
    assert err == (
        f"{dup}:7: checks[1].id (check 'a'): duplicate check id 'a' (first at checks[0])\n"
        f"{empty}:1: the policy is empty\n"
    )


def test_lint_policies_glob_skips_the_case_files(
    capsys: pytest.CaptureFixture[str], policies_dir: Path
) -> None:
    # `lint policies/*.yaml`: the case files beside the policies are recognised and skipped.
    paths = sorted(str(p) for p in policies_dir.glob("*.yaml"))
    status, out, err = _run(capsys, "lint", *paths)
    assert status == 0
    assert err == ""
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert set(lines) == set(paths)
    for path in paths:
        if path.endswith(".cases.yaml"):
            n = len(ge.load_cases(path))
            assert lines[path] == (
                f"skipped, an evaluation case file ({n} cases; "
                "run it with `guardrails-engine eval`)"
            )
        else:
            assert lines[path].startswith("ok (")


def test_lint_recognises_a_case_file_by_its_content(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cases = _file(tmp_path, "- input: hi\n  expect: {decision: pass}\n", "regressions.yaml")
    broken = _file(tmp_path, '{"input": "hi"}\n', "more.jsonl")
    status, out, err = _run(capsys, "lint", cases, broken)
    assert status == 2  # a case file that cannot be read is still a problem
    assert out == (
        f"{cases}: skipped, an evaluation case file (1 case; "
        "run it with `guardrails-engine eval`)\n"
    )
    assert err == f"{broken}:1: expect: Field required\n"


def test_lint_lists_every_problem_with_its_place(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = _file(
        tmp_path,
        "version: 1\nname: t\ncolour: red\nchecks:\n  - id: p\n    type: pii\n"
        "    entities: [EMAIL]\n    action: blokc\n",
        "bad.yaml",
    )
    status, out, err = _run(capsys, "lint", bad)
    assert status == 2
    assert out == ""
    assert err == (
        f"{bad}:3: colour: unknown key\n"
        f"{bad}:7: checks[0].entities[0] (check 'p'): unknown entity 'EMAIL'; "
        "did you mean 'EMAIL_ADDRESS'?\n"
        f"{bad}:8: checks[0].action (check 'p'): Input should be 'repair', 'block' or 'flag'; "
        "did you mean 'block'?\n"
    )


def test_lint_never_prints_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, chat: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = _file(
        tmp_path,
        "version: 1\nname: t\ndescription: " + "[" * 1000 + "]" * 1000 + "\n",
        "deep.yaml",
    )
    status, out, err = _run(capsys, "lint", deep, chat)
    assert status == 2
    assert out == f"{chat}: ok (support-chat, 3 checks)\n"
    assert err == f"{deep}:3: refused: nested more than 64 levels deep\n"

    # Even a failure nobody planned for is one line naming the file, and the next file is read.
    def explode(path: object) -> object:
        raise RuntimeError("a secret in the message")

    monkeypatch.setattr("guardrails_engine._cli.load_policy", explode)
    status, out, err = _run(capsys, "lint", chat)
    assert status == 2
    assert err == f"{chat}: cannot be checked: RuntimeError (please report it)\n"
    assert "Traceback" not in err and "secret" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out, _ = capsys.readouterr()
    assert out == f"guardrails-engine {ge.__version__}\n"
    from importlib.metadata import version

    assert ge.__version__ == version("guardrails-engine")


def test_entities_lists_what_a_pii_check_knows(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "entities")
    assert status == 0
    rows = dict(line.split("\t") for line in out.splitlines())
    assert rows["EMAIL_ADDRESS"] == "pattern"
    assert rows["PHONE_NUMBER"] == "pattern"
    assert rows["PERSON"] == "NER (spaCy)"
    assert list(rows) == sorted(rows)
    # Each pattern entity listed is accepted by a policy (NER ones would load spaCy).
    pattern_only = ", ".join(n for n, k in rows.items() if k == "pattern")
    policy = ge.Policy.from_yaml(
        f"version: 1\nname: t\nchecks:\n  - id: p\n    type: pii\n    entities: [{pattern_only}]\n"
    )
    assert len(policy.spec.checks[0].entities) == len(rows) - 4  # type: ignore[union-attr]


def test_check_json_includes_the_replacement(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, chat: str
) -> None:
    text = "Mail jdoe@example.com now"
    status, out, _ = _run(capsys, "check", "--json", "--policy", chat, _file(tmp_path, text))
    assert status == 0
    (finding,) = json.loads(out)["findings"]
    assert finding["replacement"] == "<EMAIL_ADDRESS>"
    assert finding["check_id"] == "pii"


# -- schema ------------------------------------------------------------------------------


def _policy_data(path: Path) -> object:
    return yaml.safe_load(path.read_text(encoding="utf-8"))  # the shipped policies are strict


def test_schema_validates_the_shipped_policies(
    capsys: pytest.CaptureFixture[str], policies_dir: Path
) -> None:
    status, out, err = _run(capsys, "schema")
    assert status == 0
    assert err == ""
    schema = json.loads(out)
    assert schema == ge.policy_json_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    assert validator_cls is jsonschema.Draft202012Validator
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    paths = sorted(p for p in policies_dir.glob("*.yaml") if not p.name.endswith(".cases.yaml"))
    assert paths
    for path in paths:
        errors = [e.message for e in validator.iter_errors(_policy_data(path))]
        assert errors == [], path


@pytest.mark.parametrize(
    "document",
    [
        {"version": 2, "name": "t", "checks": [{"id": "a", "type": "length", "max_chars": 3}]},
        {"version": 1, "name": "t", "checks": []},
        {"version": 1, "name": "t", "checks": [{"id": "a", "type": "length", "max_chars": 0}]},
        {"version": 1, "name": "t", "checks": [{"id": "a", "type": "toxicity"}]},
        {
            "version": 1,
            "name": "t",
            "colour": "red",
            "checks": [{"id": "a", "type": "length", "max_chars": 3}],
        },
        {
            "version": 1,
            "name": "t",
            "checks": [{"id": "p", "type": "pii", "entities": ["EMAIL_ADDRESS"], "min_score": 3}],
        },
    ],
    ids=["version", "no-checks", "max-chars", "type", "unknown-key", "min-score"],
)
def test_schema_rejects_bad_policies(document: dict[str, object]) -> None:
    schema = ge.policy_json_schema()
    assert not jsonschema.Draft202012Validator(schema).is_valid(document)
    with pytest.raises(ge.PolicyError):
        ge.Policy.from_yaml(json.dumps(document))  # JSON is YAML


# -- a real process, streaming from stdin -------------------------------------------------


def _read_until(fd: int, want: str, got: bytearray) -> str:
    """Read from ``fd`` until ``want`` has arrived; fail rather than hang."""
    while not got.decode("utf-8", errors="ignore").startswith(want):
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready, f"no output; so far {bytes(got)!r}"
        data = os.read(fd, 4096)
        assert data, f"output ended early: {bytes(got)!r}"
        got.extend(data)
    return got.decode("utf-8")


@pytest.mark.skipif(sys.platform == "win32", reason="select() on pipes")
def test_stream_from_stdin_in_a_subprocess(chat: str, tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "guardrails_engine", "check", "--policy", chat, "--stream"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            proc.stdin.write(b"Hello there, mail me at ")
            proc.stdin.flush()
            # The first part comes out while stdin is still open: read as it arrives
            # ("at " is held: it may begin an address written in words, "at [at] x [dot] com").
            got = bytearray()
            assert _read_until(proc.stdout.fileno(), "Hello there, mail me ", got) == (
                "Hello there, mail me "
            )
            proc.stdin.write("jdoe@example.com — merci.\n".encode())
            proc.stdin.close()
            rest = proc.stdout.read()
            stderr = proc.stderr.read()
            status = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert status == 0
    assert (bytes(got) + rest).decode(
        "utf-8"
    ) == "Hello there, mail me at <EMAIL_ADDRESS> — merci.\n"
    assert stderr.decode("utf-8") == "decision: repair; pii: EMAIL_ADDRESS at 24-40, masked\n"


def test_block_from_stdin_in_a_subprocess(chat: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "guardrails_engine", "check", "--policy", chat, "--stream", "-"],
        input=f"The key: {SECRET} and more".encode(),
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    out = proc.stdout.decode("utf-8")
    assert out.endswith(BLOCK_MESSAGE + "\n")
    assert "sk-" not in out
    assert proc.stderr.decode("utf-8") == "decision: block; secrets: api-key at 9-36, blocked\n"
