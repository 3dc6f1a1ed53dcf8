"""PostgreSQL's create writes an interaction in ONE statement (``interactions.lean_create``).

It must leave exactly what the ORM path leaves (``service.create_interaction``, the path SQLite
always takes and the one the lean statement hands back to): the same customer, identity,
interaction and timeline rows and the same response body, and it must refuse exactly when the ORM
path refuses, naming the same field, writing nothing. ``test_both_paths_create_alike`` runs both
from the same rows (a fixed clock, fixed ids for what was there before), one shape at a time: new
and known customer, an identity still on a merged profile, unknown queue, linked interactions
(present and missing), an agent's outbound contact (present and missing agent), not queued, and
two failures at once. Each refusing shape fails if its check goes missing from either path.
Both paths execute one plan (``interactions.create_plan``); ``test_create_plan`` runs them through
the API over every create shape, and ``test_without_the_agent_check_both_writers_fail`` here
removes the one step the API cannot show (agents' own contacts take the ORM path alone).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer, Identity, IdentityKind
from interactions import create_plan, lean_create, service
from interactions.models import ActorType, Interaction, TimelineEvent
from interactions.schemas import InteractionCreate
from interactions.states import Channel, Direction, State
from switchboard.auth.models import Role, User
from switchboard.db import Database
from switchboard.errors import Invalid
from tests.helpers import truncate_all
from workforce.models import Agent, Queue

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
BEFORE = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
PHONE = "+447911100001"
ACTOR_ID = "3f1c0000-0000-4000-8000-000000000001"


def fixed(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"switchboard-test:{name}")


QUEUE, KNOWN, OLD, SURVIVOR, LINKED, AGENT, AGENT_USER = (
    fixed(n) for n in ("queue", "known", "old", "survivor", "linked", "agent", "agent-user")
)
MISSING = fixed("missing")


async def _given(session: AsyncSession, rows: frozenset[str]) -> None:
    """The rows a shape starts from, identical (ids and times) for both paths."""
    session.add(Queue(id=QUEUE, name="cards", display_name="Cards", channels=["voice", "chat"]))
    if "known" in rows:
        session.add(Customer(id=KNOWN, display_name="Kim Known", language="cy", created_at=BEFORE))
        await session.flush()
        session.add(Identity(id=fixed("known-id"), customer_id=KNOWN, kind=IdentityKind.PHONE, value=PHONE))
    if "merged" in rows:
        # The identity still on the merged profile: the moment between a merge's two updates.
        session.add(Customer(id=SURVIVOR, display_name="Sam Survivor", language="en", created_at=BEFORE))
        await session.flush()
        session.add(Customer(id=OLD, display_name="Sam Old", merged_into_id=SURVIVOR, created_at=BEFORE))
        await session.flush()
        session.add(Identity(id=fixed("old-id"), customer_id=OLD, kind=IdentityKind.PHONE, value=PHONE))
    if "linked" in rows:
        session.add(Customer(id=fixed("other"), display_name="Olly Other", created_at=BEFORE))
        await session.flush()
        session.add(
            Interaction(
                id=LINKED,
                customer_id=fixed("other"),
                channel=Channel.CHAT,
                direction=Direction.INBOUND,
                state=State.COMPLETED,
                created_at=BEFORE,
                virtual_start_at=BEFORE,
                updated_at=BEFORE,
            )
        )
    if "agent" in rows:
        session.add(
            User(id=AGENT_USER, username="ada", display_name="Ada", role=Role.AGENT, password_hash="x")
        )
        await session.flush()
        session.add(Agent(id=AGENT, user_id=AGENT_USER, display_name="Ada", created_at=BEFORE))
    await session.commit()


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    body: dict[str, Any] = dataclasses.field(default_factory=dict)
    rows: frozenset[str] = frozenset()
    agent_id: uuid.UUID | None = None
    refused: str | None = None  # the field both paths name; nothing written
    lean_hands_back: bool = False  # the lean statement cannot decide: nothing written, ORM path next
    customer: uuid.UUID | None = None  # the existing profile the interaction must belong to


SHAPES = [
    Shape("new customer, queued"),
    Shape("known customer", rows=frozenset({"known"}), customer=KNOWN),
    Shape(
        "identity on a merged profile", rows=frozenset({"merged"}), lean_hands_back=True, customer=SURVIVOR
    ),
    Shape("not queued, no queue", body={"enqueue": False, "queue": None}),
    Shape("unknown queue", body={"queue": "nope"}, refused="queue"),
    Shape(
        "linked to existing interactions",
        body={"parent_id": str(LINKED), "callback_of_id": str(LINKED), "follow_up_of_id": str(LINKED)},
        rows=frozenset({"linked"}),
    ),
    Shape("missing parent", body={"parent_id": str(MISSING)}, refused="parent_id"),
    Shape("missing callback", body={"callback_of_id": str(MISSING)}, refused="callback_of_id"),
    Shape("missing follow-up", body={"follow_up_of_id": str(MISSING)}, refused="follow_up_of_id"),
    Shape(
        "agent's outbound contact",
        body={"direction": "outbound", "enqueue": False},
        rows=frozenset({"agent"}),
        agent_id=AGENT,
    ),
    Shape(
        "missing agent",
        body={"direction": "outbound", "enqueue": False},
        agent_id=MISSING,
        refused="agent_id",
    ),
    Shape(
        "two failures: the queue is named first",
        body={"queue": "nope", "parent_id": str(MISSING)},
        refused="queue",
    ),
]


def _body(shape: Shape) -> InteractionCreate:
    body: dict[str, Any] = {
        "channel": "voice",
        "identity": {"kind": "phone", "value": "+44 7911 100001"},
        "queue": "cards",
        "subject": "Card declined abroad",
        "topic": "cards",
        "priority": 7,
        "required_skills": {"cards": 3},
        "attributes": {"ivr": {"path": [1, 4]}},
        "customer_name": "Ann Example",
        **shape.body,
    }
    return InteractionCreate.model_validate(body)


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    return value


async def _rows(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every row the create may touch, in an order that does not depend on generated ids."""
    order = {
        Customer: (Customer.display_name,),
        Identity: (Identity.value, Identity.customer_id),
        Interaction: (Interaction.created_at, Interaction.channel),
        TimelineEvent: (TimelineEvent.id,),
    }
    found: dict[str, list[dict[str, Any]]] = {}
    async with db.sessionmaker() as s:
        for model, keys in order.items():
            rows = await s.scalars(select(model).order_by(*keys))
            found[model.__tablename__] = [
                {c.key: _plain(getattr(r, c.key)) for c in model.__table__.columns} for r in rows
            ]
        await s.commit()
    return found


