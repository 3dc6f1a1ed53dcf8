"""What creating an interaction decides: ONE plan, computed once, executed by either writer.

Two writers exist for speed: the ORM path (``service.execute_plan``: every database, and every
caller but the API's hot path) and ONE PostgreSQL statement (``lean_create.execute``: the API's
``POST /api/interactions``). Neither decides anything: ``plan_create`` applies ``CREATE_STEPS``
in order to the request, and the result says which rows must exist (``references``), the customer
and identity rows to insert when the identity is unknown, the interaction row, its timeline
events, and the Idempotency-Key row. A step added, changed or removed here changes both writers
at once; ``tests/interactions/test_create_equivalence.py`` runs both from a table of create
shapes, and removes each step in turn to see both writers change.

What the writers still do themselves is only what depends on the rows they find: a known
identity's customer (new rows otherwise), the queue's id, the customer's language when the plan
says to fall back to it, and which reference is missing.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from customers.identity import normalise_identity
from customers.models import Customer, Identity, IdentityKind
from customers.service import customer_created_data, placeholder_name
from interactions import idempotency
from interactions.models import ActorType, IdempotencyKey, Interaction
from interactions.schemas import InteractionCreate
from interactions.states import AGENT_KEY, Direction, State, can_transition, transition_data
from switchboard.db import Base, new_id, utcnow
from switchboard.pii import mask_card_numbers, mask_deep
from workforce.models import Agent, Queue


@functools.lru_cache(maxsize=8192)
def normalised_identity(kind: IdentityKind, raw: str, default_region: str) -> str:
    """``customers.identity.normalise_identity`` (pure), remembered: phone parsing is costly and a
    contact centre sees the same callers again. Invalid input raises (and is not remembered)."""
    return normalise_identity(kind, raw, default_region=default_region, field="identity.value")


def model_row(model: type[Base], values: dict[str, Any]) -> dict[str, Any]:
    """Every column of ``model``'s table: ``values``, else the column's Python-side default, else
    None. The ORM writer builds its object from it and the SQL writer inserts it as a record, so
    a column the ORM would fill by default is not forgotten by the statement."""
    row: dict[str, Any] = {}
    for column in model.__table__.columns:
        if column.key in values:
            row[column.key] = values[column.key]
        elif column.default is None:
            row[column.key] = None
        elif column.default.is_scalar:
            row[column.key] = column.default.arg
        else:  # a callable default (new_id, utcnow, dict, list), wrapped by SQLAlchemy to take a context
            row[column.key] = column.default.arg(None)
    unknown = values.keys() - row.keys()
    assert not unknown, f"not columns of {model.__name__}: {unknown}"
    return row


@dataclass(frozen=True, slots=True)
class Reference:
    """A row the request points at: if none matches, the create is refused (422 naming ``field``)."""

    field: str
    model: type[Base]  # Queue, Interaction or Agent
    column: str  # "name" or "id"
    value: Any
    message: str

    @property
    def table(self) -> str:
        return self.model.__tablename__


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """A timeline event; the writer supplies the customer (and the interaction when ``of_interaction``)."""

    kind: str
    of_interaction: bool  # False: the customer's own event (customer_created)
    only_for_a_new_customer: bool
    channel: str | None
    actor_type: ActorType
    actor_id: str | None
    data: dict[str, Any]


@dataclass
class CreatePlan:
    """The create's decisions; the steps fill it in, the writers only execute it."""

    data: InteractionCreate
    actor_type: ActorType
    actor_id: str | None
    default_region: str
    agent_id: uuid.UUID | None
    claim: idempotency.Claim | None
    now: datetime
    interaction_id: uuid.UUID
    new_customer_id: uuid.UUID
    new_identity_id: uuid.UUID
    identity_value: str  # as given, until a step normalises it
    customer_name: str | None  # a new customer's display name
    customer_language: str | None  # a new customer's language
    subject: str | None
    attributes: dict[str, Any]
    state: State = State.CREATED
    version: int = 1
    queued_at: datetime | None = None
    language_from_customer: bool = False  # no language given: the customer's
    references: list[Reference] = field(default_factory=list)
    events: list[PlannedEvent] = field(default_factory=list)
    key_row: dict[str, Any] | None = None  # idempotency_keys, inserted with the interaction

    @property
    def kind(self) -> IdentityKind:
        return self.data.identity.kind

    @property
    def queue(self) -> str | None:
        """The queue's name: the writer looks its id up (none found: no queue)."""
        return self.data.queue

    @property
    def contact_identity(self) -> dict[str, str]:
        return {"kind": self.kind.value, "value": self.identity_value}

    @property
    def enqueue(self) -> bool:
        return self.state is State.QUEUED

    def new_customer_row(self) -> dict[str, Any]:
        """The customers row inserted when no customer holds the identity."""
        return model_row(
            Customer,
            {
                "id": self.new_customer_id,
                "display_name": self.customer_name,
                "language": self.customer_language,
                "created_at": self.now,
                "updated_at": self.now,
            },
        )

    def new_identity_row(self, customer_id: uuid.UUID | None) -> dict[str, Any]:
        return model_row(
            Identity,
            {
                "id": self.new_identity_id,
                "customer_id": customer_id,
                "kind": self.kind,
                "value": self.identity_value,
                "created_at": self.now,
            },
        )

    def interaction_row(self, customer_id: uuid.UUID | None, queue_id: uuid.UUID | None) -> dict[str, Any]:
        """The interactions row (``language`` None and ``language_from_customer``: the writer
        puts the customer's)."""
        data = self.data
        return model_row(
            Interaction,
            {
                "id": self.interaction_id,
                "customer_id": customer_id,
                "channel": data.channel,
                "direction": data.direction,
                "state": self.state,
                "version": self.version,
                "priority": data.priority,
                "queue_id": queue_id,
                "required_skills": dict(data.required_skills),
                "agent_id": self.agent_id,
                "subject": self.subject,
                "topic": data.topic,
                "language": data.language,
                "contact_identity": self.contact_identity,
                "attributes": self.attributes,
                "parent_id": data.parent_id,
                "callback_of_id": data.callback_of_id,
                "follow_up_of_id": data.follow_up_of_id,
                "created_at": self.now,
                "virtual_start_at": self.now,
                "queued_at": self.queued_at,
                "updated_at": self.now,
            },
        )

    def language(self, customer_language: str) -> str | None:
        if self.data.language is None and self.language_from_customer:
            return customer_language
        return self.data.language

    def event(self, kind: str, data: dict[str, Any]) -> PlannedEvent:
        """An event of the interaction, by the request's actor."""
        return PlannedEvent(kind, True, False, self.data.channel.value, self.actor_type, self.actor_id, data)


