"""Work around an interaction through the ASGI app: notes, wrap-up codes (required, validated,
own work only), transfer dialog, canned responses, and the EX pulse with its supervisor summary."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from agent_desktop import ex_service
from interactions.models import Interaction, TimelineEvent
from interactions.pulse_models import AgentPulse, PulseKind
from interactions.queue_texts import DEFAULT_DISPOSITIONS
from interactions.states import State
from switchboard.auth.models import Role
from switchboard.db import Database
from switchboard.errors import Invalid
from tests.factories import agent_profile, make_customer, make_interaction, make_queue
from tests.helpers import eventually
from workforce.models import Agent, Presence, Queue

PROBLEM_JSON = "application/problem+json"
CARDS_SETTINGS = {
    "dispositions": ["card_reissued", "card_blocked", "resolved"],
    "canned": [
        {"title": "Card on its way", "body": "Your new card will arrive within 3-5 working days."},
        {"title": "Block confirmed", "body": "I have blocked the card; nobody can use it now."},
        {"title": "<b>Sneaky</b>", "body": "<script>alert(1)</script>"},
    ],
}


async def _queue(db: Database, name: str = "cards", settings: dict[str, Any] | None = None) -> Queue:
    async with db.sessionmaker() as s:
        return await make_queue(s, name, channels=["chat"], wrap_up_seconds=45, settings=settings or {})


async def _agent(db: Database, user, *, queue: Queue | None = None, teams=("Retail A",), **kw) -> Agent:
    queues = [queue] if queue is not None else []
    return await agent_profile(db, user, teams=list(teams), queues=queues, **kw)


async def _held(db: Database, agent: Agent, queue: Queue | None, state: State = State.CONNECTED) -> uuid.UUID:
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
        interaction = await make_interaction(s, customer=customer, agent=agent)
        interaction.state = state
        interaction.queue_id = queue.id if queue else None
        interaction.connected_at = datetime.now(UTC) - timedelta(minutes=3)
        if state is State.WRAP_UP:
            interaction.wrap_up_at = datetime.now(UTC)
        await s.commit()
        return interaction.id


def _field(response) -> list[str]:
    assert response.headers["content-type"] == PROBLEM_JSON, response.text
    return [e["field"] for e in response.json().get("errors", [])]


# ------------------------------------------------------------------ wrap-up and disposition


async def test_tools_show_the_queues_codes_and_the_acw_clock_in_wrap_up(client, db, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    queue = await _queue(db, settings=CARDS_SETTINGS)
    agent = await _agent(db, user, queue=queue)
    connected = await _held(db, agent, queue)
    wrapping = await _held(db, agent, queue, State.WRAP_UP)

    html = (await client.get(f"/desktop/interactions/{connected}/tools", headers=headers)).text
    assert "End / Wrap up" in html and "Transfer…" in html and "data-acw-until" not in html

    response = await client.get(f"/desktop/interactions/{wrapping}/tools", headers=headers)
    assert response.status_code == 200, response.text
    html = response.text
    assert "data-acw-until" in html and 'data-acw-budget="45"' in html and "0:45 left" in html
    assert 'value="card_reissued"' in html and 'value="card_blocked"' in html
    assert 'value="follow_up_needed"' not in html  # the queue's codes replace the defaults
    assert "disabled" in html.split('class="primary complete-button"', 1)[1].split(">", 1)[0]

    # A queue without codes gets the default list.
    plain = await _queue(db, "retail")
    other = await _held(db, agent, plain, State.WRAP_UP)
    html = (await client.get(f"/desktop/interactions/{other}/tools", headers=headers)).text
    assert all(f'value="{code}"' in html for code in DEFAULT_DISPOSITIONS)


async def test_completion_requires_a_valid_code_and_changes_nothing_without_one(
    client, db, make_user
) -> None:
    user, headers = await make_user(Role.AGENT)
    queue = await _queue(db, settings=CARDS_SETTINGS)
    agent = await _agent(db, user, queue=queue)
    iid = await _held(db, agent, queue, State.WRAP_UP)

    missing = await client.post(f"/desktop/interactions/{iid}/complete", data={}, headers=headers)
    assert missing.status_code == 422 and _field(missing) == ["disposition"]
    blank = await client.post(
        f"/desktop/interactions/{iid}/complete", data={"disposition": " "}, headers=headers
    )
    assert blank.status_code == 422 and _field(blank) == ["disposition"]
    unknown = await client.post(
        f"/desktop/interactions/{iid}/complete", data={"disposition": "follow_up_needed"}, headers=headers
    )
    assert unknown.status_code == 422 and _field(unknown) == ["disposition"]
    assert "card_reissued" in unknown.json()["detail"]  # says which codes this queue accepts

    async with db.sessionmaker() as s:
        row = await s.get(Interaction, iid)
        assert row.state is State.WRAP_UP and row.disposition is None


async def test_completing_before_wrap_up_is_refused_before_anything_is_written(client, db, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    queue = await _queue(db, settings=CARDS_SETTINGS)
    agent = await _agent(db, user, queue=queue)
    iid = await _held(db, agent, queue, State.CONNECTED)
    early = await client.post(
        f"/desktop/interactions/{iid}/complete", data={"disposition": "resolved"}, headers=headers
    )
    assert early.status_code == 409
    async with db.sessionmaker() as s:
        assert (await s.get(Interaction, iid)).disposition is None


async def test_another_agents_interaction_is_not_found_everywhere(client, db, make_user) -> None:
    owner, _ = await make_user(Role.AGENT)
    queue = await _queue(db, settings=CARDS_SETTINGS)
    owner_agent = await _agent(db, owner, queue=queue)
    iid = await _held(db, owner_agent, queue, State.WRAP_UP)
    intruder, headers = await make_user(Role.AGENT)
    await _agent(db, intruder, queue=queue)

    calls = [
        ("GET", f"/desktop/interactions/{iid}/tools", None),
        ("POST", f"/desktop/interactions/{iid}/notes", {"body": "peek"}),
        ("POST", f"/desktop/interactions/{iid}/complete", {"disposition": "resolved"}),
        ("GET", f"/desktop/interactions/{iid}/canned?q=card", None),
        ("GET", f"/desktop/interactions/{iid}/transfer/agents?to_queue=cards", None),
        ("POST", f"/desktop/interactions/{iid}/transfer", {"to_queue": "cards"}),
        ("POST", f"/desktop/interactions/{uuid.uuid4()}/complete", {"disposition": "resolved"}),
    ]
    for method, url, data in calls:
        response = await client.request(method, url, data=data, headers=headers)
        assert response.status_code == 404, (method, url, response.status_code, response.text)
        assert _field(response) == ["interaction_id"], url
    async with db.sessionmaker() as s:
        row = await s.get(Interaction, iid)
        assert row.disposition is None
        notes = await s.scalars(select(TimelineEvent).where(TimelineEvent.kind == "note"))
        assert notes.all() == []


# ------------------------------------------------------------------ notes, canned, transfer dialog


async def test_notes_are_added_masked_and_listed(client, db, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    queue = await _queue(db)
    agent = await _agent(db, user, queue=queue)
    iid = await _held(db, agent, queue)

    added = await client.post(
        f"/desktop/interactions/{iid}/notes",
        data={"body": "Customer read card 4111 1111 1111 1111 <b>aloud</b>"},
        headers=headers,
    )
    assert added.status_code == 200, added.text
    assert added.text.lstrip().startswith(f'<section id="notes-{iid}"')
    assert "4111 1111 1111 1111" not in added.text and "&lt;b&gt;aloud&lt;/b&gt;" in added.text
    async with db.sessionmaker() as s:
        event = await s.scalar(select(TimelineEvent).where(TimelineEvent.kind == "note"))
        assert (
            event.interaction_id == iid
            and "1111" in event.data["body"]
            and "4111 1111" not in event.data["body"]
        )

    empty = await client.post(f"/desktop/interactions/{iid}/notes", data={"body": "   "}, headers=headers)
    assert empty.status_code == 422 and _field(empty) == ["body"]


async def test_canned_responses_are_per_queue_searchable_and_escaped(client, db, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    queue = await _queue(db, settings=CARDS_SETTINGS)
    agent = await _agent(db, user, queue=queue)
    iid = await _held(db, agent, queue)

    everything = (await client.get(f"/desktop/interactions/{iid}/canned", headers=headers)).text
    assert "Card on its way" in everything and "Block confirmed" in everything
    assert "<script>alert(1)</script>" not in everything and "&lt;script&gt;" in everything
    assert f'data-reply-targets="reply-{iid} chat-reply-body-{iid}"' in everything

    hits = (
        await client.get(f"/desktop/interactions/{iid}/canned", params={"q": "BLOCKED card"}, headers=headers)
    ).text
    assert "Block confirmed" in hits and "Card on its way" not in hits
    none = (
        await client.get(f"/desktop/interactions/{iid}/canned", params={"q": "mortgage"}, headers=headers)
    ).text
    assert "Nothing matches" in none


async def test_transfer_dialog_lists_available_agents_of_the_queue_and_validates(
    client, db, make_user
) -> None:
    user, headers = await make_user(Role.AGENT)
    queue = await _queue(db, settings=CARDS_SETTINGS)
    agent = await _agent(db, user, queue=queue, presence=Presence.AVAILABLE)
    iid = await _held(db, agent, queue)
    ready, _ = await make_user(Role.AGENT, username="ready-agent")
    ready_agent = await _agent(db, ready, queue=queue, presence=Presence.AVAILABLE)
    away, _ = await make_user(Role.AGENT, username="away-agent")
    away_agent = await _agent(db, away, queue=queue, presence=Presence.BREAK)
    elsewhere, _ = await make_user(Role.AGENT, username="elsewhere-agent")
    elsewhere_agent = await _agent(db, elsewhere, presence=Presence.AVAILABLE)

    options = await client.get(
        f"/desktop/interactions/{iid}/transfer/agents", params={"to_queue": "cards"}, headers=headers
    )
    assert options.status_code == 200
    assert str(ready_agent.id) in options.text
    for absent in (agent.id, away_agent.id, elsewhere_agent.id):  # self, on break, not a member
        assert str(absent) not in options.text
    unknown = await client.get(
        f"/desktop/interactions/{iid}/transfer/agents", params={"to_queue": "nope"}, headers=headers
    )
    assert unknown.status_code == 422 and _field(unknown) == ["to_queue"]

    nowhere = await client.post(f"/desktop/interactions/{iid}/transfer", data={"note": "x"}, headers=headers)
    assert nowhere.status_code == 422 and _field(nowhere) == ["to_queue"]
    bad_agent = await client.post(
        f"/desktop/interactions/{iid}/transfer", data={"to_agent_id": "not-a-uuid"}, headers=headers
    )
    assert bad_agent.status_code == 422 and _field(bad_agent) == ["to_agent_id"]
    bad_mode = await client.post(
        f"/desktop/interactions/{iid}/transfer", data={"to_queue": "cards", "mode": "hot"}, headers=headers
    )
    assert bad_mode.status_code == 422 and _field(bad_mode) == ["body.mode"]


# ------------------------------------------------------------------ EX pulse


async def test_pulse_only_for_own_completed_interactions_once_with_known_tags(client, db, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    queue = await _queue(db)
    agent = await _agent(db, user, queue=queue, teams=("Premier",))
    done = await _held(db, agent, queue, State.COMPLETED)
    open_work = await _held(db, agent, queue, State.WRAP_UP)
    other_user, _ = await make_user(Role.AGENT)
    theirs = await _held(db, await _agent(db, other_user), queue, State.COMPLETED)

    def post(**data: Any):
        return client.post("/desktop/ex/pulse", data=data, headers=headers)

    too_high = await post(interaction_id=str(done), score="6")
    assert too_high.status_code == 422 and _field(too_high) == ["score"]
    bad_tag = await post(interaction_id=str(done), score="3", tags=["system slow", "boss is mean"])
    assert bad_tag.status_code == 422 and _field(bad_tag) == ["tags[1]"]
    for not_yours in (open_work, theirs, uuid.uuid4()):
        refused = await post(interaction_id=str(not_yours), score="4")
        assert refused.status_code == 404 and _field(refused) == ["interaction_id"]

    ok = await post(
        interaction_id=str(done), score="2", tags=["system slow", "angry customer", "system slow"]
    )
    assert ok.status_code == 200, ok.text
    assert "Thanks" in ok.text and f'id="pulse-{done}"' in ok.text
    again = await post(interaction_id=str(done), score="5")
    assert again.status_code == 409

    async with db.sessionmaker() as s:
        (row,) = (await s.scalars(select(AgentPulse))).all()
    assert (row.kind, row.score, row.queue, row.team) == (PulseKind.INTERACTION, 2, "cards", "Premier")
    assert row.tags == ["system slow", "angry customer"] and row.interaction_id == done
    assert row.day == datetime.now(UTC).date()


async def test_shift_checkin_validates_both_scales(client, db, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    await _agent(db, user, teams=("Silver Line",))
    low = await client.post("/desktop/ex/checkin", data={"energy": "0", "workload": "3"}, headers=headers)
    assert low.status_code == 422 and _field(low) == ["energy"]
    high = await client.post("/desktop/ex/checkin", data={"energy": "3", "workload": "9"}, headers=headers)
    assert high.status_code == 422 and _field(high) == ["workload"]
    ok = await client.post(
        "/desktop/ex/checkin", data={"energy": "2", "workload": "5", "comment": "Long queue"}, headers=headers
    )
    assert ok.status_code == 200 and "Thanks" in ok.text
    async with db.sessionmaker() as s:
        row = await s.scalar(select(AgentPulse))
    assert (row.kind, row.score, row.workload, row.team, row.queue, row.interaction_id, row.comment) == (
        PulseKind.SHIFT,
        2,
        5,
        "Silver Line",
        None,
        None,
        "Long queue",
    )


async def _pulse(db, agent_id, *, kind, score, day, queue=None, team=None, workload=None, tags=()) -> None:
    async with db.sessionmaker() as s:
        s.add(
            AgentPulse(
                agent_id=agent_id,
                kind=kind,
                score=score,
                workload=workload,
                tags=list(tags),
                queue=queue,
                team=team,
                day=day,
                created_at=datetime.combine(day, datetime.min.time(), UTC),
            )
        )
        await s.commit()


async def test_supervisor_summary_averages_and_counts_by_queue_team_and_day(client, db, make_user) -> None:
    user, agent_headers = await make_user(Role.AGENT)
    agent = await _agent(db, user)
    _, supervisor = await make_user(Role.SUPERVISOR)
    d1, d2, outside = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 9)
    ip, sh = PulseKind.INTERACTION, PulseKind.SHIFT  # short names keep the table readable
    for kind, score, day, queue, team, workload, tags in [
        (ip, 2, d1, "cards", "Retail A", None, ("system slow",)),
        (ip, 4, d1, "cards", "Retail B", None, ("system slow", "great teamwork")),
        (ip, 5, d2, "retail", "Retail A", None, ()),
        (sh, 3, d2, None, "Retail A", 4, ()),
        (sh, 1, d2, None, "Retail B", 5, ()),
        (ip, 1, outside, "cards", "Retail A", None, ("angry customer",)),
    ]:
        await _pulse(
            db,
            agent.id,
            kind=kind,
            score=score,
            day=day,
            queue=queue,
            team=team,
            workload=workload,
            tags=tags,
        )

    def get(**params: str):
        return client.get(
            "/api/ex/pulse", params={"from": "2026-03-02", "to": "2026-03-03", **params}, headers=supervisor
        )

    by_queue = (await get(group_by="queue")).json()
    assert by_queue["from"] == "2026-03-02" and by_queue["to"] == "2026-03-03"
    groups = {g["key"]: g for g in by_queue["groups"]}
    assert groups["cards"]["interaction_count"] == 2 and groups["cards"]["average_rating"] == 3.0
    assert groups["cards"]["tags"] == {"great teamwork": 1, "system slow": 2}
    assert groups["retail"]["average_rating"] == 5.0 and groups["retail"]["shift_count"] == 0
    assert groups[None]["shift_count"] == 2 and groups[None]["average_energy"] == 2.0
    assert groups[None]["average_workload"] == 4.5 and groups[None]["interaction_count"] == 0

    by_team = {g["key"]: g for g in (await get(group_by="team")).json()["groups"]}
    assert by_team["Retail A"]["interaction_count"] == 2 and by_team["Retail A"]["average_rating"] == 3.5
    assert by_team["Retail A"]["shift_count"] == 1 and by_team["Retail A"]["average_workload"] == 4.0
    assert by_team["Retail B"]["average_rating"] == 4.0 and by_team["Retail B"]["average_energy"] == 1.0

    by_day = {g["key"]: g for g in (await get(group_by="day")).json()["groups"]}
    assert set(by_day) == {"2026-03-02", "2026-03-03"}  # 9 March is outside the range
    assert by_day["2026-03-02"]["interaction_count"] == 2 and by_day["2026-03-03"]["shift_count"] == 2

    backwards = await client.get(
        "/api/ex/pulse", params={"from": "2026-03-05", "to": "2026-03-01"}, headers=supervisor
    )
    assert backwards.status_code == 422 and _field(backwards) == ["to"]
    bad_group = await client.get("/api/ex/pulse", params={"group_by": "agent"}, headers=supervisor)
    assert bad_group.status_code == 422 and _field(bad_group) == ["query.group_by"]
    assert (await client.get("/api/ex/pulse", headers=agent_headers)).status_code == 403


async def test_pulse_service_rejects_a_comment_that_is_too_long(db, make_user) -> None:
    user, _ = await make_user(Role.AGENT)
    agent = await _agent(db, user)
    async with db.sessionmaker() as s:
        with pytest.raises(Invalid) as refused:
            await ex_service.record_shift_checkin(s, agent=agent, energy=3, workload=3, comment="x" * 1001)
    assert refused.value.field == "comment"


# ------------------------------------------------------------------ with the routing engine


async def test_wrap_up_then_complete_with_a_code_through_the_engine(routed, db, make_user) -> None:
    _, client = routed
    user, headers = await make_user(Role.AGENT)
    queue = await _queue(db, settings=CARDS_SETTINGS)
    await _agent(db, user, queue=queue)
    _, supervisor = await make_user(Role.SUPERVISOR)
    assert (
        await client.post("/api/routing/presence", json={"presence": "available"}, headers=headers)
    ).status_code == 200
    created = await client.post(
        "/api/interactions",
        json={"channel": "chat", "queue": "cards", "identity": {"kind": "phone", "value": "+447911123477"}},
        headers=supervisor,
    )
    assert created.status_code == 201, created.text
    iid = created.json()["id"]

    async def offered() -> bool:
        return bool((await client.get("/api/routing/offers", headers=headers)).json())

    await eventually(offered, what="an offer")
    (offer,) = (await client.get("/api/routing/offers", headers=headers)).json()
    assert (
        await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=headers)
    ).status_code == 200

    wrap = await client.post(f"/desktop/interactions/{iid}/wrap-up", headers=headers)
    assert wrap.status_code == 200, wrap.text
    assert "data-acw-until" in wrap.text and 'name="disposition"' in wrap.text

    refused = await client.post(
        f"/desktop/interactions/{iid}/complete", data={"disposition": ""}, headers=headers
    )
    assert refused.status_code == 422 and _field(refused) == ["disposition"]
    done = await client.post(
        f"/desktop/interactions/{iid}/complete", data={"disposition": "card_blocked"}, headers=headers
    )
    assert done.status_code == 200, done.text
    # The pulse replaces the last one; the tab leaves by the socket's push (one delete, never two).
    assert '<div id="pulse-slot" hx-swap-oob="innerHTML">' in done.text and f'id="pulse-{iid}"' in done.text
    assert 'hx-swap-oob="delete"' not in done.text
    async with db.sessionmaker() as s:
        row = await s.get(Interaction, uuid.UUID(iid))
        assert row.state is State.COMPLETED and row.disposition == "card_blocked"

    pulse = await client.post(
        "/desktop/ex/pulse",
        data={"interaction_id": iid, "score": "4", "tags": ["great teamwork"]},
        headers=headers,
    )
    assert pulse.status_code == 200, pulse.text


async def test_demo_bank_gives_queues_codes_and_canned_responses_but_keeps_a_supervisors(db) -> None:
    from demo.bank.seed import _seed_desktop_settings

    await _queue(db, "cards")
    await _queue(db, "retail", settings={"dispositions": ["kept"]})
    async with db.sessionmaker() as s:
        await _seed_desktop_settings(s)
        await s.commit()
        cards = await s.scalar(select(Queue).where(Queue.name == "cards"))
        retail = await s.scalar(select(Queue).where(Queue.name == "retail"))
    assert {"card_reissued", "card_blocked", "resolved"} <= set(cards.settings["dispositions"])
    assert any(c["title"] == "Card blocked" for c in cards.settings["canned"])
    assert retail.settings["dispositions"] == ["kept"] and retail.settings["canned"]