def _normalised(value: Any, names: dict[str, str]) -> Any:
    """Generated ids become ``<new-N>`` in order of appearance (fixed ids stay as they are)."""
    if isinstance(value, dict):
        return {k: _normalised(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v, names) for v in value]
    if isinstance(value, str):
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            return value
        if parsed in FIXED_IDS:
            return value
        return names.setdefault(str(parsed), f"<new-{len(names)}>")
    return value


FIXED_IDS = {QUEUE, KNOWN, OLD, SURVIVOR, LINKED, AGENT, AGENT_USER, MISSING, fixed("other")}
FIXED_IDS |= {fixed("known-id"), fixed("old-id"), uuid.UUID(ACTOR_ID)}


@dataclasses.dataclass
class Outcome:
    refused: str | None
    handed_back: bool
    written: dict[str, list[dict[str, Any]]]  # rows added by the create (normalised)
    body: dict[str, Any] | None


async def _outcome(db: Database, shape: Shape, *, lean: bool) -> Outcome:
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await _given(s, shape.rows)
    before = await _rows(db)
    data = _body(shape)
    refused, handed_back, body = None, False, None
    actor_type = ActorType.AGENT if shape.agent_id else ActorType.SUPERVISOR
    if lean:
        try:
            created = await lean_create.create(
                db.engine,
                data=data,
                actor_type=actor_type,
                actor_id=ACTOR_ID,
                default_region="GB",
                agent_id=shape.agent_id,
                now=NOW,
            )
            body = json.loads(created.body)
        except Invalid as exc:
            refused = exc.field
        except lean_create.Fallback:
            handed_back = True
    else:
        async with db.sessionmaker() as s:
            try:
                interaction = await service.create_interaction(
                    s,
                    data=data,
                    actor=service.Actor(actor_type, ACTOR_ID),
                    default_region="GB",
                    agent_id=shape.agent_id,
                    now=NOW,
                )
                await s.commit()
                read = (await service.read_models(s, [interaction]))[0]
                body = read.model_dump(mode="json")
                await s.commit()
            except Invalid as exc:
                await s.rollback()
                refused = exc.field
    after = await _rows(db)
    added = {table: [r for r in rows if r not in before[table]] for table, rows in after.items()}
    names: dict[str, str] = {}
    return Outcome(refused, handed_back, _normalised(added, names), _normalised(body, names))


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
async def test_both_paths_create_alike(pg_db: Database, shape: Shape) -> None:
    lean = await _outcome(pg_db, shape, lean=True)
    orm = await _outcome(pg_db, shape, lean=False)

    if shape.refused is not None:
        assert (lean.refused, orm.refused) == (shape.refused, shape.refused)
        assert lean.written == orm.written == {t: [] for t in orm.written}, "a refusal writes nothing"
        return
    assert orm.refused is None and lean.refused is None
    assert len(orm.written["interactions"]) == 1, "the ORM path always decides"
    if shape.customer is not None:
        assert orm.written["interactions"][0]["customer_id"] == str(shape.customer)
        assert not orm.written["customers"], "a known customer is not created again"
    if shape.lean_hands_back:
        assert lean.handed_back and lean.written == {t: [] for t in lean.written}
        return
    assert not lean.handed_back
    assert not _differences(lean.written, orm.written), _differences(lean.written, orm.written)
    assert not _differences(lean.body, orm.body), _differences(lean.body, orm.body)


