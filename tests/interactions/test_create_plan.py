"""Both create writers execute ONE plan (``interactions.create_plan``), shown through the API.

``POST /api/interactions`` on PostgreSQL has two writers: the one statement (``lean_create``) and
the ORM path (``service.execute_plan``) it hands back to. ``test_both_writers_answer_alike`` runs
every shape of the table through the API twice from the same rows and clock, once as it runs
(the statement) and once with the statement handing back (the ORM path, the production Fallback
branch), and compares the rows written and the answers; both must also meet the shape's own
expectations. ``test_removing_a_plan_step_fails_the_table`` removes each step of
``CREATE_STEPS`` in turn and sees the expectations of a shape showing it fail on each writer, so
each writer executes the plan rather than a copy of its own decisions. (Agents' own contacts
take the ORM path alone; the agent check is shown by test_create_equivalence's function-level
table.)
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer, Identity, IdentityKind
from interactions import create_plan, lean_create
from interactions.create_plan import CREATE_STEPS
from interactions.models import IdempotencyKey, Interaction, TimelineEvent
from interactions.states import Channel, Direction, State
from switchboard.auth.models import Role
from switchboard.db import Database
from tests.helpers import truncate_all
from workforce.models import Queue

# Both writers run at one fixed clock; near the real one, which judges a key's expiry.
NOW = datetime.now(UTC).replace(microsecond=0)
BEFORE = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
CARD = "4111 1111 1111 1111"


def fixed(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"switchboard-plan-test:{name}")


QUEUE, KNOWN, LINKED, OTHER, MISSING = (fixed(n) for n in ("queue", "known", "linked", "other", "missing"))
# A known customer holds one identity of each kind (normalised, as stored).
KNOWN_IDENTITIES = {
    "phone": "+447911100001",
    "email": "kim@example.com",
    "chat": "visitor-42",
    "app": "app-7",
}
# How a request may spell them.
SPELT = {"phone": "07911 100001", "email": "Kim@Example.COM", "chat": " visitor-42 ", "app": "app-7"}
NEW_IDENTITIES = {"phone": "+447911100002", "email": "new@example.com", "chat": "visitor-99", "app": "app-99"}
FIXED_IDS = {QUEUE, KNOWN, LINKED, OTHER, MISSING} | {fixed(f"id-{k}") for k in KNOWN_IDENTITIES}


async def _given(session: AsyncSession) -> None:
    """The rows every shape starts from, identical (ids and times) for both writers."""
    session.add(Queue(id=QUEUE, name="cards", display_name="Cards", channels=["voice", "chat"]))
    session.add(
        Customer(id=KNOWN, display_name="Kim Known", language="cy", created_at=BEFORE, updated_at=BEFORE)
    )
    session.add(Customer(id=OTHER, display_name="Olly Other", created_at=BEFORE, updated_at=BEFORE))
    await session.flush()
    for kind, value in KNOWN_IDENTITIES.items():
        session.add(
            Identity(
                id=fixed(f"id-{kind}"),
                customer_id=KNOWN,
                kind=IdentityKind(kind),
                value=value,
                created_at=BEFORE,
            )
        )
    session.add(
        Interaction(
            id=LINKED,
            customer_id=OTHER,
            channel=Channel.CHAT,
            direction=Direction.INBOUND,
            state=State.COMPLETED,
            created_at=BEFORE,
            virtual_start_at=BEFORE,
            updated_at=BEFORE,
        )
    )
    await session.commit()


REFERENCE_FIELDS = ("queue", "parent_id", "callback_of_id", "follow_up_of_id")
ALL_EVENTS = ("customer_created", "interaction_created", "state_changed")
KNOWN_EVENTS = ("interaction_created", "state_changed")


@dataclasses.dataclass(frozen=True)
class Expect:
    """What the shape's last answer and the rows written must be, whichever writer ran."""

    status: int = 201
    field: str | None = None  # a 4xx: the one field named; nothing written
    events: tuple[str, ...] = ALL_EVENTS  # kinds written, in order
    customer: str = "new"  # "new" (one added) or "known" (KNOWN's)
    identity: str | None = None  # the contact identity's stored value
    state: State = State.QUEUED
    queued_in_queue: bool = True
    language: str | None = None
    display_name: str | None = None  # of a new customer
    interactions: int = 1
    keys: int = 0  # idempotency_keys rows
    replayed: bool = False  # the last answer is a replay


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    body: dict[str, Any] = dataclasses.field(default_factory=dict)
    key: str | None = None  # Idempotency-Key
    then: dict[str, Any] | None = None  # a second request with the same key: these body changes
    expect: Expect = Expect()
    shows: tuple[str, ...] = ()  # CREATE_STEPS whose removal this shape's expectations catch


