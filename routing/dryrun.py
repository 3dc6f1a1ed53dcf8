"""Dry-run as a service for the rules editor's page and ``POST /api/routing/dry-run``: a described
contact ("a platinum senior calling in Cantonese about a lost card at 18:05") or a real waiting
interaction, tried against the live rule set or a draft version, explained by the running engine
(``routing.engine.explain``) and told with agents' names."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from routing import actions
from routing.schemas import DescribedContact
from switchboard import commands
from switchboard.errors import Invalid
from workforce.models import Agent


def contact_context(contact: DescribedContact) -> dict[str, Any]:
    """The rule context (``routing.context.rule_context``'s keys) of a described contact."""
    segments = [s for s, on in (("senior", contact.senior), ("vulnerable", contact.vulnerable)) if on]
    ctx: dict[str, Any] = {
        "channel": contact.channel.value,
        "direction": contact.direction,
        "customer.tier": contact.tier.value,
        "customer.language": contact.language.lower(),
        "customer.segments": segments,
        "customer.vulnerable": contact.vulnerable,
        "interaction.topic": contact.topic,
        "interaction.age": contact.waited_seconds,
    }
    if contact.time is not None:
        hour, minute = contact.time.split(":")
        ctx["time.hour"], ctx["time.minute"] = int(hour), int(minute)
    return ctx


async def agent_names(session: AsyncSession, ids: set[str]) -> dict[str, str]:
    uuids = []
    for value in ids:
        try:
            uuids.append(uuid.UUID(value))
        except ValueError:
            continue  # not an agent id (a described preferred agent typed by hand)
    if not uuids:
        return {}
    rows = await session.execute(select(Agent.id, Agent.display_name).where(Agent.id.in_(uuids)))
    return {str(agent_id): name for agent_id, name in rows}


async def dry_run(
    session: AsyncSession,
    engine: actions.EngineLink,
    *,
    context: dict[str, Any] | None = None,
    interaction_id: uuid.UUID | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """The engine's explanation (see ``routing.engine.explain``) with every agent's name added
    (``name`` beside each ``agent_id``, ``preferred_agent_name``). Changes nothing."""
    if interaction_id is None and "channel" not in (context or {}):
        raise Invalid("Give an interaction_id, or a context with at least a channel", field="body.context")
    await session.commit()  # hold no transaction while the engine works (SQLite's lock is global)
    command = commands.Explain(
        context=context or {},
        interaction_id=str(interaction_id) if interaction_id is not None else None,
        version=version,
    )
    reply = await actions.call_engine(engine, command)
    if not reply.get("ok"):
        reason = str(reply.get("reason"))
        field = "body.version" if "version" in reason else "body"
        raise Invalid(f"Cannot explain: {reason}", field=field)
    out: dict[str, Any] = reply["explanation"]
    ids = {a["agent_id"] for a in [*out["agents"], *out["others"]]}
    if out.get("preferred_agent"):
        ids.add(out["preferred_agent"])
    names = await agent_names(session, ids)
    await session.commit()
    for a in [*out["agents"], *out["others"]]:
        a["name"] = names.get(a["agent_id"], a["agent_id"])
    out["others"].sort(key=lambda a: (a["name"].casefold(), a["agent_id"]))
    out["preferred_agent_name"] = names.get(out.get("preferred_agent") or "")
    return out
