"""Group commit: the decisions of the commands taken in one read of the streams share ONE SQL
transaction, and each keeps its own outcome (routing.host.group). Real SQL (SQLite and
PostgreSQL) and real Redis; the commands are appended in one MULTI so the leader reads them at once.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from sqlalchemy import event, select, update

from interactions.models import Interaction, TimelineEvent
from interactions.states import State
from routing.host.lanes import CommandLanes
from switchboard import commands, replies
from switchboard.db import Database
from tests.factories import queued_chat, routing_floor, sql_transition
from tests.helpers import all_offers, eventually, leading_host, live_offers, offered, untouched
from workforce.models import Agent, Presence


class Commits:
    """COMMITs on the database's connections (the host's transactions)."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        self._engine = db.engine.sync_engine
        event.listen(self._engine, "commit", self._committed)

    def _committed(self, _conn: object) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self._engine, "commit", self._committed)


async def holding(db: Database, client, host, agents: int) -> list[tuple[uuid.UUID, str]]:
    """Every agent holds one connected chat (accepted through the engine): (interaction, agent)."""
    for n in range(agents):
        await queued_chat(db, client, n)
    by_agent = await offered(db, agents)
    for agent_id, offer in by_agent.items():
        reply = await commands.call(client, commands.Accept(offer_id=str(offer.id), agent_id=str(agent_id)))
        assert reply == {"ok": True}
    return [(o.interaction_id, str(a)) for a, o in by_agent.items()]


async def in_one_read(client, batch: list[commands.Command]) -> list[str]:
    """Append the commands atomically (one MULTI): the leader's next read takes them all."""
    ids = []
    async with client.pipeline(transaction=True) as pipe:
        for n, command in enumerate(batch):
            request_id = f"group-{n}-{uuid.uuid4().hex}"
            ids.append(request_id)
            _, payload = commands.encode(dataclasses.replace(command, request_id=request_id, reply=True))
            key = commands.urgent_stream_key() if command.urgent else commands.stream_key()
            pipe.xadd(key, {"c": payload})
        await pipe.execute()
    return ids


async def results(client, ids: list[str]) -> list[dict]:
    async def all_answered() -> bool:
        return all([await replies.stored_result(client, i) is not None for i in ids])

    await eventually(all_answered, what="every command answered")
    return [await replies.stored_result(client, i) for i in ids]


async def states(db: Database, ids: list[uuid.UUID]) -> dict[uuid.UUID, State]:
    async with db.sessionmaker() as s:
        rows = await s.execute(select(Interaction.id, Interaction.state).where(Interaction.id.in_(ids)))
        return dict(rows.all())


async def test_wrap_ups_and_completes_of_one_read_share_one_transaction(db, redis_handle, redis_sync):
    await routing_floor(db, agents=12, chat_max=1)
    async with leading_host(db, redis_handle) as (host, client):
        held = await holding(db, client, host, 12)
        commits = Commits(db)
        try:
            answers = await results(
                client,
                await in_one_read(
                    client, [commands.WrapUp(interaction_id=str(i), agent_id=a) for i, a in held]
                ),
            )
            wrapped = commits.count
            answers += await results(
                client,
                await in_one_read(
                    client, [commands.Complete(interaction_id=str(i), agent_id=a) for i, a in held]
                ),
            )
            completed = commits.count - wrapped
        finally:
            commits.close()
        assert answers == [{"ok": True}] * 24
        assert set((await states(db, [i for i, _ in held])).values()) == {State.COMPLETED}
        # One transaction per read (24 before: one per command).
        assert (wrapped, completed) == (1, 1)
        # Each decision's timeline row and its interval counters are there, as written one by one.
        async with db.sessionmaker() as s:
            kinds = (
                await s.execute(
                    select(TimelineEvent.data).where(
                        TimelineEvent.interaction_id.in_([i for i, _ in held]),
                        TimelineEvent.kind == "state_changed",
                    )
                )
            ).scalars()
            moves = sorted((d["from"], d["to"]) for d in kinds)
        assert moves.count(("connected", "wrap_up")) == 12
        assert moves.count(("wrap_up", "completed")) == 12


async def test_one_refused_decision_in_a_group_fails_alone(db, redis_handle, redis_sync):
    agent_ids, _ = await routing_floor(db, agents=14, chat_max=1)
    async with leading_host(db, redis_handle) as (host, client):
        held = await holding(db, client, host, 12)
        # Two agents stay free, each with a live offer that must survive the refusal.
        for n in (100, 101):
            await queued_chat(db, client, n)
        others = list((await offered(db, 2)).values())
        before = await all_offers(db)

        # The 6th interaction is finished straight in SQL (the agent's own screen) behind the
        # engine's back: its wrap-up will be refused by SQL, in the middle of the group.
        bad, bad_agent = held[5]
        await sql_transition(db, bad, State.WRAP_UP)
        await sql_transition(db, bad, State.COMPLETED)
        commits = Commits(db)
        try:
            answers = await results(
                client,
                await in_one_read(
                    client, [commands.WrapUp(interaction_id=str(i), agent_id=a) for i, a in held]
                ),
            )
        finally:
            commits.close()

        assert answers[5]["ok"] is False
        assert answers[:5] + answers[6:] == [{"ok": True}] * 11
        now = await states(db, [i for i, _ in held])
        assert now.pop(bad) is State.COMPLETED
        assert set(now.values()) == {State.WRAP_UP}
        # Repaired locally: the engine forgot the finished work, the rest of the floor untouched.
        assert not host.engine.knows(str(bad))
        assert host.engine.held_by(bad_agent) == {}
        untouched(before, await all_offers(db), others)
        # The five before it in one transaction, the six after it in another (plus the refused
        # one's repair), not one per command.
        assert commits.count <= 4, commits.count
        # The freed agent gets the next arrival: the engine's view of them matches SQL.
        nxt = await queued_chat(db, client, 200)
        await eventually(
            lambda: _offered_to(db, nxt, bad_agent), what="the next arrival offered to the repaired agent"
        )
    assert len(agent_ids) == 14


