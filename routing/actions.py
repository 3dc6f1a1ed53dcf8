"""What an agent does to their work, one function per action: accept, reject, wrap up, complete,
transfer, cancel a transfer, set presence.

The JSON routes (``routing.api``) and the desktop's htmx routes (``agent_desktop``) both call
these, so both have one path: the SQL check (the offer or interaction is this agent's), the
engine command stamped for this agent, and the engine's verdict (409 naming the reason, 202 with
a status link when the engine answers late, 503 when it cannot be reached). What each caller
renders afterwards (JSON, a fragment) is its own business.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from redis.asyncio import Redis
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload
from sqlalchemy.orm.util import identity_key

from interactions.models import Interaction
from routing import transfer as transfers
from routing.models import Offer
from routing.schemas import CommandResult, TransferRead, TransferRequest
from switchboard import commands, events, replies
from switchboard.db import utcnow
from switchboard.errors import OUTAGE_ERRORS, Conflict, Invalid, NotFound, ServiceUnavailable, StillProcessing
from switchboard.fastsql import FastStatement
from workforce.deps import NoAgentProfile
from workforce.identity import AgentRef
from workforce.models import Agent, Presence
from workforce.presence_log import forget_presence, record_presence

_offers, _interactions = Offer.__table__, Interaction.__table__


@dataclass(frozen=True)
class EngineLink:
    """How an action reaches the routing engine: the app's Redis, and where the user can follow a
    command the engine did not answer in time (``GET /api/routing/commands/{request_id}``)."""

    redis: Redis
    status_url: Callable[[str], str]

    @classmethod
    def of(cls, request: Request) -> EngineLink:
        def status_url(request_id: str) -> str:
            return str(request.url_for("command_status", request_id=request_id).path)

        return cls(redis=request.app.state.redis_client, status_url=status_url)


# Routes whose command the engine may apply after the request ended document that answer too.
ACCEPTED_LATER: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "The engine has not answered in time; the command applies when it does",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["status", "detail", "status_url"],
                    "properties": {
                        "status": {"type": "string", "enum": ["pending"]},
                        "detail": {"type": "string"},
                        "status_url": {"type": "string"},
                        "request_id": {"type": "string"},
                    },
                }
            }
        },
        "headers": {
            "Location": {"schema": {"type": "string"}},
            "Retry-After": {"schema": {"type": "integer"}},
        },
    }
}


async def call_engine(
    engine: EngineLink, command: commands.Command, *, owner: uuid.UUID | None = None
) -> dict[str, Any]:
    """The engine's reply. ``owner``: the user a changing command acts for. If the engine does not
    answer in time, such a command is still in its stream and may be applied later, so the answer
    is 202 with a status link only ``owner`` can follow (as Genesys Cloud answers participant
    changes 202 and the desktop learns the outcome from its notifications: ours from its socket).
    A read-only query (no owner) changes nothing later: 503 with Retry-After."""
    try:
        return await commands.call(engine.redis, command)
    except commands.EngineUnavailable as exc:
        if owner is None or exc.request_id is None:
            raise ServiceUnavailable(str(exc)) from exc
        await replies.remember_pending(engine.redis, exc.request_id, owner=str(owner))
        raise StillProcessing(
            "The routing engine has not answered yet; the command will be applied when it does. "
            "Follow status_url for the outcome.",
            status_url=engine.status_url(exc.request_id),
            request_id=exc.request_id,
        ) from exc


def verdict(reply: dict[str, Any], *, subject: str) -> CommandResult:
    """The engine's refusal is a 409 naming its reason; nothing changed."""
    if not reply.get("ok"):
        raise Conflict(f"{subject}: {reply.get('reason', 'refused')}", reason=reply.get("reason"))
    return CommandResult(ok=True)


# ---------------------------------------------------------------------- what is the agent's


_OFFER_OWNER = FastStatement(select(_offers.c.agent_id).where(_offers.c.id == bindparam("offer_id")))
_HOLDER = FastStatement(
    select(_interactions.c.id, _interactions.c.agent_id, _interactions.c.disposition).where(
        _interactions.c.id == bindparam("interaction_id")
    )
)


@dataclass(frozen=True)
class HeldWork:
    """What the actions check of an interaction before asking the engine (which judges its state)."""

    id: uuid.UUID
    agent_id: uuid.UUID | None
    disposition: str | None


