"""Evaluate models, not only the policy: send each case's prompt to each model
through the policy, score the answers (exact, contains, regex, JSON Schema,
semantic similarity, an LLM judge) and compare the models side by side.

::

    import guardrails_engine as ge
    from guardrails_engine import modeleval as me

    policy = ge.load_policy("policies/support-chat.yaml")
    cases = me.load_model_cases("evals/support.cases.yaml")
    report = me.evaluate_models(
        policy, cases,
        [me.target(policy, "openai:gpt-4o-mini"), me.target(policy, "anthropic:claude-x")],
        judge=me.judge("openai:o3-mini"),
    )
    print(report.to_text())

This is ``guardrails-engine eval --policy P cases.yaml --model openai:gpt-4o-mini
--model anthropic:claude-x --judge openai:o3-mini``.  A model's answer streams
through a push run of the policy, so what is scored is what a user would have
seen (repaired, or the block message), with the guardrail's decision and the
call's figures: time to the first chunk, to the first released piece, duration,
tokens.  ``recorded(path)`` scores outputs recorded earlier, offline.

Needs the SDK of each provider used (extras ``[openai]``, ``[anthropic]``) and,
for ``similarity``, an embedder (extra ``[semantic]``, or your own callable).
"""

from __future__ import annotations

import importlib
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import anyio

from ._evals.model_cases import Criterion, Message, ModelCase, load_model_cases
from ._evals.model_run import Completion, ModelReport, Outcome, Target, load_baseline, run_models
from ._evals.scoring import Ask, Embed, Judge, Score
from ._observe.evaluation import export_outcomes
from ._policy.policy import Policy
from .checks._judge import ProviderAsk

__all__ = [
    "Completion",
    "Criterion",
    "Judge",
    "Message",
    "ModelCase",
    "ModelReport",
    "Outcome",
    "Score",
    "Target",
    "aevaluate_models",
    "anthropic_target",
    "append_cases",
    "cases_from_traces",
    "default_embedder",
    "evaluate_models",
    "judge",
    "load_baseline",
    "load_model_cases",
    "openai_target",
    "recorded",
    "target",
]

#: Anthropic requires max_tokens; this is used when a target does not set it.
ANTHROPIC_MAX_TOKENS = 1024


def _split(spec: str) -> tuple[str, str]:
    if not isinstance(spec, str):
        raise TypeError(f"a model is a str like 'openai:gpt-4o-mini', not {type(spec).__name__}")
    provider, sep, model = spec.partition(":")
    if not sep or not model or provider not in ("openai", "anthropic"):
        raise ValueError(f"a model is 'openai:<model>' or 'anthropic:<model>', not {spec!r}")
    return provider, model


class _Guarded:
    """Feeds a model's text into a push run and keeps the call's figures."""

    def __init__(self, policy: Policy) -> None:
        self.push = policy.push()
        self.started = time.perf_counter()
        self.first_chunk: float | None = None
        self.first_release: float | None = None
        self.released: list[str] = []

    def chunk(self) -> None:
        if self.first_chunk is None:
            self.first_chunk = time.perf_counter() - self.started

    def _out(self, text: str) -> None:
        if text:
            if self.first_release is None:
                self.first_release = time.perf_counter() - self.started
            self.released.append(text)

    async def feed(self, text: str) -> bool:
        """Feed a piece; False once the run is blocked (stop reading)."""
        self._out(await self.push.feed(text))
        return self.push.blocked is None

    async def done(self, **figures: Any) -> Completion:
        self._out(await self.push.finish())
        result = self.push.result
        assert result is not None
        text = "".join(self.released)
        if self.push.blocked is not None:
            text += self.push.blocked.message
        return Completion(
            text=text,
            decision=result.decision.value,
            reasons=result.reasons,
            first_chunk=self.first_chunk,
            first_release=self.first_release,
            duration=time.perf_counter() - self.started,
            **figures,
        )


