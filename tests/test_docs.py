"""Every ```python block of the docs (``docs/**/*.md``) and of README.md runs as written.

The convention (docs/contributing.md, "Runnable examples"):

- the blocks of one page run in order in one namespace, with the repository root as the
  working directory and first on ``sys.path``;
- a block with a top-level ``await`` (``async for``, ``async with``) runs as a coroutine on
  the page's event loop: one ``asyncio.Runner`` per page, so an SDK client made in one block
  can be used in the next;
- a block whose fence has a title, ```` ```python title="my_checks.py" ````, is that module:
  it runs as module ``my_checks`` (in ``sys.modules`` while the page runs, so a policy can
  name ``function: "my_checks:rivals"``); blocks with the same title add to one module;
- ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` and ``ANTHROPIC_BASE_URL``/``ANTHROPIC_API_KEY``
  point at fake servers on 127.0.0.1 that speak the real wire formats (tests/_fake_openai.py,
  tests/_fake_anthropic.py): the model there answers by repeating the last user message,
  streamed in pieces of 3 characters.

A block that is not runnable Python is fenced as ```` ```text ````, ```` ```sh ```` or
```` ```yaml ````.  The examples of "Writing a check" are also held to what they claim
(``test_the_check_examples_*``, formerly tests/test_readme_checks.py).
"""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import json
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  imported here, before any example: see below
import pytest
from _fake_anthropic import FakeAnthropic, Text, message_json, sse_events
from _fake_anthropic import Reply as AnthropicReply
from _fake_openai import (
    FakeOpenAI,
    chat_chunks,
    completion,
    message_item,
    response_events,
    response_obj,
    text_part,
)

import guardrails_engine as ge
from guardrails_engine.testing import check_chunkings

# hypothesis is imported above because importing it for the first time from an example's
# ``exec`` (guardrails_engine.testing imports it lazily) made CPython 3.11.7 fail in pytest's
# assertion rewriting with "SystemError: AST constructor recursion depth mismatch".
ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]

#: A fenced block: its indentation (a block in a list item), its info string, its body.
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)\n(?P<body>.*?)"
    r"^(?P=indent)(?P=fence)[ \t]*$",
    re.M | re.S,
)
_TITLE = re.compile(r"""title=["']([^"']+)["']""")
_PIECE = 3  # characters per streamed piece of the fake model's reply


@dataclass(frozen=True)
class Block:
    """One runnable block: where it is, its code, and the module it is (if titled)."""

    page: Path
    line: int
    code: str
    module: str | None


def blocks(page: Path, text: str | None = None) -> list[Block]:
    """The runnable Python blocks of a page, in order."""
    text = page.read_text(encoding="utf-8") if text is None else text
    found = []
    for m in _FENCE.finditer(text):
        info = m["info"].strip()
        if info.split(" ", 1)[0].lstrip(".").lower() not in ("python", "py"):
            continue
        indent = len(m["indent"])
        body = "".join(line[indent:] for line in m["body"].splitlines(keepends=True))
        title = _TITLE.search(info)
        module = None
        if title is not None:
            name = title[1]
            if not name.endswith(".py"):
                raise ValueError(f"{page}: a titled block must be a module (*.py), got {name!r}")
            module = name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        line = text.count("\n", 0, m.start("body")) + 1
        found.append(Block(page, line, body, module))
    return found


@dataclass
class Ran:
    """What a page left behind: its namespace and the modules its titled blocks made."""

    namespace: dict[str, Any]
    modules: dict[str, types.ModuleType] = field(default_factory=dict)


def _module(name: str, made: dict[str, types.ModuleType]) -> types.ModuleType:
    if name in made:
        return made[name]
    if name in sys.modules:
        raise RuntimeError(f"a docs block would replace the installed module {name!r}")
    module = types.ModuleType(name)
    made[name] = sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        package = _module(parent, made)
        package.__path__ = []
        setattr(package, child, module)
    return module


