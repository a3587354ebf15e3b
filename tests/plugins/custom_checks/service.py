"""An async check that asks a moderation service about each sentence."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict

from guardrails_engine.checks import Found, unit_check


class ServiceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    timeout_s: float = 5.0


@unit_check(unit="sentence", options=ServiceOptions)
async def moderated(sentence: str, options: ServiceOptions) -> Found | None:
    async with httpx.AsyncClient(timeout=options.timeout_s) as client:
        reply = await client.post(options.url, json={"text": sentence})
        reply.raise_for_status()
        verdict = reply.json()
    if verdict.get("flagged"):
        return Found(label="FLAGGED", reason=f"flagged by moderation ({verdict['category']})")
    return None
