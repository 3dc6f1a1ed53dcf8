"""The desktop socket follows the customers behind the agent's work.

``customers.timeline`` publishes every committed timeline event to its customer's topic. A
desktop subscribes to the topics of the customers whose interactions it holds (on every resync
and accept) and drops them when the last tab for that customer closes, so anything that happens
for that customer on any channel (an email while on a call) reaches the open 360 at once, even
when it is not addressed to this agent.

An event only says "something happened to customer C (interaction I)": what is shown is re-read
from SQL, for interactions this agent holds, so a forged or stale event can reveal nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_desktop import threads, voice
from agent_desktop.service import HELD_STATES, NO_IDENTITIES, TIMELINE_LIMIT
from customers.models import Customer
from interactions.models import Interaction
from interactions.service import customer_timeline
from interactions.states import Channel
from switchboard.events import EventHub, customer_topic
from switchboard.templating import templates

EVENT_TYPE = "timeline"


def render(name: str, **context: Any) -> str:
    return templates.get_template(f"agent_desktop/{name}").render(**context)


class CustomerFollow:
    """Which customer topics one socket listens to, by the held interaction that needs each."""

    def __init__(self, hub: EventHub, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._hub = hub
        self._queue = queue
        self._topic_of: dict[uuid.UUID, str] = {}  # held interaction -> its customer's topic

    @property
    def topics(self) -> set[str]:
        return set(self._topic_of.values())

    def interactions_of(self, customer_id: object) -> list[uuid.UUID]:
        """The held interactions for which this customer is followed."""
        topic = customer_topic(customer_id)
        return [iid for iid, followed in self._topic_of.items() if followed == topic]

    def replace(self, held: dict[uuid.UUID, uuid.UUID]) -> None:
        """Follow exactly these (interaction -> customer) pairs (a resync knows the whole set)."""
        before = self.topics
        self._topic_of = {iid: customer_topic(cid) for iid, cid in held.items()}
        self._apply(before)

    def add(self, interaction_id: uuid.UUID, customer_id: uuid.UUID) -> None:
        before = self.topics
        self._topic_of[interaction_id] = customer_topic(customer_id)
        self._apply(before)

    def discard(self, interaction_id: uuid.UUID) -> None:
        before = self.topics
        self._topic_of.pop(interaction_id, None)
        self._apply(before)

    def close(self) -> None:
        before = self.topics
        self._topic_of = {}
        self._apply(before)

    def _apply(self, before: set[str]) -> None:
        after = self.topics
        if after - before:
            self._hub.add_topics(self._queue, *(after - before))
        if before - after:
            self._hub.remove_topics(self._queue, *(before - after))


async def render_event(session: AsyncSession, *, agent_id: uuid.UUID, event: dict[str, Any]) -> str:
    """Out-of-band fragments for one customer timeline event: the 360 timeline of every held
    interaction with that customer, its thread when the event belongs to it, its call panel."""
    customer_id = uuid.UUID(str(event["customer_id"]))
    touched = {uuid.UUID(str(iid)) for iid in event.get("interaction_ids") or []}
    rows = (
        await session.execute(
            select(Interaction, Customer)
            .join(Customer, Customer.id == Interaction.customer_id)
            .where(
                Interaction.agent_id == agent_id,
                Interaction.customer_id == customer_id,
                Interaction.state.in_(HELD_STATES),
            )
            .order_by(Interaction.connected_at, Interaction.id)
            # The customer comes along for customer_timeline's existence check, which then finds
            # it in the session.
            .options(NO_IDENTITIES)
            .execution_options(populate_existing=True)
        )
    ).all()
    if not rows:
        return ""
    held = [interaction for interaction, _ in rows]
    customer = rows[0][1]  # referenced: the session's identity map holds it weakly
    timeline = await customer_timeline(session, customer_id=customer.id, limit=TIMELINE_LIMIT)
    parts: list[str] = []
    for interaction in held:
        parts.append(render("_timeline.html", iid=interaction.id, timeline=timeline.items))
        if not touched:
            continue
        thread = await threads.thread_for(session, interaction)
        if touched & {leg.interaction.id for leg in thread.legs}:
            parts.append(render("_thread.html", iid=interaction.id, thread=thread))
        if interaction.channel is Channel.VOICE and interaction.id in touched:
            view = await voice.call_view(session, interaction)
            parts.append(render("_voice.html", iid=interaction.id, call=view))
    return "".join(parts)
