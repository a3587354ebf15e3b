"""Reading policy files: a YAML document, validated, with every problem named by
its line and field.

The parts: :mod:`.reading` (YAML within bounds), :mod:`.located` (where each
field is), :mod:`.problems` (pydantic's errors in the policy's words),
:mod:`.plugins` (check types installed packages register).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from .._common.errors import PolicyError
from .config import PolicySpec
from .located import Located
from .plugins import installed_types
from .problems import described, duplicate_ids
from .reading import MAX_ALIASES, MAX_DEPTH, YamlRefused, load_yaml, repeated_keys, yaml_error

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "DocumentRule",
    "Located",
    "YamlRefused",
    "load_yaml",
    "parse_policy",
]


#: A further rule on a policy document, given by a layer above (the pii check's
#: entity names): the problems it finds in the document.
DocumentRule = Callable[[dict[str, Any], Located], list[PolicyError]]


def parse_policy(
    text: str, source: str = "<string>", rules: Sequence[DocumentRule] = ()
) -> tuple[PolicySpec, Located]:
    """Parse and validate a policy document; ``rules`` add problems of their own,
    reported with the format's.

    :raises PolicyError: naming the source, the line and the field of every problem
        found (several problems: one error, one line each, see ``PolicyError.problems``).
    """
    try:
        root, data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise yaml_error(text, exc, source) from None
    located = Located(data, root, source)
    problems = [
        PolicyError(message, source=source, line=line, field=field)
        for message, line, field in repeated_keys(root)
    ]
    if data is None:
        problems.append(PolicyError("the policy is empty", source=source, line=1))
    elif not isinstance(data, dict):
        problems.append(
            PolicyError("a policy must be a mapping of keys to values", source=source, line=1)
        )
    if problems and not isinstance(data, dict):
        raise PolicyError.of(problems)
    assert isinstance(data, dict)
    if "checks" in data and data["checks"] is None:
        problems.append(located.error(["checks"], "`checks` is empty"))
        raise PolicyError.of(problems)
    spec: PolicySpec | None = None
    try:
        spec = PolicySpec.model_validate(installed_types(data))
    except ValidationError as exc:
        problems.extend(described(exc.errors(), located))
    except RecursionError:
        problems.append(PolicyError("nested too deeply to read", source=source))
    for rule in rules:
        problems.extend(rule(data, located))
    problems.extend(duplicate_ids(data, located))
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise PolicyError.of(problems)
    assert spec is not None
    return spec, located
