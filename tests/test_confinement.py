"""Confinement: a policy reaches no network, reads files only inside its folder (regular
files, at most 1 MiB), never shows what a file holds, and imports only trusted modules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _child import run_limited

import guardrails_engine as ge

SECRET = "s3cr3t-c0ntent-xyz"


def _policy_file(folder: Path, check: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "p.yaml"
    path.write_text(f"version: 1\nname: t\nchecks:\n  - id: j\n    type: schema\n{check}")
    return path


def _load_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert SECRET not in message
    return message


def _outside(tmp_path: Path) -> Path:
    """A file outside the policy's folder with something secret in it."""
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"type": "object", "description": SECRET}))
    return secret


@pytest.mark.parametrize(
    "ref",
    [
        "http://127.0.0.1:9/schema.json",
        "https://example.com/schema.json#/$defs/a",
        "ftp://example.com/a.json",
        "urn:example:thing",
    ],
)
def test_a_remote_ref_in_an_inline_schema_is_refused_at_load(tmp_path: Path, ref: str) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": ref}}}
    path = _policy_file(tmp_path, f"    schema: {json.dumps(schema)}\n")
    message = _load_error(path)
    assert "checks[0].schema" in message
    assert ref.partition("#")[0] in message


def test_a_relative_ref_under_a_remote_id_is_remote(tmp_path: Path) -> None:
    schema = {"$id": "https://example.com/root.json", "properties": {"a": {"$ref": "b.json"}}}
    path = _policy_file(tmp_path, f"    schema: {json.dumps(schema)}\n")
    message = _load_error(path)
    assert "https://example.com/b.json" in message and "remote" in message


def test_a_remote_ref_in_a_schema_file_is_refused_at_load(tmp_path: Path) -> None:
    folder = tmp_path / "policy"
    path = _policy_file(folder, "    schema_file: s.json\n")
    (folder / "s.json").write_text('{"items": {"$ref": "https://example.com/x.json"}}')
    assert "https://example.com/x.json" in _load_error(path)


def test_a_ref_that_points_nowhere_is_a_load_error(tmp_path: Path) -> None:
    schema = {"properties": {"a": {"$ref": "#/$defs/missing"}}}
    path = _policy_file(tmp_path, f"    schema: {json.dumps(schema)}\n")
    assert "'#/$defs/missing' cannot be resolved" in _load_error(path)


def test_schema_file_outside_the_folder_is_refused_and_not_shown(tmp_path: Path) -> None:
    secret = _outside(tmp_path)
    folder = tmp_path / "policy"
    for where in ("../secret.json", str(secret), "../../../../../../etc/passwd"):
        path = _policy_file(folder, f"    schema_file: {json.dumps(where)}\n")
        message = _load_error(path)
        assert "outside the policy's folder" in message
        assert "root:" not in message


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    secret = _outside(tmp_path)
    folder = tmp_path / "policy"
    path = _policy_file(folder, "    schema_file: link.json\n")
    (folder / "link.json").symlink_to(secret)
    assert "outside the policy's folder" in _load_error(path)
    # A symlink that stays inside is fine.
    (folder / "real.json").write_text('{"type": "object"}')
    (folder / "link.json").unlink()
    (folder / "link.json").symlink_to(folder / "real.json")
    assert ge.load_policy(path).validate_sync("[]").decision is ge.Decision.BLOCK


def test_refs_outside_the_folder_are_refused_and_not_shown(tmp_path: Path) -> None:
    secret = _outside(tmp_path)
    folder = tmp_path / "policy"
    for ref in ("../secret.json", f"file://{secret}", str(secret)):
        path = _policy_file(folder, "    schema_file: s.json\n")
        (folder / "s.json").write_text(json.dumps({"items": {"$ref": ref}}))
        message = _load_error(path)
        assert "outside the policy's folder" in message and "$ref" in message