S = create_plan
SHAPES: list[Shape] = [
    *(
        Shape(
            f"new customer by {kind}",
            {
                "identity": {"kind": kind, "value": NEW_IDENTITIES[kind]},
                "customer_name": None,
                "language": None,
            },
            expect=Expect(
                identity=NEW_IDENTITIES[kind],
                language="en",
                display_name={"phone": "Caller 0002", "email": "new"}.get(kind, "Web visitor"),
            ),
            shows=(S.NEW_CUSTOMER_DEFAULTS, S.CUSTOMER_CREATED_EVENT, S.INTERACTION_CREATED_EVENT, S.ENQUEUE)
            if kind == "phone"
            else (),
        )
        for kind in KNOWN_IDENTITIES
    ),
    *(
        Shape(
            f"known customer by {kind}",
            {"identity": {"kind": kind, "value": SPELT[kind]}, "language": None},
            expect=Expect(
                events=KNOWN_EVENTS, customer="known", identity=KNOWN_IDENTITIES[kind], language="cy"
            ),
            shows=(S.NORMALISE_IDENTITY, S.LANGUAGE_FROM_CUSTOMER) if kind == "phone" else (),
        )
        for kind in KNOWN_IDENTITIES
    ),
    Shape(
        "named new customer in Welsh",
        {"language": "cy"},
        expect=Expect(language="cy", display_name="Ann Example"),
    ),
    *(
        Shape(f"{channel} channel", {"channel": channel, "queue": None}, expect=Expect(queued_in_queue=False))
        for channel in ("voice", "chat", "email", "ticket")
    ),
    Shape(
        "priority, skills, attributes",
        {"priority": -1000, "required_skills": {"cards": 5, "fr": 1}, "attributes": {"a": [1, {"b": None}]}},
    ),
    Shape(
        "card numbers in free text",
        {"subject": f"card {CARD}", "customer_name": f"Ann {CARD}", "attributes": {"note": f"pan {CARD}"}},
        expect=Expect(display_name="Ann ************1111"),
        shows=(S.MASK_CARD_NUMBERS,),
    ),
    Shape("not queued", {"enqueue": False}, expect=Expect(events=ALL_EVENTS[:2], state=State.CREATED)),
    Shape(
        "outbound by a supervisor",
        {"direction": "outbound"},
        expect=Expect(events=ALL_EVENTS[:2], state=State.CREATED),
    ),
    Shape(
        "linked to an existing interaction",
        {"parent_id": str(LINKED), "callback_of_id": str(LINKED), "follow_up_of_id": str(LINKED)},
    ),
    Shape(
        "Idempotency-Key, first use", key="k-first", expect=Expect(keys=1), shows=(S.KEEP_IDEMPOTENCY_KEY,)
    ),
    Shape(
        "Idempotency-Key replayed",
        key="k-replay",
        then={},
        expect=Expect(keys=1, replayed=True),
        shows=(S.KEEP_IDEMPOTENCY_KEY,),
    ),
    Shape(
        "Idempotency-Key with another body",
        key="k-conflict",
        then={"priority": 8},
        expect=Expect(status=422, field="header.Idempotency-Key"),
        shows=(S.KEEP_IDEMPOTENCY_KEY,),
    ),
    # Refusals: the same 4xx naming the same field, nothing written.
    Shape("bad Idempotency-Key", key="k" * 300, expect=Expect(status=422, field="header.Idempotency-Key")),
    Shape(
        "unknown queue", {"queue": "nope"}, expect=Expect(status=422, field="queue"), shows=(S.QUEUE_EXISTS,)
    ),
    Shape(
        "missing parent",
        {"parent_id": str(MISSING)},
        expect=Expect(status=422, field="parent_id"),
        shows=(S.PARENT_EXISTS,),
    ),
    Shape(
        "missing called-back interaction",
        {"callback_of_id": str(MISSING)},
        expect=Expect(status=422, field="callback_of_id"),
        shows=(S.CALLBACK_EXISTS,),
    ),
    Shape(
        "missing followed-up interaction",
        {"follow_up_of_id": str(MISSING)},
        expect=Expect(status=422, field="follow_up_of_id"),
        shows=(S.FOLLOW_UP_EXISTS,),
    ),
    Shape(
        "two missing rows: the queue is named first",
        {"queue": "nope", "parent_id": str(MISSING)},
        expect=Expect(status=422, field="queue"),
    ),
    *(
        Shape(
            f"invalid {kind} identity",
            {"identity": {"kind": kind, "value": value}},
            expect=Expect(status=422, field="identity.value"),
            shows=(S.NORMALISE_IDENTITY,) if kind == "phone" else (),
        )
        for kind, value in (
            ("phone", "12"),
            ("email", "not-an-email"),
            ("chat", "bad id!"),
            ("app", "x" * 200),
        )
    ),
    Shape(
        "invalid identity and unknown queue: the identity is named first",
        {"identity": {"kind": "phone", "value": "12"}, "queue": "nope"},
        expect=Expect(status=422, field="identity.value"),
    ),
    Shape("priority out of range", {"priority": 5000}, expect=Expect(status=422, field="body.priority")),
    Shape("unknown channel", {"channel": "fax"}, expect=Expect(status=422, field="body.channel")),
]