class _SDKTarget:
    """A model behind a provider's SDK: the client (made on first use, or yours) and
    the request's parameters; the subclass streams one case through the policy."""

    provider = ""
    #: Parameters every request gets unless the target sets them.
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        policy: Policy,
        model: str,
        *,
        client: Any = None,
        base_url: str | None = None,
        api_key: str | None = None,
        name: str | None = None,
        **params: Any,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a Policy, not {type(policy).__name__}")
        self.policy = policy
        self.model = model
        self.name = name or f"{self.provider}:{model}"
        self.params = {**self.defaults, **params}
        self._client = client
        self._owned = client is None
        self._base_url = base_url
        self._api_key = api_key

    async def aclose(self) -> None:
        """Close the client this target made (a client you passed is yours)."""
        if self._owned and self._client is not None:
            client, self._client = self._client, None
            await client.close()

    def client(self) -> Any:
        if self._client is None:
            try:
                sdk = importlib.import_module(self.provider)
            except ImportError:
                raise ImportError(
                    f"needs the {self.provider} SDK: "
                    f"pip install 'guardrails-engine[{self.provider}]'"
                ) from None
            make = sdk.AsyncOpenAI if self.provider == "openai" else sdk.AsyncAnthropic
            self._client = make(base_url=self._base_url, api_key=self._api_key)
        return self._client


class openai_target(_SDKTarget):
    """A model behind the OpenAI Chat Completions API (or any compatible server:
    ``base_url``), streamed through the policy.  ``params`` go to the request
    (``temperature``, ``max_tokens``, ...)."""

    provider = "openai"

    async def __call__(self, case: ModelCase) -> Completion:
        g = _Guarded(self.policy)
        stream = await self.client().chat.completions.create(
            model=self.model,
            messages=[m.model_dump() for m in case.messages],
            stream=True,
            stream_options={"include_usage": True},
            **self.params,
        )
        usage: Any = None
        finish: str | None = None
        try:
            async for chunk in stream:
                g.chunk()
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices[:1]:
                    finish = choice.finish_reason or finish
                    text = choice.delta.content or choice.delta.refusal or ""
                    if text and not await g.feed(text):
                        break
                if g.push.blocked is not None:
                    break
        finally:
            await stream.close()
        return await g.done(
            input_tokens=getattr(usage, "prompt_tokens", None),
            output_tokens=getattr(usage, "completion_tokens", None),
            finish_reason=finish,
        )


class anthropic_target(_SDKTarget):
    """A model behind the Anthropic Messages API, streamed through the policy."""

    provider = "anthropic"
    defaults: ClassVar[Mapping[str, Any]] = {"max_tokens": ANTHROPIC_MAX_TOKENS}  # required

    async def __call__(self, case: ModelCase) -> Completion:
        g = _Guarded(self.policy)
        system = "\n\n".join(m.content for m in case.messages if m.role == "system")
        extra = {"system": system} if system else {}
        stream = await self.client().messages.create(
            model=self.model,
            messages=[m.model_dump() for m in case.messages if m.role != "system"],
            stream=True,
            **extra,
            **self.params,
        )
        tokens_in: int | None = None
        tokens_out: int | None = None
        stop: str | None = None
        try:
            async for event in stream:
                g.chunk()
                kind = getattr(event, "type", "")
                if kind == "message_start":
                    tokens_in = getattr(event.message.usage, "input_tokens", None)
                elif kind == "message_delta":
                    stop = event.delta.stop_reason or stop
                    tokens_out = getattr(event.usage, "output_tokens", tokens_out)
                elif kind == "content_block_delta" and event.delta.type == "text_delta":
                    if not await g.feed(event.delta.text):
                        break
        finally:
            await stream.close()
        return await g.done(input_tokens=tokens_in, output_tokens=tokens_out, finish_reason=stop)