def test_refs_inside_the_folder_are_read_once_at_load(tmp_path: Path) -> None:
    folder = tmp_path / "policy"
    (folder / "defs").mkdir(parents=True)
    path = _policy_file(folder, "    schema_file: s.json\n")
    (folder / "s.json").write_text('{"type": "array", "items": {"$ref": "defs/item.json"}}')
    (folder / "defs" / "item.json").write_text('{"$ref": "sku.json"}')
    (folder / "defs" / "sku.json").write_text(
        '{"type": "object", "required": ["sku"], "properties": {"sku": {"type": "integer"}}}'
    )
    policy = ge.load_policy(path)
    for name in ("s.json", "defs/item.json", "defs/sku.json"):
        (folder / name).unlink()  # nothing is read when validating
    assert policy.validate_sync('[{"sku": 1}]').decision is ge.Decision.PASS
    blocked = policy.validate_sync('[{"no": 1}]')
    assert blocked.decision is ge.Decision.BLOCK
    assert blocked.reasons == ("j: $[0]: missing required property 'sku', blocked",)
    # A name from a file a $ref read may show in a reason, as one from the schema itself.
    named = policy.validate_sync('[{"sku": "x"}]')
    assert named.reasons == ('j: $[0].sku: expected "integer", got string, blocked',)


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    folder = tmp_path / "policy"
    path = _policy_file(folder, "    schema_file: fifo\n")
    os.mkfifo(folder / "fifo")  # opening it would wait for a writer forever
    (folder / "dir").mkdir()
    (folder / "zero").symlink_to("/dev/zero")
    code = f"""
    import json
    import guardrails_engine as ge
    from pathlib import Path
    folder = Path({str(folder)!r})
    out = {{}}
    for name in ("fifo", "dir", "zero"):
        (folder / "p.yaml").write_text(
            "version: 1\\nname: t\\nchecks:\\n  - id: j\\n    type: schema\\n"
            f"    schema_file: {{name}}\\n"
        )
        try:
            ge.load_policy(folder / "p.yaml")
        except ge.PolicyError as exc:
            out[name] = str(exc)
    print(json.dumps(out))
    """
    lines = json.loads(run_limited(code, seconds=60).splitlines()[-1])
    assert "not a regular file" in lines["fifo"]
    assert "not a regular file" in lines["dir"]
    assert "outside the policy's folder" in lines["zero"]  # /dev/zero, once resolved
    assert path.exists()


def test_a_schema_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "policy"
    path = _policy_file(folder, "    schema_file: big.json\n")
    big = {"type": "object", "description": "x" * (1 << 20)}
    (folder / "big.json").write_text(json.dumps(big))
    assert "larger than 1,048,576 bytes" in _load_error(path)
    big["description"] = "x" * 1000
    (folder / "big.json").write_text(json.dumps(big))
    assert ge.load_policy(path).validate_sync("{}").decision is ge.Decision.PASS


def test_a_file_that_is_not_a_schema_is_named_not_shown(tmp_path: Path) -> None:
    folder = tmp_path / "policy"
    path = _policy_file(folder, "    schema_file: notes.txt\n")
    (folder / "notes.txt").write_text(f"password is {SECRET}\n")  # YAML: one string
    message = _load_error(path)
    assert "not a valid JSON Schema" in message
    (folder / "notes.txt").write_bytes(b"\xff\xfe" + SECRET.encode())
    assert "not UTF-8 text" in _load_error(path)
    (folder / "notes.txt").write_text("a: &x [1]\nb: *x\n")
    assert "neither JSON nor YAML" in _load_error(path)  # no YAML aliases in schema files


MODEL = "import pydantic\nclass Answer(pydantic.BaseModel):\n    answer: str\n"


def test_a_model_is_imported_only_from_trusted_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "trusted_pkg_for_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(MODEL)
    (tmp_path / "evil_mod_for_test.py").write_text("raise SystemExit('imported!')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("GUARDRAILS_TRUSTED_MODULES", raising=False)
    path = _policy_file(tmp_path / "p", "    model: 'trusted_pkg_for_test.models:Answer'\n")
    message = _load_error(path)
    assert "'trusted_pkg_for_test.models' is not trusted" in message
    evil = _policy_file(tmp_path / "q", "    model: 'evil_mod_for_test:X'\n")
    assert "is not trusted" in _load_error(evil, trusted_modules=["trusted_pkg_for_test"])
    # A trusted package allows its submodules, not a module that only starts alike.
    policy = ge.load_policy(path, trusted_modules=["trusted_pkg_for_test"])
    assert policy.validate_sync('{"answer": 1}').decision is ge.Decision.BLOCK
    assert "is not trusted" in _load_error(path, trusted_modules=["trusted_pkg"])
    monkeypatch.setenv("GUARDRAILS_TRUSTED_MODULES", "other, trusted_pkg_for_test.models")
    assert ge.load_policy(path).validate_sync('{"answer": "a"}').decision is ge.Decision.PASS