def _shown(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def run_page(page: Path) -> Ran:
    """Run the blocks of one page in order (see the module docstring)."""
    ran = Ran({"__name__": "__docs__"})
    try:
        with asyncio.Runner() as runner:
            for block in blocks(page):
                where = f"{_shown(page)}:{block.line}"
                if block.module is not None:
                    module = _module(block.module, ran.modules)
                    exec(compile(block.code, where, "exec"), module.__dict__)
                    continue
                code = compile(block.code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                if code.co_flags & inspect.CO_COROUTINE:
                    runner.run(eval(code, ran.namespace))
                else:
                    exec(code, ran.namespace)
    finally:
        for name in ran.modules:
            sys.modules.pop(name, None)
    return ran


# -- the fake model: it repeats the last user message ----------------------------------------
def _text(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts with text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _last_user(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role", "user") == "user":
            return _text(message.get("content"))
    return ""


def _pieces(text: str) -> list[str]:
    return [text[i : i + _PIECE] for i in range(0, len(text), _PIECE)] or [""]


async def _read(receive: Any) -> tuple[bytes, Any]:
    """The request body, and a ``receive`` that replays it to the fake's own app."""
    body = b""
    for _ in range(10_000):  # the body, in at most this many messages
        message = await receive()
        body += message.get("body", b"")
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return body, replay


class EchoOpenAI(FakeOpenAI):
    """The OpenAI fake, answering an unscripted request with its last user message."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, replay = await _read(receive)
        request = json.loads(body or b"{}")
        if not self.replies:
            stream = bool(request.get("stream"))
            if scope["path"].endswith("/responses"):
                given = request.get("input", "")
                text = given if isinstance(given, str) else _last_user(given)
                if stream:
                    self.add("responses", response_events([("text", _pieces(text))]))
                else:
                    item = message_item("msg_0", [text_part(text)], "completed")
                    self.add("json", response_obj([item]))
            else:
                text = _last_user(request.get("messages"))
                n = int(request.get("n") or 1)
                if stream:
                    deltas = [(i, {"content": p}) for p in _pieces(text) for i in range(n)]
                    usage = None  # sent when asked for, as the API does
                    if (request.get("stream_options") or {}).get("include_usage"):
                        out = len(_pieces(text)) * n
                        usage = {"prompt_tokens": 12, "completion_tokens": out}
                        usage["total_tokens"] = 12 + out
                    self.add("chat", chat_chunks(deltas, usage=usage))
                else:
                    self.add("json", completion([{"message": {"content": text}}] * n))
        await super().__call__(scope, replay, send)


class EchoAnthropic(FakeAnthropic):
    """The Anthropic fake, answering an unscripted request with its last user message."""

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, replay = await _read(receive)
        with self._lock:
            empty = not self._replies
        if empty:
            blocks = [Text(_pieces(_last_user(json.loads(body or b"{}").get("messages"))))]
            self.reply(AnthropicReply(events=sse_events(blocks), message=message_json(blocks)))
        await super()._app(scope, replay, send)


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[EchoOpenAI, EchoAnthropic]]:
    openai_fake = EchoOpenAI()
    openai_fake.start()
    try:
        anthropic_fake = EchoAnthropic()
        anthropic_fake.start()
        try:
            yield openai_fake, anthropic_fake
        finally:
            anthropic_fake.stop()
    finally:
        openai_fake.stop()


@pytest.fixture
def docs_env(fakes: tuple[EchoOpenAI, EchoAnthropic], monkeypatch: pytest.MonkeyPatch) -> None:
    """The working directory and the environment every page runs in."""
    openai_fake, anthropic_fake = fakes
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setenv("OPENAI_BASE_URL", openai_fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-fake")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic_fake.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-docs-fake")
    for name in ("GUARDRAILS_TRUSTED_MODULES", "GUARDRAILS_HASH_KEY"):
        monkeypatch.delenv(name, raising=False)


RUNNABLE = [p for p in PAGES if blocks(p)]


@pytest.mark.usefixtures("docs_env")
@pytest.mark.parametrize("page", RUNNABLE, ids=_shown)
def test_the_examples_of_a_page_run(page: Path) -> None:
    run_page(page)
    gc.collect()  # what the page left open (a client, a file) warns here, failing this test


# -- the collector -----------------------------------------------------------------------------
def test_blocks_finds_python_fences_titled_and_indented_and_nothing_else() -> None:
    text = (
        "# Page\n\n```python\na = 1\n```\n\n```sh\nrm -rf /\n```\n\n"
        "- an item:\n\n    ```python\n    b = a + 1\n    ```\n\n"
        '```python title="pkg/mod.py"\nc = 3\n```\n\n```text\nd = 4\n```\n\n'
        "~~~python\ne = 5\n~~~\n\n````python\nf = 6\n````\n\n"
        'Inline: ```` ```python title="x.py" ```` is not a block.\n'
    )
    found = blocks(ROOT / "x.md", text)
    assert [(b.line, b.code, b.module) for b in found] == [
        (4, "a = 1\n", None),
        (14, "b = a + 1\n", None),
        (18, "c = 3\n", "pkg.mod"),
        (26, "e = 5\n", None),
        (30, "f = 6\n", None),
    ]


def test_a_page_runs_in_one_namespace_with_await_on_one_loop(
    tmp_path: Path, docs_env: None
) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        '```python title="docs_tmp_mod.py"\nVALUE = 41\n```\n\n'
        "```python\nimport asyncio, docs_tmp_mod\nloop = None\n"
        "x = docs_tmp_mod.VALUE\n```\n\n"
        "```python\nloop = asyncio.get_running_loop()\nx += await asyncio.sleep(0, 1)\n```\n\n"
        "```python\nassert asyncio.get_running_loop() is loop\n```\n",
        encoding="utf-8",
    )
    with pytest.raises(RuntimeError, match="no running event loop"):
        # A block without await runs outside the loop (plain code, sync APIs work there).
        run_page(page)
    page.write_text(
        page.read_text(encoding="utf-8").replace(
            "```python\nassert asyncio.get_running_loop() is loop\n```\n",
            "```python\nawait asyncio.sleep(0)\nassert asyncio.get_running_loop() is loop\n```\n",
        ),
        encoding="utf-8",
    )
    ran = run_page(page)
    assert ran.namespace["x"] == 42
    assert ran.modules["docs_tmp_mod"].VALUE == 41
    assert "docs_tmp_mod" not in sys.modules


def test_an_example_that_fails_fails_the_test(tmp_path: Path, docs_env: None) -> None:
    page = tmp_path / "p.md"
    page.write_text("```python\nassert 1 + 1 == 3\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError):
        run_page(page)


def test_the_fake_models_repeat_the_last_user_message(docs_env: None) -> None:
    page = ROOT / "docs" / "adapters.md"
    assert any("AsyncOpenAI()" in b.code for b in blocks(page)), "the adapters page changed"
    import anthropic
    import openai

    said = "Write to jdoe@example.com."
    msgs: Any = [{"role": "user", "content": said}]
    with openai.OpenAI() as client:
        chat = client.chat.completions.create(model="m", messages=msgs, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in chat if c.choices) == said
        assert client.responses.create(model="m", input=said).output_text == said
    with anthropic.Anthropic() as claude:
        message = claude.messages.create(model="m", max_tokens=64, messages=msgs)
        assert message.content[0].text == said  # type: ignore[union-attr]


# -- "Writing a check" claims what its examples do (was tests/test_readme_checks.py) ----------
@pytest.fixture(scope="module")
def page_module(fakes: tuple[EchoOpenAI, EchoAnthropic]) -> types.ModuleType:
    """The module ``my_checks`` that the page's titled blocks make (run once)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        mp.syspath_prepend(str(ROOT))
        ran = run_page(ROOT / "docs" / "writing-checks.md")
    return ran.modules["my_checks"]


@pytest.fixture
def check_examples(
    page_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> types.ModuleType:
    """``my_checks``, importable during one test (a policy imports it by name)."""
    monkeypatch.setitem(sys.modules, "my_checks", page_module)
    return page_module


def _policy(checks: str) -> ge.Policy:
    return ge.Policy.from_yaml(
        f"version: 1\nname: docs\nblock_message: '[blocked]'\nchecks:\n{checks}",
        trusted_modules=["my_checks"],
    )


def test_the_check_examples_unit_checks(check_examples: types.ModuleType) -> None:
    policy = _policy(
        "  - {id: rivals, type: custom, function: 'my_checks:rivals', action: repair,"
        " options: {names: [Acme, Globex]}}\n"
        "  - {id: disclaimer, type: custom, function: 'my_checks:disclaimer'}\n"
    )
    assert policy.validate_sync("We beat Acme. Globex too.").text == "We beat <RIVAL>. <RIVAL> too."
    assert policy.validate_sync("Invest in Acme.").blocked
    assert policy.validate_sync("Invest. Not financial advice.").decision is ge.Decision.PASS
    check_chunkings(policy, ["We beat acme. Fine!", "Invest now."], max_examples=30)


def test_the_check_examples_async_unit_check(check_examples: types.ModuleType) -> None:
    assert check_examples.moderated.is_async
    assert check_examples.moderated.options is check_examples.ServiceOptions


def test_the_check_examples_incremental_check(check_examples: types.ModuleType) -> None:
    policy = _policy(
        "  - {id: terms, type: custom, function: 'my_checks:Terms', action: repair,"
        " replacement: '[x]', options: {terms: [blue falcon, zeta]}}\n"
    )
    assert policy.validate_sync("The Blue Falcon and zeta.").text == "The [x] and [x]."
    check_chunkings(policy, ["The Blue Falcon and zeta.", "blue falconzeta zet"], max_examples=60)
