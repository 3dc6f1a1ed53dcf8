"""A readable customer history on the desktop (issue #10 item 5): one line per contact across
channels with its outcome and wrap-up code, routing's own events behind a toggle, friendly labels
from the one ``label`` filter, and a history box the keyboard can reach."""

from __future__ import annotations

import re
from datetime import timedelta

from customers.timeline import append_event
from interactions.models import ActorType
from interactions.states import Channel, State
from switchboard.auth.models import Role
from switchboard.db import utcnow
from switchboard.labels import label
from tests.factories import make_agent, make_customer, make_interaction
from workforce.models import Presence


def test_labels_read_as_words() -> None:
    assert label("mortgages") == "Mortgages"
    assert label("card_blocked") == "Card blocked"
    assert label("pl", "language") == "Polish"
    assert label("en-GB", "language") == "English"
    assert label("xh", "language") == "XH"  # unknown: the code, not a guess
    assert label("follow_up_needed") == "Follow-up needed"
    assert label(State.WRAP_UP) == "Wrap-up"
    assert label("sms") == "SMS"
    assert label(None) == "—"


async def test_history_has_a_line_per_contact_and_routing_events_behind_a_toggle(
    client, db, make_user
) -> None:
    user, headers = await make_user(Role.AGENT)
    async with db.sessionmaker() as s:
        agent = await make_agent(s, user, presence=Presence.AVAILABLE)
        customer = await make_customer(s, display_name="Piotr Nowak", language="pl")
        await s.flush()
        earlier = await make_interaction(s, customer=customer, channel=Channel.VOICE)
        earlier.state, earlier.topic, earlier.disposition = State.COMPLETED, "mortgages", "follow_up_needed"
        earlier.created_at = utcnow() - timedelta(days=2)
        now = await make_interaction(s, customer=customer, agent=agent)
        now.state, now.topic = State.CONNECTED, "card_blocked"
        for kind, data in (
            ("routed", {"queue": "cards"}),
            ("offer_created", {}),
            ("state_changed", {"to": "wrap_up"}),
        ):
            append_event(
                s,
                customer_id=customer.id,
                interaction_id=now.id,
                kind=kind,
                channel="chat",
                actor_type=ActorType.SYSTEM,
                data=data,
            )
        append_event(
            s,
            customer_id=customer.id,
            interaction_id=now.id,
            kind="chat_message",
            channel="chat",
            actor_type=ActorType.CUSTOMER,
            data={"preview": "My card is blocked"},
        )
        await s.commit()

    page = await client.get("/desktop", headers=headers)
    assert page.status_code == 200, page.text
    html = page.text
    box = re.search(rf'<div class="history-box" id="history-{now.id}"([^>]*)>', html)
    assert box and 'tabindex="0"' in box.group(1) and 'role="region"' in box.group(1), box
    assert f'aria-labelledby="history-{now.id}-heading"' in box.group(1)

    contacts = re.findall(r'<li class="contact( current)?">(.*?)</li>', html, re.S)
    assert len(contacts) == 2, contacts  # one line per contact, whatever its number of events
    flat = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip() for _, body in contacts]
    assert flat[0].endswith("Chat Card blocked Now") and contacts[0][0] == " current", flat
    assert flat[1].endswith("Voice Mortgages Completed · Follow-up needed"), flat

    activity, routing = html.split('<details class="routing-events"', 1)
    activity = activity[activity.index(f'id="timeline-{now.id}"') :]
    assert "“My card is blocked”" in activity and "Offered to an agent" not in activity
    assert "<summary>Routing events (3)</summary>" in routing
    assert "Offered to an agent" in routing and "→ Wrap-up" in routing
    assert "<dd>Polish</dd>" in html and "Topic: Card blocked" in html  # no raw "pl" or "card_blocked"