async def own_offer(session: AsyncSession, agent: AgentRef, offer_id: uuid.UUID) -> None:
    """Whether the offer was made to this agent: unknown is 404, someone else's is 409. One read
    of its own (no transaction on PostgreSQL), done before the engine call waits."""
    offer = await _OFFER_OWNER.first_alone(session, {"offer_id": offer_id})
    if offer is None:
        raise NotFound("No such offer", field="offer_id")
    if offer.agent_id != agent.id:
        raise Conflict("This offer was made to another agent", field="offer_id")


async def held_interaction(session: AsyncSession, agent: AgentRef, interaction_id: uuid.UUID) -> HeldWork:
    """An interaction this agent holds (or held: the engine judges the state); anyone else's is 404.
    A row the caller's session has just written (a wrap-up code before completing) is not read
    again; otherwise one read of its own, as ``own_offer``."""
    known = session.identity_map.get(identity_key(Interaction, interaction_id))
    row: Any
    if isinstance(known, Interaction):
        row = known
        await session.commit()
    else:
        row = await _HOLDER.first_alone(session, {"interaction_id": interaction_id})
    if row is None or row.agent_id != agent.id:
        raise NotFound("No such interaction held by this agent", field="interaction_id")
    return HeldWork(row.id, row.agent_id, row.disposition)


# ---------------------------------------------------------------------- the actions


async def set_presence(
    session: AsyncSession,
    engine: EngineLink,
    who: AgentRef,
    *,
    presence: str,
    reason: str | None,
    before_commit: Callable[[Agent], None] | None = None,
) -> Agent:
    """The agent's own status. Routing reacts at once (offers start, stop or are rescinded).

    Saved only if routing can be told: Redis refusing the command undoes the change (503), so
    the agent never shows one status while routing acts on another."""
    # The row, read now: the engine writes presence too, and the old values are restored on failure.
    # Without its skills (a second query, selectin): a status change neither reads nor shows them.
    agent = await session.get(Agent, who.id, options=[raiseload(Agent.skills)])
    if agent is None:  # deleted since the request began
        raise NoAgentProfile()
    before: dict[str, Any] = {"presence": agent.presence, "presence_reason": agent.presence_reason}
    before["presence_since"] = agent.presence_since
    agent.presence = Presence(presence)
    agent.presence_reason = reason
    agent.presence_since = since = utcnow()
    await record_presence(
        session,
        agent_id=agent.id,
        presence=presence,
        reason=reason,
        at=since,
        by="agent" if before_commit is None else "supervisor",
    )
    if before_commit is not None:  # a supervisor's change is audited in its transaction
        before_commit(agent)
    await session.commit()
    try:
        await commands.send(engine.redis, commands.AgentChanged(agent_id=str(agent.id)))
    except OUTAGE_ERRORS as exc:
        # Only our own change, and only if nothing changed it since (the engine, another tab).
        await session.execute(
            update(Agent)
            .where(Agent.id == agent.id, Agent.presence_since == since)
            .values(**before)
            .execution_options(synchronize_session=False)
        )
        await forget_presence(session, agent_id=agent.id, at=since)
        await session.commit()
        detail = "Routing is unavailable: your status was not changed. Retry shortly."
        raise ServiceUnavailable(detail) from exc
    # The wallboards follow at once; a lost notice only delays them to their next refresh.
    with contextlib.suppress(*OUTAGE_ERRORS):
        await events.publish(
            engine.redis, events.FLOOR_TOPIC, {"agent_id": str(agent.id), "presence": presence}
        )
    return agent


async def _answer_offer(
    kind: type[commands.Accept | commands.Reject],
    session: AsyncSession,
    engine: EngineLink,
    agent: AgentRef,
    offer_id: uuid.UUID,
    subject: str,
    received_at: float,
) -> CommandResult:
    # The engine judges the answer against the offer's expiry by when the app received it,
    # however long the request or the command then waits behind others (``Engine._live_offer``).
    await own_offer(session, agent, offer_id)
    command = kind(offer_id=str(offer_id), agent_id=str(agent.id), received_at=received_at)
    return verdict(await call_engine(engine, command, owner=agent.user_id), subject=subject)