@dataclass(frozen=True)
class CreateStep:
    name: str
    apply: Callable[[CreatePlan], None]


def _normalise_identity(plan: CreatePlan) -> None:
    # Before anything is written: a malformed phone / email is a 422 naming identity.value.
    plan.identity_value = normalised_identity(plan.kind, plan.identity_value, plan.default_region)


def _reference(field_name: str, model: type[Base], what: str) -> Callable[[CreatePlan], None]:
    def apply(plan: CreatePlan) -> None:
        value = plan.agent_id if field_name == "agent_id" else getattr(plan.data, field_name)
        if value is not None:
            plan.references.append(Reference(field_name, model, "id", value, f"No {what} {value}"))

    return apply


def _queue_exists(plan: CreatePlan) -> None:
    if plan.queue is not None:
        plan.references.append(Reference("queue", Queue, "name", plan.queue, f"Unknown queue {plan.queue!r}"))


def _new_customer_defaults(plan: CreatePlan) -> None:
    plan.customer_name = plan.customer_name or placeholder_name(plan.kind, plan.identity_value)
    plan.customer_language = plan.customer_language or "en"


def _language_from_customer(plan: CreatePlan) -> None:
    plan.language_from_customer = True


def _mask_card_numbers(plan: CreatePlan) -> None:
    # The ORM's column types mask on the way in; the statement's parameters bypass them, so the
    # plan carries the masked text (masking is idempotent: the ORM masking it again is harmless).
    # After the events: their data is free text too (a chat id can be a card number).
    plan.subject = mask_card_numbers(plan.subject) if plan.subject is not None else None
    plan.attributes = mask_deep(plan.attributes)
    plan.customer_name = mask_card_numbers(plan.customer_name) if plan.customer_name is not None else None
    plan.events = [dataclasses.replace(e, data=mask_deep(e.data)) for e in plan.events]


def _customer_created_event(plan: CreatePlan) -> None:
    plan.events.append(
        PlannedEvent(
            "customer_created",
            False,
            True,
            None,
            ActorType.SYSTEM,
            None,
            customer_created_data(plan.kind, plan.identity_value),
        )
    )