def _differences(lean: Any, orm: Any, path: str = "") -> list[str]:
    """Where the two paths' results differ, as ``path: lean != orm`` lines."""
    if isinstance(lean, dict) and isinstance(orm, dict):
        return [
            d
            for k in sorted(set(lean) | set(orm))
            for d in _differences(lean.get(k), orm.get(k), f"{path}.{k}")
        ]
    if isinstance(lean, list) and isinstance(orm, list) and len(lean) == len(orm):
        return [
            d
            for i, (a, b) in enumerate(zip(lean, orm, strict=True))
            for d in _differences(a, b, f"{path}[{i}]")
        ]
    return [] if lean == orm else [f"{path}: lean {lean!r} != orm {orm!r}"]


async def test_without_the_agent_check_both_writers_fail(
    pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation: the plan without its agent check; a missing agent is then no 422 on either writer
    (the foreign key refuses the row: the ORM path raises, the statement hands back)."""
    (shape,) = [s for s in SHAPES if s.name == "missing agent"]
    assert (await _outcome(pg_db, shape, lean=True)).refused == "agent_id"
    steps = tuple(s for s in create_plan.CREATE_STEPS if s.name != create_plan.AGENT_EXISTS)
    monkeypatch.setattr(create_plan, "CREATE_STEPS", steps)
    lean = await _outcome(pg_db, shape, lean=True)
    assert lean.refused is None and lean.handed_back
    with pytest.raises(IntegrityError):
        await _outcome(pg_db, shape, lean=False)