async def accept(
    session: AsyncSession, engine: EngineLink, agent: AgentRef, offer_id: uuid.UUID, *, received_at: float
) -> CommandResult:
    """409 when the offer expired (received after its expiry: ``received_at``, epoch seconds),
    was rescinded or is another agent's; nothing changes."""
    subject = "The offer cannot be accepted"
    return await _answer_offer(commands.Accept, session, engine, agent, offer_id, subject, received_at)


async def reject(
    session: AsyncSession, engine: EngineLink, agent: AgentRef, offer_id: uuid.UUID, *, received_at: float
) -> CommandResult:
    subject = "The offer cannot be rejected"
    return await _answer_offer(commands.Reject, session, engine, agent, offer_id, subject, received_at)


async def wrap_up(
    session: AsyncSession, engine: EngineLink, agent: AgentRef, interaction_id: uuid.UUID
) -> CommandResult:
    """The conversation ended: after-contact work starts; the agent keeps the capacity until complete."""
    held = await held_interaction(session, agent, interaction_id)
    command = commands.WrapUp(interaction_id=str(held.id), agent_id=str(held.agent_id))
    return verdict(await call_engine(engine, command, owner=agent.user_id), subject="Cannot start wrap-up")


async def complete(
    session: AsyncSession, engine: EngineLink, agent: AgentRef, interaction_id: uuid.UUID
) -> CommandResult:
    """Wrap-up done: the interaction completes and the agent's capacity is released. A completed
    interaction always carries a wrap-up code, so one must be set first (422 ``disposition``)."""
    held = await held_interaction(session, agent, interaction_id)
    if not held.disposition:
        raise Invalid("Set a wrap-up code (disposition) before completing", field="disposition")
    command = commands.Complete(interaction_id=str(held.id), agent_id=str(held.agent_id))
    return verdict(await call_engine(engine, command, owner=agent.user_id), subject="Cannot complete")


async def transfer(
    session: AsyncSession,
    engine: EngineLink,
    agent: AgentRef,
    interaction_id: uuid.UUID,
    body: TransferRequest,
) -> TransferRead:
    """Hand a held interaction to a queue or a named agent (blind, or warm: a consult)."""
    held = await held_interaction(session, agent, interaction_id)
    if body.to_agent_id is not None and body.to_agent_id == held.agent_id:
        raise Invalid("You cannot transfer to yourself", field="body.to_agent_id")
    command = commands.Transfer(
        interaction_id=str(held.id),
        agent_id=str(held.agent_id),
        mode=body.mode,
        note=body.note,
        to_queue=body.to_queue,
        to_agent_id=str(body.to_agent_id) if body.to_agent_id is not None else None,
    )
    reply = await call_engine(engine, command, owner=agent.user_id)
    verdict(reply, subject="Cannot transfer")
    return TransferRead(
        ok=True, child_interaction_id=reply.get("child_interaction_id"), consult=reply.get("consult")
    )


async def transfer_status(session: AsyncSession, agent: AgentRef, interaction_id: uuid.UUID) -> TransferRead:
    """The latest transfer of an interaction this agent holds or held, with its consult status."""
    held = await held_interaction(session, agent, interaction_id)
    return await _transfer_status(session, held.id)


async def cancel_transfer(
    session: AsyncSession, engine: EngineLink, agent: AgentRef, interaction_id: uuid.UUID
) -> TransferRead:
    """Withdraw a warm transfer still waiting for its target: the child is cancelled and the agent
    keeps the customer. 409 when none is in progress (e.g. the target has just accepted)."""
    held = await held_interaction(session, agent, interaction_id)
    command = commands.CancelConsult(interaction_id=str(held.id), agent_id=str(held.agent_id))
    verdict(await call_engine(engine, command, owner=agent.user_id), subject="Cannot cancel the transfer")
    return await _transfer_status(session, held.id)


async def _transfer_status(session: AsyncSession, parent_id: uuid.UUID) -> TransferRead:
    found = await transfers.consult_status(session, parent_id=parent_id)
    await session.commit()
    if found is None:
        raise NotFound("This interaction was not transferred", field="interaction_id")
    child, consult, outcome = found
    return TransferRead(ok=True, child_interaction_id=child.id, consult=consult, consult_outcome=outcome)
