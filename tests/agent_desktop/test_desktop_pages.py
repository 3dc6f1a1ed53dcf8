"""The desktop page and its htmx routes through the ASGI app (no browser, no engine)."""

from __future__ import annotations

from sqlalchemy import select

from interactions.states import State
from switchboard.auth.models import Role
from tests.factories import agent_profile, make_customer, make_interaction
from workforce.models import Agent, Presence


async def test_browser_without_a_session_is_sent_to_login(client) -> None:
    response = await client.get("/desktop", headers={"Accept": "text/html"})
    assert response.status_code == 303 and response.headers["location"] == "/login"


async def test_customer_is_refused(client, make_user) -> None:
    _, headers = await make_user(Role.CUSTOMER)
    response = await client.get("/desktop", headers={**headers, "Accept": "text/html"})
    assert response.status_code == 403


async def test_page_shows_held_work_with_customer_360_escaped(client, db, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await agent_profile(db, user, presence=Presence.AVAILABLE)
    async with db.sessionmaker() as s:
        customer = await make_customer(s, display_name="<script>alert(1)</script>", segments=["senior"])
        interaction = await make_interaction(s, customer=customer, agent=agent)
        interaction.state = State.CONNECTED
        interaction.subject = "Lost card"
        await s.commit()
        interaction_id = interaction.id

    page = await client.get("/desktop", headers=headers)
    assert page.status_code == 200, page.text
    html = page.text
    assert 'ws-connect="/desktop/ws"' in html
    assert f'id="tab-{interaction_id}"' in html and f'id="panel-{interaction_id}"' in html
    assert "Lost card" in html and "Senior" in html and "Contact started" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "offer-toast" not in html and 'aria-keyshortcuts="A"' not in html  # no live offer, no buttons

    fragment = await client.get(f"/desktop/interactions/{interaction_id}/customer", headers=headers)
    assert fragment.status_code == 200 and 'class="customer-360"' in fragment.text


async def test_another_agents_customer_panel_is_not_found(client, db, make_user) -> None:
    owner, _ = await make_user(Role.AGENT)
    owner_agent = await agent_profile(db, owner, presence=Presence.AVAILABLE)
    other, other_headers = await make_user(Role.AGENT)
    await agent_profile(db, other, presence=Presence.AVAILABLE)
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
        interaction = await make_interaction(s, customer=customer, agent=owner_agent)
        interaction.state = State.CONNECTED
        await s.commit()
    response = await client.get(f"/desktop/interactions/{interaction.id}/customer", headers=other_headers)
    assert response.status_code == 404


async def test_status_form_sets_presence_and_answers_with_the_status_partial(client, db, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await agent_profile(db, user, presence=Presence.AVAILABLE)
    response = await client.post(
        "/desktop/presence", data={"presence": "break", "reason": "lunch"}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.text.lstrip().startswith('<section id="desktop-status"')
    assert "Break" in response.text and "(Lunch)" in response.text
    async with db.sessionmaker() as s:
        row = await s.scalar(select(Agent).where(Agent.id == agent.id))
        assert row.presence is Presence.BREAK and row.presence_reason == "lunch"

    refused = await client.post("/desktop/presence", data={"presence": "busy"}, headers=headers)
    assert refused.status_code == 422  # busy/wrap-up are routing's to set, never the agent's


async def test_cookie_post_without_csrf_header_is_refused(client, db, make_user, settings) -> None:
    user, headers = await make_user(Role.AGENT)
    await agent_profile(db, user, presence=Presence.AVAILABLE)
    token = headers["Authorization"].split(" ", 1)[1]
    client.cookies.set("sb_session", token)
    response = await client.post("/desktop/presence", data={"presence": "available"})
    client.cookies.clear()
    assert response.status_code == 403


def test_queued_live_360_events_of_one_customer_are_rendered_once() -> None:
    """A socket's queue holding several timeline events for one customer re-reads the 360 once,
    after the others in between, naming every interaction touched; other events keep their order."""
    from agent_desktop.ws import coalesce_timeline

    a, b = "c-a", "c-b"
    events = [
        {"type": "timeline", "customer_id": a, "interaction_ids": ["i1"]},
        {"type": "assigned", "interaction_id": "i1"},
        {"type": "timeline", "customer_id": b, "interaction_ids": ["i9"]},
        {"type": "timeline", "customer_id": a, "interaction_ids": ["i2"]},
        {"type": "offer_closed", "offer_id": "o1"},
    ]
    assert coalesce_timeline(events) == [
        {"type": "assigned", "interaction_id": "i1"},
        {"type": "timeline", "customer_id": b, "interaction_ids": ["i9"]},
        {"type": "timeline", "customer_id": a, "interaction_ids": ["i1", "i2"], "event_ids": None},
        {"type": "offer_closed", "offer_id": "o1"},
    ]
    # The events' ids are merged too (what the panel already showed is judged on all of them);
    # one event without them leaves the merged one without ids (it is then always rendered).
    with_ids = [
        {"type": "timeline", "customer_id": a, "interaction_ids": ["i1"], "event_ids": [1, 2]},
        {"type": "timeline", "customer_id": a, "interaction_ids": ["i1"], "event_ids": [3]},
    ]
    assert coalesce_timeline(with_ids) == [
        {"type": "timeline", "customer_id": a, "interaction_ids": ["i1"], "event_ids": [1, 2, 3]}
    ]
    assert coalesce_timeline([*with_ids, events[0]])[0]["event_ids"] is None
    single = [{"type": "timeline", "customer_id": a, "interaction_ids": []}, {"type": "presence"}]
    assert coalesce_timeline(single) == single


async def test_capacity_counts_held_work_per_channel_against_the_ceilings(db, make_user) -> None:
    """The socket's and complete route's capacity statement (prebuilt, run straight on asyncpg on
    PostgreSQL): held work counted per channel, the agent's ceilings, None without a profile."""
    import uuid

    from agent_desktop.service import CapacityLine, capacity_for
    from interactions.states import Channel

    user, _ = await make_user(Role.AGENT)
    agent = await agent_profile(db, user, presence=Presence.AVAILABLE)
    async with db.sessionmaker() as s:
        row = await s.get(Agent, agent.id)
        row.channel_max = {"chat": 3, "voice": 1}
        customer = await make_customer(s)
        held = [await make_interaction(s, customer=customer, agent=row) for _ in range(3)]
        call = await make_interaction(s, customer=customer, agent=row, channel=Channel.VOICE)
        held[0].state, held[1].state, held[2].state = State.CONNECTED, State.WRAP_UP, State.COMPLETED
        call.state = State.QUEUED
        await s.commit()
    async with db.sessionmaker() as s:
        assert await capacity_for(s, agent_id=agent.id) == [
            CapacityLine("chat", 2, 3),
            CapacityLine("voice", 0, 1),
        ]
        assert await capacity_for(s, agent_id=uuid.uuid4()) is None


def test_a_pushed_offer_asks_where_it_came_from_only_when_it_was_transferred() -> None:
    """The engine's offer says whether a colleague transferred the work: only then does the toast
    ask (one GET per offer otherwise, for nothing); an older publisher's card, silent on it, asks."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from agent_desktop import pages
    from agent_desktop.ws import _card_from_event
    from switchboard import desktop_messages as messages

    def toast(transferred: bool | None) -> str:
        offer_id = uuid.uuid4()
        card = messages.OfferCard(
            channel="chat",
            customer_name="Ada",
            tier="gold",
            segments=[],
            topic=None,
            subject=None,
            queue="Retail",
            waiting_since=datetime.now(UTC).isoformat(),
            transferred=transferred,
        )
        offer = messages.Offer(
            offer_id=str(offer_id),
            interaction_id=str(uuid.uuid4()),
            queue="retail",
            expires_at=(datetime.now(UTC) + timedelta(seconds=30)).isoformat(),
            card=card,
        )
        made = _card_from_event(offer_id, offer.as_json())
        assert made is not None
        return pages.offer_added_fragment(made)

    asks = "/origin"
    assert asks not in toast(False)
    assert asks in toast(True)
    assert asks in toast(None)
