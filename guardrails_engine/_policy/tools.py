"""Which rule checks a tool call's arguments (``tools:`` and ``unknown_tools:``).

* A name listed in ``tools:`` exactly as written gets that tool's rule.
* A name that reads as a listed one once canonicalised (NFKC, look-alike letters of other
  scripts, invisible characters removed, case folded, surrounding whitespace stripped:
  ``Lookup_Order``, ``lookup_\\u043erder`` (a Cyrillic o), ``lookup_order\\u200b``,
  full-width letters) but is written differently is **blocked**.  The application
  dispatches calls on the exact name, so a model that means the listed tool writes it as
  listed; a look-alike is either refused by the dispatcher (nothing lost) or resolved to
  the listed tool by a lenient one, and then its arguments must not have skipped the rule.
  Applying the rule instead would also keep the arguments checked, but it would pass a
  call the application may route elsewhere, and hide an attempt that the operator should
  see: the block says why.
* Any other name (a tool without a rule) follows ``unknown_tools``: ``check`` (the
  default) sends the argument strings through the policy's ``pii`` and ``content``
  checks (JSON arguments: with a schema check that accepts any JSON and only flags, so
  the run reads them as JSON: replacements are JSON-escaped, a value in a number becomes a
  string, and empty arguments of a tool without parameters still pass); ``pass``
  opts out (the arguments go as they are); ``block`` refuses the call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._common.model import Action, Finding
from .._runtime.drive import Blocked
from .._scanning.canon import canonical
from .._spec.config import PolicySpec, SchemaSpec

if TYPE_CHECKING:
    from .policy import Policy, ToolPolicy

__all__ = ["canonical_name", "tool_rule"]

#: The id of the schema check of unlisted tools' JSON arguments.
_ARGUMENTS_ID = "arguments"


def canonical_name(name: str) -> str:
    """A tool name as compared: its canonical view, case folded, outer whitespace stripped."""
    return canonical(name).strip().casefold()


def _blocked(policy: Policy, check_id: str, reason: str) -> Blocked:
    finding = Finding(
        check_id=check_id,
        check_type="tools",
        action=Action.BLOCK,
        reason=f"tools: {reason}",
        start=0,
        end=0,
    )
    return Blocked(policy.block_message, (finding,))


def tool_rule(
    policy: Policy, name: str | None, *, json: bool = True
) -> ToolPolicy | Blocked | None:
    """The rule for the arguments of a call of tool ``name``: a :class:`ToolPolicy` to
    check them with, a :class:`Blocked` (the call is refused), or ``None`` (they go as they
    are).  ``json``: the arguments are JSON (a function call), not free text (a custom
    tool's input).  ``name`` None: a call whose name is not known."""
    tools = policy.tools
    if name is not None:
        exact = tools.get(name)
        if exact is not None:
            return exact
        canon = canonical_name(name)
        if any(canonical_name(listed) == canon for listed in tools):
            return _blocked(
                policy, "tools", "a call of a tool whose name is written unlike the listed one"
            )
    mode = policy.unknown_tools
    if mode == "block":
        return _blocked(
            policy, "unknown_tools", "a call of a tool that has no rule (unknown_tools: block)"
        )
    if mode == "pass":
        return None
    return unlisted_rule(policy, json=json)


def unlisted_rule(policy: Policy, *, json: bool) -> ToolPolicy | None:
    """The rule of tools without one under ``unknown_tools: check``: the policy's pii and
    content checks (and for JSON arguments a schema check of any JSON); ``None`` if the
    policy has neither."""
    from .policy import Policy, ToolPolicy

    key = "json" if json else "text"
    cached = policy.tool_cache.get(key)
    if cached is not None or key in policy.tool_cache:
        return cached
    spec = policy.spec
    kept = [
        (c, check)
        for c, check in zip(spec.checks, policy.checks, strict=True)
        if c.type in ("pii", "content")
    ]
    rule: ToolPolicy | None = None
    if kept:
        specs = [c.model_dump(by_alias=True, exclude_none=True) for c, _ in kept]
        checks = [check for _, check in kept]
        ids = {c.id for c, _ in kept}
        if json:
            schema_id = _ARGUMENTS_ID
            while schema_id in ids:
                schema_id += "_"
            # (action flag: arguments that are not JSON, or empty ones, are not this
            # check's business; it makes the run read the arguments as JSON.)
            specs.append({"id": schema_id, "type": "schema", "schema": {}, "action": "flag"})
        sub_spec = PolicySpec.model_validate(
            {
                **spec.model_dump(by_alias=True, exclude={"checks", "tools", "name"}),
                "name": f"{spec.name}: arguments of tools without a rule",
                "checks": specs,
            }
        )
        if json:
            last = sub_spec.checks[-1]
            assert isinstance(last, SchemaSpec)
            # (Here: the schema check imports jsonschema, which only this needs.)
            from ..checks._schema.check import SchemaCheck, load_schema

            checks.append(SchemaCheck(last, sub_spec.on_error, load_schema(last, None)))
        sub = Policy(sub_spec, tuple(checks), source=policy.source, digest=policy.content_hash)
        rule = ToolPolicy("*", sub, "complete")
    policy.tool_cache[key] = rule
    return rule