async def _offered_to(db: Database, interaction_id: uuid.UUID, agent_id: str) -> bool:
    return [str(o.agent_id) for o in await live_offers(db, interaction_id)] == [agent_id]


async def _set_presence(db: Database, presence: Presence, *agent_ids: uuid.UUID) -> None:
    """As the desktop's status route does before it tells the engine (AgentChanged)."""
    async with db.sessionmaker() as s:
        await s.execute(update(Agent).where(Agent.id.in_(agent_ids)).values(presence=presence))
        await s.commit()


async def test_agent_changes_of_one_read_share_one_transaction(db, redis_handle, redis_sync):
    """A shift start: twelve agents go available at once. Their status clicks reach the engine in
    one read; their decisions (the offers the waiting chats get) are written together."""
    agent_ids, _ = await routing_floor(db, agents=12, chat_max=1)
    await _set_presence(db, Presence.BREAK, *agent_ids)
    async with leading_host(db, redis_handle) as (host, client):
        waiting = [await queued_chat(db, client, n) for n in range(12)]

        async def all_queued() -> bool:
            return all(host.engine.knows(str(i)) for i in waiting)

        await eventually(all_queued, what="the engine holds the chats, every agent on break")
        assert await live_offers(db) == []
        await _set_presence(db, Presence.AVAILABLE, *agent_ids)
        commits = Commits(db)
        try:
            answers = await results(
                client, await in_one_read(client, [commands.AgentChanged(agent_id=str(a)) for a in agent_ids])
            )
        finally:
            commits.close()
        assert answers == [{"ok": True}] * 12
        by_agent = await offered(db, 12)
        assert set(by_agent) == set(agent_ids)  # one chat each, as chat_max allows
        assert commits.count == 1  # twelve before: one transaction per click

        # A change of an agent that a waiting decision names is read after that decision is
        # written (the engine writes that agent's presence itself, e.g. not-responding): here
        # agent 0 accepts and goes on break in the same read; agent 1 logs off, joining the group.
        first, second = agent_ids[0], agent_ids[1]
        await _set_presence(db, Presence.BREAK, first)
        await _set_presence(db, Presence.OFFLINE, second)
        commits = Commits(db)
        try:
            answers = await results(
                client,
                await in_one_read(
                    client,
                    [
                        commands.Accept(offer_id=str(by_agent[first].id), agent_id=str(first)),
                        commands.AgentChanged(agent_id=str(second)),
                        commands.AgentChanged(agent_id=str(first)),
                    ],
                ),
            )
        finally:
            commits.close()
        assert answers == [{"ok": True}] * 3
        # The accept and the log-off together, then agent 0's change on its own: two, not one
        # (a change read past its agent's own waiting decision) nor three (one per command).
        assert commits.count == 2, commits.count
        assert (await states(db, [by_agent[first].interaction_id]))[
            by_agent[first].interaction_id
        ] is State.CONNECTED
        assert [o.agent_id for o in await live_offers(db, by_agent[second].interaction_id)] == []
        assert host.engine.holder_of(str(by_agent[first].interaction_id)) == str(first)


@pytest.mark.usefixtures("redis_sync")
async def test_the_cursor_moves_past_a_batch_only_once_its_decisions_are_written(redis_handle):
    """A leader that dies between handling a read and writing its decisions leaves the cursor
    before that read: the next leader handles those commands again (they are idempotent against
    SQL), none is skipped."""
    client = redis_handle.async_client()
    try:
        sent = [commands.Enqueue(interaction_id=str(uuid.uuid4())) for _ in range(5)]
        for command in sent:
            await commands.send(client, command)
        handled: list[str] = []

        async def handle(raw: dict) -> None:
            handled.append(raw["interaction_id"])

        async def dies() -> None:
            raise ConnectionError("the leader died before its group commit")

        lanes = CommandLanes(client, "default")
        await lanes.load()
        with pytest.raises(ConnectionError):
            await lanes.serve_batch(handle, block_ms=100, flush=dies)
        assert handled == [c.interaction_id for c in sent]

        async def written() -> None:
            return None

        again = CommandLanes(client, "default")  # the next leader
        await again.load()
        handled.clear()
        await again.serve_batch(handle, block_ms=100, flush=written)
        assert handled == [c.interaction_id for c in sent]
        handled.clear()
        await again.serve_batch(handle, block_ms=10, flush=written)
        assert handled == []  # written now: not handled a third time
    finally:
        await client.aclose()
