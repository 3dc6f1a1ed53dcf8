"""The interaction state machine: legality, timestamps, compare-and-set, one event per change."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from interactions import service
from interactions.models import ActorType, Interaction, TimelineEvent
from interactions.states import TERMINAL_STATES, TRANSITIONS, State, illegal_transitions
from switchboard.auth.models import Role
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid
from tests.factories import make_agent, new_interaction, walk_to
from workforce.models import Agent

LEGAL = [(a, b) for a in State for b in sorted(TRANSITIONS[a])]


async def _events(session, interaction_id) -> list[TimelineEvent]:
    rows = await session.scalars(
        select(TimelineEvent).where(TimelineEvent.interaction_id == interaction_id).order_by(TimelineEvent.id)
    )
    result = list(rows)
    await session.commit()
    return result


def test_every_state_is_reachable_and_every_interaction_can_end():
    """The graph itself: every state can be reached from ``created``, terminal states have no way
    out, and from every other state some path leads to an end (nothing can get stuck)."""

    def reachable(start: State) -> set[State]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reachable(State.CREATED) == set(State)
    for state in State:
        if state in TERMINAL_STATES:
            assert not TRANSITIONS[state], state
        else:
            assert state not in TRANSITIONS[state], f"{state} -> itself"
            assert reachable(state) & TERMINAL_STATES, f"{state} cannot end"


@pytest.mark.parametrize(("from_state", "to_state"), illegal_transitions(), ids=lambda s: s.value)
async def test_illegal_transition_is_409_and_changes_nothing(
    session, client, make_user, from_state, to_state
):
    _, headers = await make_user(Role.SUPERVISOR)
    interaction = await walk_to(session, await new_interaction(session), from_state)
    version_before = interaction.version  # the session's identity map refreshes `interaction` in place
    before_events = await _events(session, interaction.id)

    response = await client.post(
        f"/api/interactions/{interaction.id}/transition",
        json={"to_state": to_state.value, "reason": "testing"},
        headers=headers,
    )

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["from_state"] == from_state.value
    assert problem["to_state"] == to_state.value
    assert from_state.value in problem["detail"] and to_state.value in problem["detail"]
    after = await service.get_interaction(session, interaction.id)
    assert (after.state, after.version) == (from_state, version_before)
    assert [e.id for e in await _events(session, interaction.id)] == [e.id for e in before_events]


@pytest.mark.parametrize(("from_state", "to_state"), LEGAL, ids=lambda s: s.value)
async def test_legal_transition_sets_timestamp_version_and_one_event(session, from_state, to_state):
    interaction = await walk_to(session, await new_interaction(session), from_state)
    version_before = interaction.version
    before_events = await _events(session, interaction.id)
    started = utcnow()

    moved = await service.transition(
        session,
        interaction_id=interaction.id,
        to_state=to_state,
        actor_type=ActorType.SUPERVISOR,
        actor_id="sup-1",
        reason="why not",
    )
    await session.commit()

    assert moved.state is to_state
    assert moved.version == version_before + 1
    stamp = getattr(moved, service.STATE_TIMESTAMP[to_state])
    assert stamp is not None and started - timedelta(seconds=1) <= stamp <= utcnow()
    assert moved.updated_at == stamp
    events = await _events(session, interaction.id)
    assert len(events) == len(before_events) + 1
    event = events[-1]
    assert event.kind == "state_changed"
    assert (event.actor_type, event.actor_id) == (ActorType.SUPERVISOR, "sup-1")
    assert event.at == stamp
    assert event.customer_id == interaction.customer_id
    assert event.data["from"] == from_state.value and event.data["to"] == to_state.value
    assert event.data["reason"] == "why not" and event.data["version"] == moved.version


async def test_requeue_keeps_virtual_start_and_records_agent(session, make_user):
    user, _ = await make_user(Role.AGENT)
    agent = await make_agent(session, user)
    interaction = await new_interaction(session, enqueue=True)
    place = interaction.virtual_start_at
    offered = await service.transition(
        session,
        interaction_id=interaction.id,
        to_state=State.OFFERED,
        actor_type=ActorType.SYSTEM,
        actor_id=None,
        changes={"agent_id": agent.id},
    )
    assert offered.agent_id == agent.id
    back = await service.transition(
        session,
        interaction_id=interaction.id,
        to_state="queued",
        actor_type=ActorType.SYSTEM,
        actor_id=None,
        reason="offer timed out",
        changes={"agent_id": None},
    )
    await session.commit()
    assert back.agent_id is None
    assert back.virtual_start_at == place
    events = await _events(session, interaction.id)
    assert events[-2].data["agent_id"] == str(agent.id)
    assert events[-2].data["changes"] == {"agent_id": str(agent.id)}
    assert "agent_id" not in events[-1].data


async def test_stale_expected_version_is_409(session):
    interaction = await new_interaction(session, enqueue=True)
    iid, version = interaction.id, interaction.version  # rollback expires the loaded object
    with pytest.raises(Conflict) as exc:
        await service.transition(
            session,
            interaction_id=iid,
            to_state=State.OFFERED,
            actor_type=ActorType.SYSTEM,
            actor_id=None,
            expected_version=version - 1,
        )
    assert exc.value.field == "expected_version"
    await session.rollback()
    assert (await service.get_interaction(session, iid)).version == version


async def test_unknown_change_column_is_refused(session):
    interaction = await new_interaction(session, enqueue=True)
    with pytest.raises(Invalid) as exc:
        await service.transition(
            session,
            interaction_id=interaction.id,
            to_state=State.OFFERED,
            actor_type=ActorType.SYSTEM,
            actor_id=None,
            changes={"version": 99},
        )
    assert exc.value.field == "changes.version"


async def test_concurrent_transitions_exactly_one_wins(db, session, make_user):
    """Two writers race the same expected_version, each in its own session: one commits, one gets 409."""
    agents = []
    for _ in range(2):
        user, _ = await make_user(Role.AGENT)
        agents.append(await make_agent(session, user))
    interaction = await new_interaction(session, enqueue=True)
    version = interaction.version

    async def offer(agent: Agent) -> str:
        async with db.sessionmaker() as s:
            try:
                await service.transition(
                    s,
                    interaction_id=interaction.id,
                    to_state=State.OFFERED,
                    actor_type=ActorType.SYSTEM,
                    actor_id="engine",
                    expected_version=version,
                    changes={"agent_id": agent.id},
                )
                await s.commit()
                return f"won:{agent.id}"
            except Conflict:
                await s.rollback()
                return "conflict"

    outcomes = await asyncio.gather(*(offer(a) for a in agents))

    assert sorted(o == "conflict" for o in outcomes) == [False, True]
    winner = next(o for o in outcomes if o.startswith("won:")).removeprefix("won:")
    final = await service.get_interaction(session, interaction.id)
    assert final.state is State.OFFERED and final.version == version + 1
    assert str(final.agent_id) == winner
    offered_events = await session.scalar(
        select(func.count())
        .select_from(TimelineEvent)
        .where(
            TimelineEvent.interaction_id == interaction.id, TimelineEvent.data["to"].as_string() == "offered"
        )
    )
    assert offered_events == 1


async def test_many_concurrent_writers_one_wins(db, session):
    interaction = await new_interaction(session, enqueue=True)

    async def abandon() -> bool:
        async with db.sessionmaker() as s:
            try:
                await service.transition(
                    s,
                    interaction_id=interaction.id,
                    to_state=State.ABANDONED,
                    actor_type=ActorType.SYSTEM,
                    actor_id=None,
                )
                await s.commit()
                return True
            except Conflict:
                await s.rollback()
                return False

    results = await asyncio.gather(*(abandon() for _ in range(6)))
    assert results.count(True) == 1
    state_events = await session.scalar(
        select(func.count())
        .select_from(TimelineEvent)
        .where(TimelineEvent.interaction_id == interaction.id, TimelineEvent.kind == "state_changed")
    )
    assert state_events == 2  # created->queued at creation, then the one winning abandon


async def test_create_with_enqueue_writes_created_then_queued(session):
    interaction = await new_interaction(session, enqueue=True)
    assert interaction.state is State.QUEUED and interaction.version == 2
    assert interaction.queued_at == interaction.created_at == interaction.virtual_start_at
    events = await _events(session, interaction.id)
    assert [e.kind for e in events] == ["interaction_created", "state_changed"]
    assert events[1].data["from"] == "created" and events[1].data["to"] == "queued"
    stored = await session.get(Interaction, interaction.id)
    assert stored is not None and stored.state is State.QUEUED
