"""Policies: loaded once, compiled into checks, shared by every run."""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import anyio.to_thread

from .._common.errors import PolicyError, check_source, check_text
from .._common.files import FileRefused, read_confined_text
from .._common.model import Result
from .._common.threads import thread_limiter
from .._common.trust import TRUST_ENV
from .._runtime.jobs import settle, settle_sync
from .._runtime.run import Run
from .._runtime.trace import TraceCallback, record
from .._scanning.scan import PatternSet
from .._spec.config import PolicySpec, ToolSpec
from .._spec.loader import Located, parse_policy
from ..checks._base import PatternCheck
from ..checks._pii.entities import unknown_entities
from ..checks._unit import Compiled
from .registry import Site, build_check
from .tools import tool_rule

if TYPE_CHECKING:
    from .._runtime.drive import Blocked, Stream, SyncStream
    from .._runtime.fallback import Breaker, FallbackSource
    from .._runtime.fallback_drive import FallbackStream, SyncFallbackStream
    from .._runtime.push import Push, SyncPush
    from ..checks._base import Check
    from .drift import DriftMonitor

__all__ = ["Policy", "ToolPolicy", "load_policy"]

#: Texts at least this long are validated in a worker thread by the async API.
#: Hostile text costs up to about 0.2 ms a character (spaced digits under
#: phonenumbers), so a shorter text holds the loop for at most about 25 ms;
#: at 1,024, 200 concurrent validates of 100 to 1,000 hostile characters
#: stalled it for 8 s (``benchmarks/loop_lag.py --hostile short``).  The hop
#: to a thread costs about 0.2 ms.
THREAD_THRESHOLD = 128


