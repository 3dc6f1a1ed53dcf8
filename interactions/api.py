"""JSON routes (thin: parse, authorise, call service, shape the response)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from customers.identity import normalise_identity
from customers.models import Customer
from customers.service import find_identity
from interactions import idempotency, lean_create, service
from interactions.create_plan import CreatePlan, plan_create
from interactions.models import ActorType, Interaction, MessageSender
from interactions.schemas import (
    DispositionUpdate,
    InteractionCreate,
    InteractionFilters,
    InteractionPage,
    InteractionRead,
    MessageCreate,
    MessageRead,
    NoteCreate,
    TimelineEventRead,
    TimelinePage,
    TransitionRequest,
)
from interactions.states import Channel, Direction, State
from interactions.visibility import (
    Viewer,
    ensure_customer_visible,
    interaction_scope,
    outbound_reason,
    read_visible_interaction,
    viewer_for,
    visible_interaction,
)
from switchboard import commands as routing_commands
from switchboard.auth.models import Role, User
from switchboard.bounds import INT64_MAX, ApiDateTime
from switchboard.deps import (
    CurrentUser,
    DbSession,
    RequireAgent,
    RequireSupervisor,
    check_staff,
    get_current_user,
)
from switchboard.errors import Conflict, DomainError, Forbidden, Invalid, is_outage, outage_problem
from workforce.deps import agent_id_for_user

router = APIRouter(tags=["interactions"])

Limit = Annotated[int, Query(ge=1, le=service.MAX_PAGE)]


async def get_viewer(session: DbSession, user: CurrentUser) -> Viewer:
    return await viewer_for(session, user)


CurrentViewer = Annotated[Viewer, Depends(get_viewer)]


def _page(slice_: service.TimelineSlice) -> TimelinePage:
    return TimelinePage(
        items=[TimelineEventRead.model_validate(e) for e in slice_.items],
        next_before_id=slice_.next_before_id,
    )


@router.post(
    "/api/interactions",
    response_model=InteractionRead,
    status_code=status.HTTP_201_CREATED,
    responses={201: {"headers": {"Location": {"description": "URL of the new interaction"}}}},
    openapi_extra=idempotency.openapi(),
)
async def create_interaction(body: InteractionCreate, request: Request, user: RequireAgent) -> Response:
    """Create an interaction (resolving or creating the customer) and, by default for inbound, queue it.

    Agents may create only outbound interactions, which are attached to themselves; inbound contacts
    arrive through channel adapters or a supervisor.
    """
    return await _create(request, body, user)


async def _create(request: Request, body: InteractionCreate, user: User) -> Response:
    # The hot path of every contact: no request-scoped ORM session, the body serialised once.
    state = request.app.state
    db = state.db
    settings = state.settings
    is_agent = user.role is Role.AGENT
    if is_agent:
        if body.direction is not Direction.OUTBOUND:
            raise Forbidden("Agents may create only outbound interactions", field="direction")
        if body.enqueue:
            # The agent's own outbound work is already theirs; queueing it would hand it to routing.
            raise Invalid("An agent's outbound interaction is not queued", field="enqueue")
    claim = idempotency.claim_from(request.headers, scope=CREATE_SCOPE, owner=f"user:{user.id}", body=body)
    # An agent's create goes through the ORM path: it must show a reason for an existing customer.
    if db.is_sqlite or is_agent:
        async with db.sessionmaker() as session:
            return await _create_through_orm(session, request, body, user, claim, None)
    if claim is not None:
        async with db.sessionmaker() as session:
            first = await idempotency.replayed(session, claim)
            if first is not None:
                return await _replay(session, first)
            await session.commit()  # an expired key it deleted
    # ONE plan, executed by the statement or, when it hands back, by the ORM path.
    plan = plan_create(
        body,
        actor_type=ActorType.SUPERVISOR,
        actor_id=str(user.id),
        default_region=settings.default_phone_region,
        claim=claim,
    )
    try:
        created = await lean_create.execute(db.engine, plan)
    except lean_create.Fallback:
        pass  # nothing was written: the ORM path below decides the race (a key's included)
    else:
        await lean_create.announce(state.redis_client, created)
        return _created(created.body, created.interaction_id)
    async with db.sessionmaker() as session:
        return await _create_through_orm(session, request, body, user, claim, plan)


CREATE_SCOPE = "interactions"


class CreateShortcut:
    """``POST /api/interactions`` straight to its handler, past FastAPI's router and dependency
    solving (pure ASGI; the route above stays for the schema and for apps without it).

    Per request FastAPI matched ~17 routes across the included routers and solved the body and
    user dependencies: a measurable share of the create's CPU. Same semantics: a malformed JSON
    body is a 422 before anything else, then authentication (401 / 403 as ``RequireAgent``), then
    the body's validation (422 naming ``body.<field>``, as FastAPI does); errors go through the
    app's own exception handlers, so they are the same problem+json. Installed inside
    ``BodySizeLimit`` (which still answers oversize bodies) by the app factory.
    """

    PATH = "/api/interactions"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await _shortcut(request)
        except (DomainError, RequestValidationError) as exc:
            response = await _handled(request, exc)
        except StarletteHTTPException as exc:
            if exc.status_code == status.HTTP_413_CONTENT_TOO_LARGE:
                raise  # BodySizeLimit answers it
            response = await _handled(request, exc)
        except Exception as exc:
            if not is_outage(exc):
                raise
            response = outage_problem(request, exc)  # 503 + Retry-After, as the app's handlers
        await response(scope, receive, send)


async def _shortcut(request: Request) -> Response:
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    payload: Any = raw
    if not raw:
        payload = None
    elif _is_json(content_type):
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", exc.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": exc.msg},
                    }
                ]
            ) from exc
    user = await get_current_user(request)
    check_staff(user, Role.AGENT)
    try:
        body = InteractionCreate.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
        ) from exc
    return await _create(request, body, user)


def _is_json(content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    return main == "application/json" or (main.startswith("application/") and main.endswith("+json"))


async def _handled(request: Request, exc: Exception) -> Response:
    """The app's own handler for ``exc`` (the same problem+json FastAPI's route would send)."""
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            return await handler(request, exc)
    raise exc


def _created(body: bytes, interaction_id: uuid.UUID, *, replayed: bool = False) -> Response:
    headers = {"Location": f"/api/interactions/{interaction_id}"}
    if replayed:
        headers[idempotency.REPLAYED_HEADER] = "true"
    return Response(body, status_code=status.HTTP_201_CREATED, media_type="application/json", headers=headers)


async def _replay(session: AsyncSession, interaction_id: uuid.UUID) -> Response:
    """A retry's answer: the first request's interaction as it is now, flagged as a replay (the
    status stays the first answer's 201, as Stripe replays it)."""
    interaction = await service.get_interaction(session, interaction_id)
    read = (await service.read_models(session, [interaction]))[0]
    return _created(read.model_dump_json().encode(), read.id, replayed=True)


async def _agent_may_contact(
    session: AsyncSession, body: InteractionCreate, agent_id: uuid.UUID, default_region: str
) -> None:
    """An agent's outbound contact to an existing customer needs a reason, as on
    ``/api/interactions/outbound``: otherwise creating one would grant them the customer."""
    kind = body.identity.kind
    value = normalise_identity(
        kind, body.identity.value, default_region=default_region, field="identity.value"
    )
    existing = await find_identity(session, kind=kind, value=value)
    if existing is None:
        return  # a new contact: the customer is created by this very interaction
    customer = await session.get(Customer, existing.customer_id)
    assert customer is not None
    if (
        await outbound_reason(
            session, agent_id=agent_id, customer=customer, follow_up_of_id=body.follow_up_of_id
        )
        is None
    ):
        raise Forbidden(
            "An agent contacts an existing customer only with a reason (work of theirs with them now, "
            "a follow-up of their own contact, or as relationship manager); otherwise a supervisor does",
            field="identity.value",
        )


async def _create_through_orm(
    session: AsyncSession,
    request: Request,
    body: InteractionCreate,
    user: User,
    claim: idempotency.Claim | None,
    plan: CreatePlan | None,
) -> Response:
    """SQLite, agents, and the rare PostgreSQL request the statement hands back (its ``plan``)."""

    async def create() -> tuple[Interaction, uuid.UUID]:
        nonlocal plan
        if plan is None:
            viewer = await viewer_for(session, user)
            agent_id: uuid.UUID | None = None
            if user.role is Role.AGENT:
                agent_id = await agent_id_for_user(session, user.id)
                await _agent_may_contact(
                    session, body, agent_id, request.app.state.settings.default_phone_region
                )
            plan = plan_create(
                body,
                actor_type=viewer.actor.type,
                actor_id=viewer.actor.id,
                default_region=request.app.state.settings.default_phone_region,
                agent_id=agent_id,
                claim=claim,
            )
        # savepoint=False: any error below rolls the whole request transaction back.
        interaction = await service.execute_plan(session, plan, savepoint=False)
        return interaction, interaction.id

    async def replay(interaction_id: uuid.UUID) -> Interaction:
        return await service.get_interaction(session, interaction_id)

    # The plan carries the key row (recorded with the interaction), so ``once`` does not record it.
    interaction, replayed = await idempotency.once(session, claim, create, replay, record=False)
    if not replayed and interaction.state is State.QUEUED:
        await routing_commands.notify_enqueued(request.app.state.redis_client, interaction.id)
    read = (await service.read_models(session, [interaction]))[0]
    return _created(read.model_dump_json().encode(), read.id, replayed=replayed)


@router.get("/api/interactions", response_model=InteractionPage)
async def list_interactions(
    session: DbSession,
    viewer: CurrentViewer,
    state: State | None = None,
    channel: Channel | None = None,
    direction: Direction | None = None,
    customer_id: uuid.UUID | None = None,
    queue: Annotated[str | None, Query(max_length=60)] = None,
    agent_id: uuid.UUID | None = None,
    created_after: ApiDateTime | None = None,
    created_before: ApiDateTime | None = None,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> InteractionPage:
    """Newest first; staff filters combine with AND; agents and customers see only their own."""
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and value.tzinfo is None:
            raise Invalid("Give a time zone (e.g. 2024-05-01T09:00:00Z)", field=name)
    filters = InteractionFilters(
        state=state,
        channel=channel,
        direction=direction,
        customer_id=customer_id,
        queue=queue,
        agent_id=agent_id,
        created_after=created_after,
        created_before=created_before,
    )
    page = await service.list_interactions(
        session, filters=filters, limit=limit, cursor=cursor, scope=interaction_scope(viewer)
    )
    return InteractionPage(items=await service.read_models(session, page.items), next_cursor=page.next_cursor)


@router.get("/api/interactions/{interaction_id}", response_model=InteractionRead)
async def read_interaction(
    interaction_id: uuid.UUID, session: DbSession, viewer: CurrentViewer
) -> InteractionRead:
    interaction = await read_visible_interaction(session, viewer, interaction_id, what="interaction")
    return (await service.read_models(session, [interaction]))[0]


@router.post("/api/interactions/{interaction_id}/transition", response_model=InteractionRead)
async def transition_interaction(
    interaction_id: uuid.UUID, body: TransitionRequest, session: DbSession, user: RequireSupervisor
) -> InteractionRead:
    """Supervisor override of the state machine; routing drives the normal flow."""
    viewer = await viewer_for(session, user)
    interaction = await service.transition(
        session,
        interaction_id=interaction_id,
        to_state=body.to_state,
        actor_type=viewer.actor.type,
        actor_id=viewer.actor.id,
        reason=body.reason,
        expected_version=body.expected_version,
    )
    await session.commit()
    return (await service.read_models(session, [interaction]))[0]


@router.put("/api/interactions/{interaction_id}/disposition", response_model=InteractionRead)
async def set_disposition(
    interaction_id: uuid.UUID, body: DispositionUpdate, session: DbSession, user: RequireAgent
) -> InteractionRead:
    """Wrap-up code: the assigned agent, or a supervisor, while connected or in wrap-up."""
    viewer = await viewer_for(session, user)
    interaction = await visible_interaction(session, viewer, interaction_id)
    _require_assigned_or_supervisor(viewer, interaction.agent_id, "set the disposition")
    interaction = await service.set_disposition(
        session,
        interaction_id=interaction_id,
        disposition=body.disposition,
        actor=viewer.actor,
        expected_version=body.expected_version,
    )
    await session.commit()
    return (await service.read_models(session, [interaction]))[0]


@router.post(
    "/api/interactions/{interaction_id}/messages",
    response_model=MessageRead,
    status_code=status.HTTP_201_CREATED,
)
async def post_message(
    interaction_id: uuid.UUID, body: MessageCreate, session: DbSession, user: RequireAgent
) -> MessageRead:
    """Staff reply: the agent connected to this interaction, or a supervisor (e.g. barge-in)."""
    viewer = await viewer_for(session, user)
    interaction = await visible_interaction(session, viewer, interaction_id)
    _require_assigned_or_supervisor(viewer, interaction.agent_id, "write here")
    if not viewer.sees_all and interaction.state is not State.CONNECTED:
        raise Conflict(
            f"Agents write only on connected interactions, this one is {interaction.state.value}",
            field="interaction_id",
            state=interaction.state.value,
        )
    message = await service.post_message(
        session,
        interaction_id=interaction_id,
        sender=MessageSender.AGENT,
        author_id=user.id,
        body=body.body,
        content_type=body.content_type,
    )
    await session.commit()
    return MessageRead.model_validate(message)


@router.get("/api/interactions/{interaction_id}/messages", response_model=list[MessageRead])
async def list_messages(
    interaction_id: uuid.UUID,
    session: DbSession,
    viewer: CurrentViewer,
    after_id: Annotated[int | None, Query(ge=0, le=INT64_MAX)] = None,
    limit: Limit = 100,
) -> list[MessageRead]:
    """The thread oldest first; page forward with ``after_id`` (the last id you have)."""
    await read_visible_interaction(session, viewer, interaction_id, what="messages")
    messages = await service.list_messages(
        session, interaction_id=interaction_id, after_id=after_id, limit=limit
    )
    return [MessageRead.model_validate(m) for m in messages]


@router.post(
    "/api/interactions/{interaction_id}/notes",
    response_model=TimelineEventRead,
    status_code=status.HTTP_201_CREATED,
)
async def add_note(
    interaction_id: uuid.UUID, body: NoteCreate, session: DbSession, user: RequireAgent
) -> TimelineEventRead:
    """Internal note on the timeline; any staff member who can see the interaction."""
    viewer = await viewer_for(session, user)
    await visible_interaction(session, viewer, interaction_id)
    event = await service.add_note(session, interaction_id=interaction_id, actor=viewer.actor, body=body.body)
    await session.commit()
    return TimelineEventRead.model_validate(event)


@router.get("/api/interactions/{interaction_id}/timeline", response_model=TimelinePage)
async def interaction_timeline(
    interaction_id: uuid.UUID,
    session: DbSession,
    viewer: CurrentViewer,
    before_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    limit: Limit = 50,
) -> TimelinePage:
    """This interaction's events, newest first."""
    await read_visible_interaction(session, viewer, interaction_id, what="interaction timeline")
    return _page(
        await service.interaction_timeline(
            session,
            interaction_id=interaction_id,
            limit=limit,
            before_id=before_id,
            exclude_kinds=viewer.hidden_kinds,
        )
    )


@router.get("/api/customers/{customer_id}/timeline", response_model=TimelinePage)
async def customer_timeline(
    customer_id: uuid.UUID,
    session: DbSession,
    viewer: CurrentViewer,
    before_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    limit: Limit = 50,
) -> TimelinePage:
    """Cross-channel history of a customer (merged profiles included), newest first."""
    await ensure_customer_visible(session, viewer, customer_id)
    return _page(
        await service.customer_timeline(
            session,
            customer_id=customer_id,
            limit=limit,
            before_id=before_id,
            exclude_kinds=viewer.hidden_kinds,
        )
    )


def _require_assigned_or_supervisor(viewer: Viewer, agent_id: uuid.UUID | None, action: str) -> None:
    # Seeing an interaction (offered before) is not the same as working it now.
    if viewer.sees_all:
        return
    if viewer.agent_id is None or agent_id != viewer.agent_id:
        raise Forbidden(f"Only the assigned agent or a supervisor may {action}")