def _body(shape: Shape) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "voice",
        "identity": {"kind": "phone", "value": "+44 7911 100002"},
        "queue": "cards",
        "subject": "Card declined abroad",
        "topic": "cards",
        "priority": 7,
        "required_skills": {"cards": 3},
        "attributes": {"ivr": {"path": [1, 4]}},
        "customer_name": "Ann Example",
        **shape.body,
    }
    return {k: v for k, v in body.items() if v is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    return value


TABLES = (Customer, Identity, Interaction, TimelineEvent, IdempotencyKey)


async def _rows(db: Database) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    async with db.sessionmaker() as s:
        for model in TABLES:
            table = model.__table__  # type: ignore[attr-defined]
            rows = await s.execute(select(table).order_by(*table.primary_key.columns))
            mapped = [{k: _plain(v) for k, v in row._mapping.items()} for row in rows]
            # Events in id order (the order written); rows keyed by a generated uuid in a stable one.
            found[table.name] = (
                mapped
                if model is TimelineEvent
                else sorted(mapped, key=lambda r: json.dumps(r, sort_keys=True, default=str))
            )
        await s.commit()
    return found


def _normalised(value: Any, names: dict[str, str]) -> Any:
    """Generated ids become ``<new-N>`` in order of appearance; fixed ids stay."""
    if isinstance(value, dict):
        return {k: _normalised(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v, names) for v in value]
    if isinstance(value, str):
        for raw, name in names.items():  # ids inside longer strings: a key's owner, a Location
            if raw in value and value != raw:
                value = value.replace(raw, name)
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            return names.get(value, value)
        if parsed in FIXED_IDS:
            return value
        return names.setdefault(str(parsed), f"<new-{len(names)}>")
    return value


@dataclasses.dataclass
class Outcome:
    answers: list[dict[str, Any]]
    written: dict[str, list[dict[str, Any]]]


async def _outcome(db: Database, client: Any, make_user: Any, shape: Shape) -> Outcome:
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await _given(s)
    user, headers = await make_user(Role.SUPERVISOR, username="sam")
    before = await _rows(db)
    requests = [_body(shape)] + ([{**_body(shape), **shape.then}] if shape.then is not None else [])
    answers = []
    for body in requests:
        extra = {"Idempotency-Key": shape.key} if shape.key is not None else {}
        response = await client.post("/api/interactions", json=body, headers={**headers, **extra})
        answers.append(
            {
                "status": response.status_code,
                "body": response.json(),
                "location": response.headers.get("location"),
                "replayed": response.headers.get("idempotent-replayed"),
            }
        )
    after = await _rows(db)
    added = {table: [r for r in rows if r not in before[table]] for table, rows in after.items()}
    names = {str(user.id): "<user>"}
    return Outcome(_normalised(answers, names), _normalised(added, names))


def _check(shape: Shape, outcome: Outcome) -> None:
    """The shape's own expectations (what either writer must do), not a comparison."""
    expect, last, written = shape.expect, outcome.answers[-1], outcome.written
    assert last["status"] == expect.status, last
    assert CARD not in json.dumps(outcome.__dict__, default=str), "a card number was stored or answered"
    if expect.field is not None:
        assert [e["field"] for e in last["body"]["errors"]] == [expect.field], last["body"]
        if shape.then is None:
            assert all(not rows for rows in written.values()), "a refusal writes nothing"
        else:  # the first request's rows only
            assert len(written["interactions"]) == 1 and len(written["idempotency_keys"]) == 1
        return
    assert len(written["interactions"]) == expect.interactions
    (interaction,) = written["interactions"]
    assert [e["kind"] for e in written["timeline_events"]] == list(expect.events)
    assert len(written["idempotency_keys"]) == expect.keys
    assert (last["replayed"] == "true") is expect.replayed
    assert interaction["state"] == expect.state.value == last["body"]["state"]
    assert (interaction["queue_id"] is not None) is expect.queued_in_queue
    if expect.customer == "known":
        assert interaction["customer_id"] == str(KNOWN) and not written["customers"]
    else:
        (customer,) = written["customers"]
        assert interaction["customer_id"] == customer["id"] and len(written["identities"]) == 1
        if expect.display_name is not None:
            assert customer["display_name"] == expect.display_name
    if expect.identity is not None:
        assert interaction["contact_identity"]["value"] == expect.identity
    if expect.language is not None:
        assert interaction["language"] == expect.language == last["body"]["language"]
    assert last["body"]["id"] == interaction["id"] and last["location"].endswith(interaction["id"])


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: the one-statement writer is PostgreSQL's (SQLite's path: test_create_api)."""
    return postgres_url


@pytest.fixture
def statement_hands_back(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``hand_back()``: from now on the statement writes nothing and hands back, as it does on a
    race or a merged profile, so the API executes the same plan on the ORM path."""

    def hand_back() -> None:
        async def fallback(engine: Any, plan: Any) -> Any:
            raise lean_create.Fallback("handed back by the test")

        monkeypatch.setattr(lean_create, "execute", fallback)

    return hand_back


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(create_plan, "utcnow", lambda: NOW)