def _interaction_created_event(plan: CreatePlan) -> None:
    data: dict[str, Any] = {
        "channel": plan.data.channel.value,
        "direction": plan.data.direction.value,
        "identity": plan.contact_identity,
        "queue": plan.queue,
        "priority": plan.data.priority,
    }
    if plan.agent_id is not None:
        data[AGENT_KEY] = str(plan.agent_id)
    plan.events.append(plan.event("interaction_created", data))


def _enqueue(plan: CreatePlan) -> None:
    # A brand-new row cannot race anyone: created -> queued is applied before the INSERT (one
    # INSERT, no UPDATE), with the bookkeeping and the event service.transition() writes.
    data = plan.data
    if not (data.enqueue if data.enqueue is not None else data.direction is Direction.INBOUND):
        return
    assert can_transition(State.CREATED, State.QUEUED)
    plan.state, plan.version, plan.queued_at = State.QUEUED, 2, plan.now
    plan.events.append(
        plan.event("state_changed", transition_data(State.CREATED, State.QUEUED, None, 2, {}, plan.agent_id))
    )


def _keep_idempotency_key(plan: CreatePlan) -> None:
    # With the interaction, in its transaction / statement: a twin request with the key then
    # fails on the primary key and replays (interactions.idempotency).
    if plan.claim is not None:
        plan.key_row = model_row(
            IdempotencyKey, idempotency.row_params(plan.claim, plan.interaction_id, plan.now)
        )


NORMALISE_IDENTITY = "the identity is normalised"
QUEUE_EXISTS = "the queue exists"
PARENT_EXISTS = "the parent interaction exists"
CALLBACK_EXISTS = "the called-back interaction exists"
FOLLOW_UP_EXISTS = "the followed-up interaction exists"
AGENT_EXISTS = "the agent exists"
NEW_CUSTOMER_DEFAULTS = "a new customer is named and has a language"
LANGUAGE_FROM_CUSTOMER = "no language given: the customer's"
MASK_CARD_NUMBERS = "card numbers are masked in free text"
CUSTOMER_CREATED_EVENT = "a new customer's creation is on its timeline"
INTERACTION_CREATED_EVENT = "the interaction's creation is on the timeline"
ENQUEUE = "inbound work is queued at once"
KEEP_IDEMPOTENCY_KEY = "the Idempotency-Key is kept with the interaction"

# In order: the references are checked, and refused, in this order; the events are written in it.
CREATE_STEPS: tuple[CreateStep, ...] = (
    CreateStep(NORMALISE_IDENTITY, _normalise_identity),
    CreateStep(QUEUE_EXISTS, _queue_exists),
    CreateStep(PARENT_EXISTS, _reference("parent_id", Interaction, "interaction")),
    CreateStep(CALLBACK_EXISTS, _reference("callback_of_id", Interaction, "interaction")),
    CreateStep(FOLLOW_UP_EXISTS, _reference("follow_up_of_id", Interaction, "interaction")),
    CreateStep(AGENT_EXISTS, _reference("agent_id", Agent, "agent")),
    CreateStep(NEW_CUSTOMER_DEFAULTS, _new_customer_defaults),
    CreateStep(LANGUAGE_FROM_CUSTOMER, _language_from_customer),
    CreateStep(CUSTOMER_CREATED_EVENT, _customer_created_event),
    CreateStep(INTERACTION_CREATED_EVENT, _interaction_created_event),
    CreateStep(ENQUEUE, _enqueue),
    CreateStep(MASK_CARD_NUMBERS, _mask_card_numbers),
    CreateStep(KEEP_IDEMPOTENCY_KEY, _keep_idempotency_key),
)


def plan_create(
    data: InteractionCreate,
    *,
    actor_type: ActorType,
    actor_id: str | None,
    default_region: str,
    agent_id: uuid.UUID | None = None,
    now: datetime | None = None,
    claim: idempotency.Claim | None = None,
) -> CreatePlan:
    """The plan for one create request (raises Invalid naming identity.value before any write)."""
    plan = CreatePlan(
        data=data,
        actor_type=actor_type,
        actor_id=actor_id,
        default_region=default_region,
        agent_id=agent_id,
        claim=claim,
        now=now or utcnow(),
        interaction_id=new_id(),
        new_customer_id=new_id(),
        new_identity_id=new_id(),
        identity_value=data.identity.value,
        customer_name=data.customer_name,
        customer_language=data.language,
        subject=data.subject,
        attributes=dict(data.attributes),
    )
    for step in CREATE_STEPS:  # read at call time: a test removes one step and sees both writers change
        step.apply(plan)
    return plan
