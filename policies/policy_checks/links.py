"""Links only to our own sites: a sentence check (``type: custom``).

A support answer may link to the company's sites; any other link is replaced by
``[link removed]`` (the policy's ``replacement``).  What a regular expression cannot
say alone is the rule on hosts: ``help.example.com`` is ours, ``example.com.evil.io``
and ``evil.io/?example.com`` are not.  The check reads each sentence whole (the
engine holds it until it ends, so a stream and ``validate`` agree) and reports the
span of each foreign link; its reason names the rule, never the link.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from guardrails_engine.checks import Found, unit_check

__all__ = ["LinkOptions", "foreign_links"]

# A link as a model writes one: a scheme, or a bare "www.", up to whitespace or what
# closes it in prose and markdown.
_LINK = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'`)\]]+")
# Punctuation that ends a sentence rather than a link.
_TRAILING = ".,;:!?"


class LinkOptions(BaseModel):
    """The policy's ``options:``: the domains whose links may stay (their subdomains too)."""

    model_config = ConfigDict(extra="forbid")
    domains: list[str] = Field(min_length=1)


def _host(link: str) -> str:
    url = link if "://" in link else "http://" + link
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # (a malformed port or bracket: not one of ours)
        return ""
    return host.rstrip(".").lower()


def _ours(host: str, domains: list[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in (d.lower() for d in domains))


@unit_check(unit="sentence", options=LinkOptions)
def foreign_links(sentence: str, options: LinkOptions) -> list[Found]:
    found = []
    for m in _LINK.finditer(sentence):
        link = m.group().rstrip(_TRAILING)
        if not _ours(_host(link), options.domains):
            end = m.start() + len(link)
            found.append(Found(m.start(), end, label="LINK", reason="a link to another site"))
    return found
