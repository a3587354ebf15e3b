"""Model evaluation cases: a prompt, what a good answer looks like, and how to score it.

::

    - id: refund-policy
      input: "Can I get a refund after 40 days?"        # or messages: [{role, content}, ...]
      system: prompts/support.txt                        # a file beside the case file, or text
      expected_output: "No; refunds are accepted within 30 days of purchase."
      criteria: [similarity, {contains: "30 days"}, {judge: "Says no and gives the 30-day limit"}]
      threshold: 0.8                                     # similarity and judge pass at this
      expect: {decision: pass}                           # the guardrail's decision, optional

Criteria: ``exact`` / ``{exact: text}``, ``{contains: text}``, ``{regex: pattern}``,
``{schema: file-or-inline-schema}``, ``similarity`` / ``{similarity: {threshold: x}}``,
``{judge: rubric}`` / ``{judge: {rubric: ..., threshold: x}}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._common.files import FileRefused as SchemaLoadError
from .._common.files import read_confined_text
from .eval import read_cases

__all__ = ["Criterion", "Message", "ModelCase", "load_model_cases"]


def _read(path: Path, folder: Path) -> str | None:
    """A file beside the cases (confined to their folder, bounded), or None."""
    try:
        return read_confined_text(path, folder)
    except (OSError, SchemaLoadError):
        return None


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Spec):
    role: Literal["system", "user", "assistant"]
    content: str


class _Threshold(_Spec):
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class _JudgeSpec(_Threshold):
    rubric: str = Field(min_length=1)


class _Criterion(_Spec):
    exact: str | None = None
    contains: str | None = Field(default=None, min_length=1)
    regex: str | None = Field(default=None, min_length=1)
    schema_: dict[str, Any] | str | None = Field(default=None, alias="schema")
    similarity: _Threshold | None = None
    judge: _JudgeSpec | str | None = None

    @model_validator(mode="after")
    def _one(self) -> _Criterion:
        given = [k for k, v in self.model_dump(by_alias=True).items() if v is not None]
        if len(given) != 1:
            raise ValueError(
                "a criterion is one of exact, contains, regex, schema, similarity, judge"
                + (f", not {' and '.join(given)}" if given else "")
            )
        return self

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                regex.compile(v)
            except regex.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return v


class _ExpectSpec(_Spec):
    decision: Literal["pass", "repair", "block"]


class _ModelCaseSpec(_Spec):
    id: str | None = None
    input: str | None = None
    messages: list[Message] | None = Field(default=None, min_length=1)
    system: str | None = None
    expected_output: str | None = None
    criteria: list[_Criterion | Literal["similarity", "exact"]] = Field(default_factory=list)
    threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    expect: _ExpectSpec | None = None

    @model_validator(mode="after")
    def _prompt(self) -> _ModelCaseSpec:
        if (self.input is None) == (self.messages is None):
            raise ValueError("a case has either input or messages")
        needs_expected = [
            c if isinstance(c, str) else ("similarity" if c.similarity else "exact")
            for c in self.criteria
            if c in ("similarity", "exact")
            or (isinstance(c, _Criterion) and (c.similarity is not None))
        ]
        if needs_expected and self.expected_output is None:
            raise ValueError(f"{needs_expected[0]} needs expected_output")
        return self


@dataclass(frozen=True, slots=True)
class Criterion:
    """One way to score an output: ``kind`` and its ``value`` (the text, pattern,
    schema or rubric) and the ``threshold`` a score must reach (similarity, judge)."""

    kind: Literal["exact", "contains", "regex", "schema", "similarity", "judge"]
    value: Any = None
    threshold: float = 0.8

    @property
    def name(self) -> str:
        return self.kind


@dataclass(frozen=True, slots=True)
class ModelCase:
    """One prompt to send to every model, and how to score the answers."""

    id: str
    messages: tuple[Message, ...]
    expected_output: str | None
    criteria: tuple[Criterion, ...]
    decision: str | None = None  # the guardrail decision expected, if any

    @property
    def prompt(self) -> str:
        """The last user message (what a judge is shown as the question)."""
        users = [m.content for m in self.messages if m.role == "user"]
        return users[-1] if users else ""


def _criterion(c: _Criterion | str, spec: _ModelCaseSpec, folder: Path) -> Criterion:
    if c == "similarity":
        return Criterion("similarity", spec.expected_output, spec.threshold)
    if c == "exact":
        return Criterion("exact", spec.expected_output)
    assert isinstance(c, _Criterion)
    if c.exact is not None:
        return Criterion("exact", c.exact)
    if c.contains is not None:
        return Criterion("contains", c.contains)
    if c.regex is not None:
        return Criterion("regex", c.regex)
    if c.schema_ is not None:
        return Criterion("schema", _schema(c.schema_, folder))
    if c.similarity is not None:
        t = c.similarity.threshold
        return Criterion("similarity", spec.expected_output, spec.threshold if t is None else t)
    judge = c.judge
    assert judge is not None
    if isinstance(judge, str):
        return Criterion("judge", judge, spec.threshold)
    t = judge.threshold
    return Criterion("judge", judge.rubric, spec.threshold if t is None else t)


def _schema(value: dict[str, Any] | str, folder: Path) -> dict[str, Any]:
    import json

    from jsonschema.validators import validator_for

    if isinstance(value, str):
        text = _read(folder / value, folder)
        if text is None:
            raise ValueError(f"schema: cannot read {value!r} inside the case file's folder")
        try:
            value = json.loads(text)
        except ValueError:
            raise ValueError(f"schema: {value!r} is not JSON") from None
        if not isinstance(value, dict):
            raise ValueError("schema: a schema is a JSON object")
    try:
        validator_for(value).check_schema(value)
    except Exception as exc:  # jsonschema's SchemaError
        raise ValueError(f"schema: not a valid JSON Schema ({type(exc).__name__})") from None
    return value


def _system(value: str, folder: Path) -> str:
    """A ``system`` value that names a readable file beside the cases is that file's text."""
    looks_like_path = (
        "\n" not in value
        and len(value) < 512
        and Path(value).suffix
        in (
            ".txt",
            ".md",
            ".prompt",
        )
    )
    if not looks_like_path:
        return value
    if any(ch.isspace() for ch in value) and not (folder / value).exists():
        # "Reply in the style of notes.md" is a prompt, not a file that is missing
        return value
    text = _read(folder / value, folder)
    if text is None:
        raise ValueError(f"system: cannot read {value!r} inside the case file's folder")
    return text