class recorded:
    """Outputs recorded earlier (JSON lines: ``{"case": id, "model": name, "output":
    text}``, optionally ``first_chunk_s``, ``duration_s``, ``input_tokens``,
    ``output_tokens``), scored offline after going through the policy.  One target
    per model named in the file: ``recorded.targets(policy, path)``."""

    def __init__(self, policy: Policy, name: str, rows: dict[str, dict[str, Any]]) -> None:
        self.policy = policy
        self.name = name
        self._rows = rows

    @classmethod
    def targets(cls, policy: Policy, path: str | Path) -> list[recorded]:
        by_model: dict[str, dict[str, dict[str, Any]]] = {}
        p = Path(path)
        with p.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):
                    raise ValueError(f"{p}:{n}: not valid JSON") from None
                if not (
                    isinstance(row, dict)
                    and isinstance(row.get("case"), str)
                    and isinstance(row.get("output"), str)
                    and isinstance(row.get("model", ""), str)
                ):
                    raise ValueError(
                        f"{p}:{n}: a row needs 'case' and 'output' strings (and 'model' a string)"
                    )
                model = row.get("model") or "recorded"
                rows = by_model.setdefault(model, {})
                if row["case"] in rows:
                    # which of the two would be scored? neither silently
                    raise ValueError(f"{p}:{n}: a second output of case {row['case']!r} on {model}")
                rows[row["case"]] = row
        if not by_model:
            raise ValueError(f"{p}: no recorded outputs")
        return [cls(policy, m, rows) for m, rows in sorted(by_model.items())]

    async def __call__(self, case: ModelCase) -> Completion:
        row = self._rows.get(case.id)
        if row is None:
            return Completion(error="no recorded output for this case")
        result = await self.policy.validate(row["output"])

        def num(key: str) -> Any:
            v = row.get(key)
            if isinstance(v, bool) or not isinstance(v, int | float):
                return None
            return v if math.isfinite(v) and v >= 0 else None  # NaN is not JSON

        return Completion(
            text=result.text,
            decision=result.decision.value,
            reasons=result.reasons,
            first_chunk=num("first_chunk_s"),
            first_release=num("first_release_s"),
            duration=num("duration_s"),
            input_tokens=num("input_tokens"),
            output_tokens=num("output_tokens"),
        )


def target(
    policy: Policy,
    spec: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    **params: Any,
) -> Target:
    """A target from ``provider:model`` (``openai:gpt-4o-mini``, ``anthropic:claude-x``).
    Without ``base_url``/``api_key`` the SDKs read their environment variables
    (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``ANTHROPIC_BASE_URL``, ...)."""
    provider, model = _split(spec)
    cls = openai_target if provider == "openai" else anthropic_target
    return cls(policy, model, base_url=base_url, api_key=api_key, **params)


def judge(
    spec: str | Ask,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    cache: MutableMapping[str, dict[str, Any]] | None = None,
    name: str | None = None,
) -> Judge:
    """An LLM judge: ``openai:<model>`` (JSON mode), ``anthropic:<model>``, or your own
    async ``ask(system, prompt) -> (text, tokens)``.  See :class:`Judge` for the rules
    (temperature 0, a timeout and one retry, majority of three on a failing verdict,
    a cache)."""
    if callable(spec) and not isinstance(spec, str):
        label = name or str(getattr(spec, "__name__", "judge"))
        return Judge(spec, model=label, timeout=timeout, cache=cache)
    _split(spec)
    ask = ProviderAsk(spec, base_url=base_url, api_key=api_key)
    return Judge(ask, model=name or spec, timeout=timeout, cache=cache)


async def _aclose(obj: object) -> None:
    close = getattr(obj, "aclose", None)
    if close is not None:
        await close()


def default_embedder() -> Embed:
    """The offline embedder of the ``[semantic]`` extra, the one ``type: topic``
    uses (WordLlama, its weights inside its wheel; never downloads)."""
    from .checks._topic.embed import default_embedder as shared

    model = shared()

    def embed(texts: Sequence[str]) -> Any:
        return model(list(texts))

    return embed


