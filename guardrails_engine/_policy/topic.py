"""Compiling a ``type: topic`` check: its examples (inline and from a file inside
the policy's folder), its embedder, and its model, embedded once here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .._common.files import FileRefused, read_confined_text, why_unreadable
from .._common.model import Action
from .._common.trust import UntrustedModule, import_trusted
from .._spec.config import Example, PolicySpec, TopicName, TopicSpec
from .._spec.located import Located
from .._spec.reading import load_yaml, repeated_key
from ..checks._base import CheckConfig

if TYPE_CHECKING:
    from ..checks._topic import Embedder, TopicCheck

__all__ = ["compile_topic", "embedder_of"]


class _ExamplesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deny: dict[TopicName, list[Example]] = {}
    allow: list[Example] = []


def compile_topic(
    c: TopicSpec,
    spec: PolicySpec,
    located: Located,
    base_dir: Path,
    trusted: tuple[str, ...],
    where: list[Any],
) -> TopicCheck:
    # Imported here: numpy and the classifiers load only for a policy with a topic check.
    from ..checks._topic import ClassifierMissing, EmbedderError, TopicCheck, TopicModel

    deny = {t: list(examples) for t, examples in c.deny.items()}
    allow = list(c.allow)
    if c.examples_file is not None:
        more = _read_examples(c.examples_file, base_dir, located, [*where, "examples_file"])
        for topic, examples in more.deny.items():
            deny.setdefault(topic, []).extend(examples)
        allow.extend(more.allow)
    for topic, examples in deny.items():
        if not examples:
            raise located.error([*where, "deny"], f"topic {topic!r} has no examples")
    if not deny:
        raise located.error([*where, "examples_file"], "no denied topic")
    thresholds = _thresholds(c, deny, located, where)
    embedder = embedder_of(c, located, where, trusted)
    field = [*where, "embedder"] if c.embedder else [*where, "deny"]
    try:
        model = TopicModel(embedder, deny, allow)
    except EmbedderError as exc:
        raise located.error(field, f"the embedder broke its contract: {exc}") from None
    except ClassifierMissing as exc:
        raise located.error([*where, "type"], str(exc)) from None
    except Exception as exc:  # the embedder's own failure: its type only, never its message
        raise located.error(field, f"the embedder failed: {type(exc).__name__}") from None
    cap = spec.stream.max_holdback_chars
    config = CheckConfig(
        id=c.id,
        type="topic",
        action=Action(c.action),
        on_error=c.on_error or spec.on_error,
        options=None,
        replacement=None,
        max_holdback_chars=cap,
    )
    return TopicCheck(config, model, thresholds, unit=c.unit, max_unit_chars=cap)


def _read_examples(name: str, folder: Path, located: Located, field: list[Any]) -> _ExamplesFile:
    path = folder / name
    try:
        text = read_confined_text(path, folder.resolve())
    except (FileRefused, OSError) as exc:
        raise located.error(field, f"cannot read the examples: {why_unreadable(exc)}") from None
    try:
        root, data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = "" if mark is None else f" (line {int(mark.line) + 1})"
        raise located.error(field, f"{path} is not valid YAML{line}") from None
    repeated = repeated_key(root)
    if repeated is not None:
        raise located.error(field, f"{path}:{repeated[1]}: a key appears twice")
    try:
        return _ExamplesFile.model_validate(data if data is not None else {})
    except ValidationError as exc:
        # Which section and what kind of problem, never a value or a topic's name
        # (the file's content).
        err = exc.errors()[0]
        where = str(err["loc"][0]) if err["loc"] else "(root)"
        raise located.error(field, f"{path}: {where}: {err['type']}") from None


def _thresholds(
    c: TopicSpec, deny: dict[str, list[str]], located: Located, where: list[Any]
) -> dict[str, float]:
    if not isinstance(c.threshold, dict):
        return dict.fromkeys(deny, c.threshold)
    for key in c.threshold:
        if key != "default" and key not in deny:
            raise located.error(
                [*where, "threshold", key], f"{key!r} is not a denied topic of this check"
            )
    default = c.threshold.get("default", TopicSpec.model_fields["threshold"].default)
    return {t: c.threshold.get(t, default) for t in deny}


def embedder_of(
    c: TopicSpec,
    located: Located,
    where: list[Any],
    trusted: tuple[str, ...],
    missing: list[Any] | None = None,
) -> Embedder:
    """The embedder a spec names (default WordLlama); a problem is a policy error at
    ``where`` (the default's missing extra: at ``missing``, else at its ``type``)."""
    from ..checks._topic import EmbedderMissing, default_embedder

    if c.embedder is None:
        try:
            return default_embedder()
        except EmbedderMissing as exc:
            raise located.error(missing or [*where, "type"], str(exc)) from None
        except (OSError, ValueError) as exc:
            what = f"cannot load the default embedder: {type(exc).__name__}"
            raise located.error(missing or [*where, "type"], what) from None
    field = [*where, "embedder"]
    try:
        obj = import_trusted(c.embedder, trusted)
    except UntrustedModule as exc:
        raise located.error(field, str(exc)) from None
    except (ImportError, AttributeError) as exc:
        raise located.error(field, f"cannot import {c.embedder!r}: {exc}") from None
    except Exception as exc:
        raise located.error(field, f"cannot import {c.embedder!r}: {type(exc).__name__}") from None
    if not callable(obj):
        raise located.error(
            field, f"an embedder is a callable from texts to a matrix, got {type(obj).__name__}"
        )
    return obj  # type: ignore[no-any-return]