@pytest.mark.usefixtures("fixed_clock")
@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
async def test_both_writers_answer_alike(
    db, client, make_user, statement_hands_back, lean_outcomes, shape: Shape
) -> None:
    lean = await _outcome(db, client, make_user, shape)
    _check(shape, lean)
    # The first run went through the statement whenever the plan got that far, and it decided.
    assert "fallback" not in lean_outcomes
    reached = shape.expect.status == 201 or shape.expect.field in REFERENCE_FIELDS
    assert bool(lean_outcomes) is (reached or shape.then is not None), lean_outcomes
    statement_hands_back()
    orm = await _outcome(db, client, make_user, shape)
    _check(shape, orm)
    assert lean.answers == orm.answers
    assert lean.written == orm.written


def test_every_step_is_shown_by_some_shape() -> None:
    """A step added to CREATE_STEPS needs a shape here whose expectations catch its removal
    (the agent check's is in test_create_equivalence: agents' contacts take the ORM path alone)."""
    shown = {step for shape in SHAPES for step in shape.shows} | {create_plan.AGENT_EXISTS}
    assert shown == {step.name for step in CREATE_STEPS}


# The ORM writer's column types mask card numbers on their own (defence in depth), so without the
# plan's masking step only the statement stores them: the comparison above then fails too.
CAUGHT_ON = {create_plan.MASK_CARD_NUMBERS: ("lean",)}
MUTATIONS = [(step.name, shape) for step in CREATE_STEPS for shape in SHAPES if step.name in shape.shows]


@pytest.mark.usefixtures("fixed_clock")
@pytest.mark.parametrize("step, shape", MUTATIONS, ids=[f"{s} / {sh.name}" for s, sh in MUTATIONS])
async def test_removing_a_plan_step_fails_the_table(
    db, client, make_user, statement_hands_back, monkeypatch: pytest.MonkeyPatch, step: str, shape: Shape
) -> None:
    """Mutation, step by step: without it, the shape's expectations fail on each writer."""
    monkeypatch.setattr(create_plan, "CREATE_STEPS", tuple(s for s in CREATE_STEPS if s.name != step))
    for writer in ("lean", "orm"):
        if writer == "orm":
            statement_hands_back()
        try:
            outcome = await _outcome(db, client, make_user, shape)
            _check(shape, outcome)
        except (AssertionError, DBAPIError):  # an expectation failed, or the database refused
            caught = True
        else:
            caught = False
        assert caught is (writer in CAUGHT_ON.get(step, ("lean", "orm"))), (writer, step)