class Policy:
    """A compiled policy: immutable, safe to share between concurrent runs.

    Build one with :func:`load_policy` or :meth:`Policy.from_yaml`.
    """

    __slots__ = (
        "_checks",
        "_defers",
        "_drift",
        "_hash",
        "_on_trace",
        "_origin",
        "_scan",
        "_source",
        "_spec",
        "_threaded",
        "_tool_cache",
        "_tools",
    )

    def __init__(
        self,
        spec: PolicySpec,
        checks: tuple[Check, ...],
        *,
        source: str,
        digest: str,
        on_trace: TraceCallback | None = None,
        origin: _Origin | None = None,
        tools: dict[str, ToolPolicy] | None = None,
        drift: DriftMonitor | None = None,
    ) -> None:
        self._tools = tools or {}
        self._drift = drift
        self._tool_cache: dict[str, ToolPolicy | None] = {}  # (tools.py: unlisted tools)
        self._spec = spec
        self._origin = origin
        self._checks = checks
        self._defers = any(isinstance(c, Compiled) and c.deferred for c in checks)
        # An async validate runs in a worker thread when a check blocks or is costly.
        self._threaded = drift is not None or any(c.blocking or c.costly for c in checks)
        self._scan = _shared_patterns(checks)
        self._source = source
        self._hash = digest
        self._on_trace = on_trace

    # -- construction ----------------------------------------------------------
    @classmethod
    def from_yaml(
        cls,
        text: str,
        *,
        source: str = "<string>",
        base_dir: str | Path | None = None,
        on_trace: TraceCallback | None = None,
        trusted_modules: Iterable[str] = (),
    ) -> Policy:
        """Compile a policy from YAML text.

        ``source`` names the text in error messages; ``base_dir`` is the policy's
        folder: ``schema_file`` and the files ``$ref``s name are read only inside
        it (default: the current directory); ``on_trace`` receives the
        :class:`Trace` of every run of the policy and the ``CallTrace`` of every
        guarded model call (whose runs it holds); ``trusted_modules`` are the
        modules (and their submodules) a ``model:`` may import, with those listed
        in the environment variable ``GUARDRAILS_TRUSTED_MODULES`` (comma-separated).

        :raises PolicyError: naming the source, line and field of the problem.
        """
        folder = Path(base_dir) if base_dir is not None else Path.cwd()
        origin = _Origin(text, source, str(folder.absolute()), _trusted(trusted_modules))
        return cls.from_origin(origin, on_trace)

    @classmethod
    def from_origin(cls, origin: _Origin, on_trace: TraceCallback | None = None) -> Policy:
        spec, checks, digest, tools, drift = _build(origin)
        return cls(
            spec,
            checks,
            source=origin.source,
            digest=digest,
            on_trace=on_trace,
            origin=origin,
            tools=tools,
            drift=drift,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """A policy pickles as its source (text, folder, trusted modules) and is
        compiled again when unpickled, once per process for the same source."""
        if self._origin is None:
            raise TypeError("only a policy made by load_policy or Policy.from_yaml pickles")
        return (_unpickle, (self._origin, self._on_trace))

    # -- attributes --------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def description(self) -> str:
        return self._spec.description

    @property
    def spec(self) -> PolicySpec:
        """The validated policy document (frozen)."""
        return self._spec

    @property
    def source(self) -> str:
        return self._source

    @property
    def content_hash(self) -> str:
        """A short hash of the policy text, to tell versions apart in logs."""
        return self._hash

    @property
    def checks(self) -> tuple[Check, ...]:
        return self._checks

    @property
    def shared_patterns(self) -> tuple[PatternSet, tuple[int, ...], tuple[int, ...]] | None:
        """Patterns that the checks scanning plain patterns share in a run: the
        set, the indices of those checks, and how many patterns each has."""
        return self._scan

    @property
    def on_trace(self) -> TraceCallback | None:
        """The callback that receives every run's trace, if any."""
        return self._on_trace

    @property
    def tools(self) -> Mapping[str, ToolPolicy]:
        """The policies of tool-call arguments, by tool name (``tools:``)."""
        return self._tools

    @property
    def unknown_tools(self) -> str:
        """What happens to a call of a tool not in :attr:`tools`: ``check``, ``pass`` or
        ``block``."""
        return self._spec.unknown_tools

    def tool_rule(self, name: str | None, *, json: bool = True) -> ToolPolicy | Blocked | None:
        """The rule for the arguments of a call of tool ``name``: a :class:`ToolPolicy`
        to check them with, a :class:`Blocked` (refuse the call), or ``None`` (they go as
        they are).  Names are matched after canonicalisation; ``json``: the arguments are
        JSON, not a custom tool's free text.  See ``_policy/tools.py``."""
        return tool_rule(self, name, json=json)

    @property
    def tool_cache(self) -> dict[str, ToolPolicy | None]:
        """(Internal) the rules of unlisted tools, compiled on first use."""
        return self._tool_cache

    @property
    def block_message(self) -> str:
        return self._spec.block_message

    @property
    def blocking(self) -> bool:
        """Whether runs of this policy do blocking work (NER), done in worker threads."""
        return any(c.blocking for c in self._checks)

    @property
    def drift(self) -> DriftMonitor | None:
        """(Internal) the policy's drift reference, embedded; each run is measured by it."""
        return self._drift

    @property
    def max_holdback_chars(self) -> int:
        return self._spec.stream.max_holdback_chars

    def __repr__(self) -> str:
        return f"<Policy {self.name!r} from {self._source} ({len(self._checks)} checks)>"

    # -- checking ----------------------------------------------------------------
    def validate_sync(
        self, text: str, *, trace_id: str | None = None, on_trace: TraceCallback | None = None
    ) -> Result:
        """Check a whole text.  A block is a result, not an exception.

        ``trace_id`` names the run in its trace; ``on_trace`` receives the trace.
        """
        check_text(text, "validate_sync")
        run = Run(self)
        try:
            run.check(text)
            if run.deferred:
                settle_sync(run)  # async and blocking checks of your own
        except BaseException as exc:
            record(self, run, kind="validate", trace_id=trace_id, callback=on_trace, error=exc)
            raise
        record(self, run, kind="validate", trace_id=trace_id, callback=on_trace)
        return run.result()

    async def validate(
        self, text: str, *, trace_id: str | None = None, on_trace: TraceCallback | None = None
    ) -> Result:
        """Check a whole text without blocking the event loop.

        Long texts, and any text when the policy uses NER or a topic check, are
        checked in a worker thread (at most four at a time per event loop).
        """
        check_text(text, "validate")
        if self._defers:
            return await self._validate_deferring(text, trace_id, on_trace)
        if len(text) < THREAD_THRESHOLD and not self._threaded:
            return self.validate_sync(text, trace_id=trace_id, on_trace=on_trace)
        check = functools.partial(self.validate_sync, trace_id=trace_id, on_trace=on_trace)
        return await anyio.to_thread.run_sync(check, text, limiter=thread_limiter())

    async def _validate_deferring(
        self, text: str, trace_id: str | None, on_trace: TraceCallback | None
    ) -> Result:
        """validate with checks that defer calls: those are awaited on this event loop."""
        run = Run(self)
        try:
            if len(text) < THREAD_THRESHOLD and not self._threaded:
                run.check(text)
            else:
                await anyio.to_thread.run_sync(run.check, text, limiter=thread_limiter())
            if run.deferred:
                await settle(run)
        except BaseException as exc:
            record(self, run, kind="validate", trace_id=trace_id, callback=on_trace, error=exc)
            raise
        record(self, run, kind="validate", trace_id=trace_id, callback=on_trace)
        return run.result()

    def stream(
        self,
        source: AsyncIterable[str] | Iterable[str],
        *,
        trace_id: str | None = None,
        on_trace: TraceCallback | None = None,
        blocking_source: bool | None = None,
        fallback: FallbackSource | Sequence[FallbackSource] | None = None,
        breaker: Breaker | None = None,
    ) -> Stream | FallbackStream:
        """Wrap a token stream: iterate the result to get released text.

        ``source`` may be an async or a sync iterable of ``str``.  A sync source
        that may block is pulled in a worker thread, so that cancellation and
        deadlines hold while it waits: by default any sync iterable but a
        sequence (a list, a tuple) or an iterator over one;
        ``blocking_source=False`` promises that it never blocks (pulled inline,
        cheaper per chunk), ``True`` that it may.

        ``fallback``: a callable (or several, tried in order) that takes a
        :class:`Fallback` and returns the next source, used while nothing has been
        released (see docs/fallback.md); ``breaker``: a :class:`Breaker` shared across
        calls.  With either, or a policy with ``fallback:`` or
        ``stream.first_chunk_timeout_ms``, the stream is a :class:`FallbackStream`.
        """
        check_source(source, "stream")
        from .._runtime import fallback as fb
        from .._runtime.drive import Stream

        if fb.uses_fallback(self, fallback, breaker):
            from .._runtime.fallback_drive import FallbackStream

            return FallbackStream(
                self,
                source,
                fb.fallbacks_of(fallback, "stream"),
                breaker=fb.breaker_of(breaker, "stream"),
                trace_id=trace_id,
                on_trace=on_trace,
                blocking_source=blocking_source,
            )
        return Stream(
            self, source, trace_id=trace_id, on_trace=on_trace, blocking_source=blocking_source
        )

    def push(self, *, trace_id: str | None = None, on_trace: TraceCallback | None = None) -> Push:
        """One run that you feed yourself: ``await p.feed(text)`` returns the text that
        became safe, ``await p.finish()`` the rest; ``p.blocked``, ``p.result``.  For
        adapters that read a stream of their own (an SDK's events)."""
        from .._runtime.push import Push

        return Push(self, trace_id, on_trace)

    def push_sync(
        self, *, trace_id: str | None = None, on_trace: TraceCallback | None = None
    ) -> SyncPush:
        """The sync twin of :meth:`push`."""
        from .._runtime.push import SyncPush

        return SyncPush(self, trace_id, on_trace)

    def stream_sync(
        self,
        source: Iterable[str],
        *,
        trace_id: str | None = None,
        on_trace: TraceCallback | None = None,
        fallback: FallbackSource | Sequence[FallbackSource] | None = None,
        breaker: Breaker | None = None,
    ) -> SyncStream | SyncFallbackStream:
        """The synchronous twin of :meth:`stream` (a fallback returns a sync source)."""
        check_source(source, "stream_sync")
        from .._runtime import fallback as fb
        from .._runtime.drive import SyncStream

        if fb.uses_fallback(self, fallback, breaker):
            from .._runtime.fallback_drive import SyncFallbackStream

            return SyncFallbackStream(
                self,
                source,
                fb.fallbacks_of(fallback, "stream_sync"),
                breaker=fb.breaker_of(breaker, "stream_sync"),
                trace_id=trace_id,
                on_trace=on_trace,
            )
        return SyncStream(self, source, trace_id=trace_id, on_trace=on_trace)


def load_policy(
    path: str | Path,
    *,
    on_trace: TraceCallback | None = None,
    trusted_modules: Iterable[str] = (),
) -> Policy:
    """Load and compile a policy file.

    ``on_trace`` receives the :class:`Trace` of every run of the policy and the
    ``CallTrace`` of every guarded model call (a ``TraceStore`` keeps both);
    ``trusted_modules``: see :meth:`Policy.from_yaml`.  Schema files are read
    only inside the policy's folder.

    :raises PolicyError: if the file cannot be read or is not a valid policy.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(
            f"cannot read the policy: {exc.__class__.__name__}: {exc}", source=str(p)
        ) from exc
    return Policy.from_yaml(
        text, source=str(p), base_dir=p.parent, on_trace=on_trace, trusted_modules=trusted_modules
    )


class _Origin(NamedTuple):
    """What a policy is compiled from: all a pickle carries."""

    text: str
    source: str
    base_dir: str
    trusted_modules: tuple[str, ...]


def _trusted(given: Iterable[str]) -> tuple[str, ...]:
    """The modules ``model:`` may import: those given and those of the environment."""
    if isinstance(given, str):
        given = [given]
    env = os.environ.get(TRUST_ENV, "")
    names = [*given, *(n.strip() for n in env.split(","))]
    return tuple(sorted({n for n in names if n}))


class ToolPolicy(NamedTuple):
    """How the arguments of one tool's calls are checked (see ``tools:``)."""

    name: str
    #: The policy the arguments' JSON text goes through.
    policy: Policy
    #: ``complete`` (release once complete and checked) or ``incremental``.
    release: str


_Built = tuple[PolicySpec, tuple["Check", ...], str, dict[str, ToolPolicy], "DriftMonitor | None"]


def _build(origin: _Origin) -> _Built:
    spec, located = parse_policy(origin.text, origin.source, rules=(unknown_entities,))
    folder = Path(origin.base_dir)
    checks = tuple(_compile(spec, located, folder, origin.trusted_modules))
    digest = hashlib.sha256(origin.text.encode("utf-8")).hexdigest()[:16]
    # One policy per file its tools name (N tools naming one file compiled it N times, each
    # with its own tools: N**3 compilations for three levels of N).
    files: dict[str, Policy] = {}
    tools = {
        name: _compile_tool(name, tool, spec, located, origin, digest, files)
        for name, tool in spec.tools.items()
    }
    drift = None
    if spec.drift is not None:
        from .drift import compile_drift  # (here: numpy loads only for a policy with drift)

        drift = compile_drift(spec.drift, located, folder, origin.trusted_modules)
    return spec, checks, digest, tools, drift


#: How deep ``tools: {x: {policy: file}}`` may nest (a file naming itself).
_TOOL_DEPTH = 4


def _compile_tool(
    name: str,
    tool: ToolSpec,
    spec: PolicySpec,
    located: Located,
    origin: _Origin,
    digest: str,
    files: dict[str, Policy],
) -> ToolPolicy:
    where: list[Any] = ["tools", name]
    folder = Path(origin.base_dir)
    if tool.policy is not None and tool.policy in files:
        return ToolPolicy(name, files[tool.policy], tool.release)
    if tool.policy is not None:
        depth = origin.source.count(" > ")
        if depth >= _TOOL_DEPTH:
            raise located.error([*where, "policy"], "tool policies nest too deeply")
        path = folder / tool.policy
        try:
            text = read_confined_text(path, folder.resolve())
        except FileRefused as exc:
            raise located.error([*where, "policy"], f"cannot read the policy: {exc}") from None
        except OSError as exc:
            what = f"[Errno {exc.errno}] {exc.strerror}: {str(exc.filename)!r}"
            raise located.error([*where, "policy"], f"cannot read the policy: {what}") from None
        sub = _Origin(text, f"{origin.source} > {path}", origin.base_dir, origin.trusted_modules)
        policy = files[tool.policy] = Policy.from_origin(sub)
        return ToolPolicy(name, policy, tool.release)
    assert tool.checks is not None
    sub_spec = PolicySpec.model_validate(
        {
            **spec.model_dump(by_alias=True, exclude={"checks", "tools", "name"}),
            "name": f"{spec.name}: tool {name}",
            "checks": [c.model_dump(by_alias=True, exclude_none=True) for c in tool.checks],
        }
    )
    checks = tuple(_compile(sub_spec, located, folder, origin.trusted_modules, [*where, "checks"]))
    policy = Policy(sub_spec, checks, source=origin.source, digest=digest)
    return ToolPolicy(name, policy, tool.release)


#: Policies compiled by unpickling, by source: a process compiles each once.
_COMPILED: OrderedDict[_Origin, _Built] = OrderedDict()
_COMPILED_MAX = 64
_COMPILING = threading.Lock()


def _unpickle(origin: _Origin, on_trace: TraceCallback | None) -> Policy:
    with _COMPILING:
        built = _COMPILED.get(origin)
        if built is None:
            built = _COMPILED[origin] = _build(origin)
            while len(_COMPILED) > _COMPILED_MAX:
                _COMPILED.popitem(last=False)
        else:
            _COMPILED.move_to_end(origin)
    spec, checks, digest, tools, drift = built
    return Policy(
        spec,
        checks,
        source=origin.source,
        digest=digest,
        on_trace=on_trace,
        origin=origin,
        tools=tools,
        drift=drift,
    )


def _shared_patterns(
    checks: Sequence[Check],
) -> tuple[PatternSet, tuple[int, ...], tuple[int, ...]] | None:
    """One pattern set over the checks that only scan patterns (pii without NER,
    content), if there are two or more: a run then scans once per chunk."""
    sharing = [
        (i, c)
        for i, c in enumerate(checks)
        if isinstance(c, PatternCheck) and not c.blocking and c.patterns.patterns
    ]
    if len(sharing) < 2:
        return None
    parts = [c.patterns.patterns for _, c in sharing]
    merged = PatternSet([p for part in parts for p in part])
    return merged, tuple(i for i, _ in sharing), tuple(len(part) for part in parts)


def _compile(
    spec: PolicySpec,
    located: Located,
    base_dir: Path,
    trusted: tuple[str, ...],
    prefix: Sequence[Any] = ("checks",),
) -> list[Check]:
    checks: list[Check] = []
    problems: list[PolicyError] = []
    for i, c in enumerate(spec.checks):
        where: list[Any] = [*prefix, i]
        try:
            checks.append(build_check(c, Site(spec, located, base_dir, trusted, where)))
        except PolicyError as exc:
            problems.extend(exc.problems)  # every check's problems, reported together
    if problems:
        raise PolicyError.of(problems)
    return checks