async def aevaluate_models(
    policy: Policy,
    cases: Iterable[ModelCase],
    targets: Sequence[Target],
    *,
    judge: Judge | None = None,
    embed: Embed | None = None,
    concurrency: int = 4,
    call_timeout: float = 120.0,
    progress: Callable[[int, int], None] | None = None,
) -> ModelReport:
    """The async form of :func:`evaluate_models`."""
    items = list(cases)
    if embed is None and any(c.kind == "similarity" for case in items for c in case.criteria):
        embed = await anyio.to_thread.run_sync(default_embedder)
    try:
        report = await run_models(
            items,
            targets,
            judge=judge,
            embed=embed,
            concurrency=concurrency,
            call_timeout=call_timeout,
            progress=progress,
        )
        # (nothing is built when OpenTelemetry is not installed or not set up)
        export_outcomes(report.outcomes, {c.id: c.decision for c in items})
        return report
    finally:
        # clients made for this evaluation are closed in its event loop
        for t in targets:
            await _aclose(t)


def evaluate_models(
    policy: Policy,
    cases: Iterable[ModelCase],
    targets: Sequence[Target],
    *,
    judge: Judge | None = None,
    embed: Embed | None = None,
    concurrency: int = 4,
    call_timeout: float = 120.0,
    progress: Callable[[int, int], None] | None = None,
) -> ModelReport:
    """Send every case to every target through the policy, score, and report."""
    return anyio.run(
        lambda: aevaluate_models(
            policy,
            cases,
            targets,
            judge=judge,
            embed=embed,
            concurrency=concurrency,
            call_timeout=call_timeout,
            progress=progress,
        )
    )


# -- growing the suite from production ------------------------------------------------


def cases_from_traces(
    db: str | Path,
    *,
    blocked_only: bool = False,
    since: float | None = None,
    model: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Failed calls of a trace database (``TraceStore``) as model cases, and how many
    failures had no captured prompt (they need ``capture_content``).

    A failure is a call the policy blocked, or one that ended in an error
    (``blocked_only``: only blocks).  The case's input is the prompt as stored: the
    policy's pii and content checks already screened it when it was captured, so a
    value the policy removes never reaches the case file.  Each case expects the
    guardrail to pass next time: the model should answer without being blocked.
    """
    from ._observe.store import connect

    where = ["kind = 'call'", "(decision = 'block' OR ending = 'blocked'"]
    where[-1] += ")" if blocked_only else " OR ending = 'error' OR error IS NOT NULL)"
    args: list[Any] = []
    if since is not None:
        where.append("started_at >= ?")
        args.append(since)
    if model is not None:
        where.append("(request_model = ? OR response_model = ?)")
        args.extend([model, model])
    conn = connect(db, create=False)
    try:
        rows = conn.execute(
            "SELECT record_id, prompt, decision, ending, request_model FROM calls WHERE "
            + " AND ".join(where)
            + " ORDER BY started_at",
            args,
        ).fetchall()
    finally:
        conn.close()
    cases: list[dict[str, Any]] = []
    missing = 0
    for record_id, prompt, _decision, _ending, _model in rows:
        if not isinstance(prompt, str) or not prompt.strip():
            missing += 1
            continue
        cases.append(
            {"id": f"trace-{record_id[:16]}", "input": prompt, "expect": {"decision": "pass"}}
        )
    return cases, missing


def append_cases(path: str | Path, cases: Sequence[dict[str, Any]]) -> int:
    """Append model cases to a case file (a YAML list or JSON lines), skipping ids it
    already has; return how many were added.  The file is created if missing.

    :raises CaseError: if the file exists and is not a list of cases.
    """
    import yaml

    from ._evals.eval import CaseError

    p = Path(path)
    known: set[str] = set()
    if p.exists() and p.stat().st_size:
        known = {c.id for c in load_model_cases(p)}
        if p.suffix != ".jsonl":
            text = p.read_text(encoding="utf-8")
            first = next(
                (ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), ""
            )
            if not first.startswith("-"):
                raise CaseError(
                    "cases are appended to a file that is a YAML list of cases",
                    source=str(p),
                    line=None,
                    field=None,
                )
    new = [c for c in cases if c["id"] not in known]
    if not new:
        return 0
    with p.open("a", encoding="utf-8") as f:
        if p.stat().st_size and not p.read_bytes().endswith(b"\n"):
            f.write("\n")
        if p.suffix == ".jsonl":
            for c in new:
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
        else:
            f.write(yaml.safe_dump(new, sort_keys=False, allow_unicode=True))
    return len(new)