def _builder(folder: Path) -> Any:
    def build(data: dict[str, Any], *, default_id: str) -> ModelCase:
        spec = _ModelCaseSpec.model_validate(data)
        try:
            messages: list[Message] = []
            if spec.system is not None:
                messages.append(Message(role="system", content=_system(spec.system, folder)))
            if spec.messages is not None:
                messages.extend(spec.messages)
            else:
                assert spec.input is not None
                messages.append(Message(role="user", content=spec.input))
            criteria = tuple(_criterion(c, spec, folder) for c in spec.criteria)
        except ValueError as exc:
            # the same shape as a pydantic error, so the line is found the same way
            from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

            field, _, message = str(exc).partition(": ")
            detail: InitErrorDetails = {
                "type": PydanticCustomError("value_error", message or field),
                "loc": (field,),
                "input": None,
            }
            raise ValidationError.from_exception_data("ModelCase", [detail]) from None
        return ModelCase(
            id=spec.id or default_id,
            messages=tuple(messages),
            expected_output=spec.expected_output,
            criteria=criteria,
            decision=spec.expect.decision if spec.expect else None,
        )

    return build


def load_model_cases(path: str | Path) -> list[ModelCase]:
    """Read model cases from a YAML list or JSON lines; files a case names
    (``system``, ``schema``) are read only inside the case file's folder.

    :raises CaseError: naming the file, the line and the field of a bad case.
    """
    folder = Path(path).resolve().parent
    return read_cases(path, _builder(folder))
