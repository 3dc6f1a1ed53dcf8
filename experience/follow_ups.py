"""Follow-ups: raised by alert rules (idempotently), worked by their owners, escalated once.

* **Raising** (:func:`evaluate`): every enabled rule reads the signals of its kind from the last
  ``LOOKBACK``; each match inserts ``(rule_id, event_key)``, which is unique in SQL, in its own
  transaction. A retried job, an overlapping run or a second worker hits the unique index and
  moves on: the same event never raises two follow-ups.
* **Escalation** (:func:`escalate_overdue`): an open or in-progress follow-up past its due time
  goes to the rule's escalation owner by a compare-and-set on its version with ``escalated_at``
  still empty, so it escalates once, whoever runs the job and however often.
* Every change a person makes is audited in its transaction; raising, escalating and state
  changes of a customer's follow-up are events on the customer's timeline.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from customers.timeline import append_event
from experience.models import AlertRule, FollowUp, FollowUpLink, FollowUpNote, FollowUpState, SignalKind
from experience.owners import resolve_owner
from experience.rules import compile_rule
from experience.schemas import FollowUpChange
from experience.signals import SCANNERS, Signal
from interactions.models import ActorType
from switchboard.audit import record_audit
from switchboard.auth.models import Role, User
from switchboard.db import utcnow
from switchboard.errors import Invalid, NotFound

log = logging.getLogger(__name__)

LOOKBACK = timedelta(hours=24)  # how far back each run looks for triggering events
OPEN_STATES = (FollowUpState.OPEN, FollowUpState.IN_PROGRESS)
# What an owner may move a follow-up to from each state ("escalated" by hand escalates it now).
TRANSITIONS: dict[FollowUpState, frozenset[FollowUpState]] = {
    FollowUpState.OPEN: frozenset(
        {FollowUpState.IN_PROGRESS, FollowUpState.RESOLVED, FollowUpState.ESCALATED}
    ),
    FollowUpState.IN_PROGRESS: frozenset(
        {FollowUpState.OPEN, FollowUpState.RESOLVED, FollowUpState.ESCALATED}
    ),
    FollowUpState.ESCALATED: frozenset({FollowUpState.IN_PROGRESS, FollowUpState.RESOLVED}),
    FollowUpState.RESOLVED: frozenset({FollowUpState.IN_PROGRESS}),
}


@dataclass(frozen=True)
class Evaluation:
    signals: int
    raised: int


async def _display_name(session: AsyncSession, user_id: uuid.UUID | None) -> str:
    if user_id is None:
        return "supervisors"
    return await session.scalar(select(User.display_name).where(User.id == user_id)) or "supervisors"


async def _timeline(
    session: AsyncSession, follow_up: FollowUp, kind: str, *, actor: User | None, data: dict[str, Any]
) -> None:
    if follow_up.customer_id is None:
        return
    first_link = await session.scalar(
        select(FollowUpLink.interaction_id).where(FollowUpLink.follow_up_id == follow_up.id).limit(1)
    )
    append_event(
        session,
        customer_id=follow_up.customer_id,
        interaction_id=first_link,
        kind=kind,
        actor_type=ActorType.SYSTEM
        if actor is None
        else ActorType.AGENT
        if actor.role == Role.AGENT
        else ActorType.SUPERVISOR,
        actor_id=actor.id if actor else None,
        data={"follow_up_id": str(follow_up.id), **data},
    )


async def _raise(session: AsyncSession, rule: AlertRule, signal: Signal, now: datetime) -> bool:
    """Insert one follow-up and what goes with it, in its own transaction; False if it exists."""
    owner = await resolve_owner(
        session,
        rule.owner_role,
        agent_id=signal.agent_id,
        customer_id=signal.customer_id,
        queue_id=signal.queue_id,
    )
    follow_up = FollowUp(
        rule_id=rule.id,
        rule_version=rule.version,
        event_key=signal.event_key,
        signal=signal.kind,
        title=signal.title[:200],
        topic=signal.topic[:80],
        customer_id=signal.customer_id,
        agent_id=signal.agent_id,
        queue_id=signal.queue_id,
        owner_role=rule.owner_role,
        owner_user_id=owner,
        escalation_role=rule.escalation_role,
        state=FollowUpState.OPEN,
        due_at=now + timedelta(minutes=rule.due_minutes),
        created_at=now,
        updated_at=now,
    )
    try:
        session.add(follow_up)
        await session.flush()  # the unique (rule_id, event_key) answers here
        session.add_all(
            FollowUpLink(follow_up_id=follow_up.id, interaction_id=iid)
            for iid in dict.fromkeys(signal.interaction_ids)
        )
        await session.flush()
        await _timeline(
            session,
            follow_up,
            "follow_up_raised",
            actor=None,
            data={"status": "open", "to": await _display_name(session, owner), "preview": follow_up.title},
        )
        await session.commit()
    except IntegrityError:
        await session.rollback()  # raised already (by an earlier run or another worker)
        return False
    return True


async def evaluate(
    session: AsyncSession, *, now: datetime | None = None, lookback: timedelta = LOOKBACK
) -> Evaluation:
    """Run every enabled rule over the signals of the last ``lookback``; safe to run any number
    of times, concurrently too."""
    now = now or utcnow()
    since = now - lookback
    rules = list(await session.scalars(select(AlertRule).where(AlertRule.enabled.is_(True))))
    by_kind: dict[SignalKind, list[AlertRule]] = {}
    for rule in rules:
        by_kind.setdefault(rule.signal, []).append(rule)
    candidates: list[tuple[AlertRule, Signal]] = []
    seen = 0
    for kind, kind_rules in by_kind.items():
        signals = await SCANNERS[kind](session, since, now)
        seen += len(signals)
        for rule in kind_rules:
            try:
                condition = compile_rule(rule.signal, rule.condition)
            except Invalid:  # validated when saved; a schema change may still orphan one
                log.warning("alert rule %s (%s) no longer compiles; skipped", rule.id, rule.name)
                continue
            matched = [s for s in signals if condition.evaluate(s.context)]
            if not matched:
                continue
            keys = [s.event_key for s in matched]
            raised_before = set(
                await session.scalars(
                    select(FollowUp.event_key).where(
                        FollowUp.rule_id == rule.id, FollowUp.event_key.in_(keys)
                    )
                )
            )
            candidates += [(rule, s) for s in matched if s.event_key not in raised_before]
    await session.commit()  # reads done: release the snapshot (and SQLite's write lock)
    raised = 0
    for rule, signal in candidates:
        raised += await _raise(session, rule, signal, now)
    return Evaluation(signals=seen, raised=raised)


async def _escalate(session: AsyncSession, follow_up: FollowUp, now: datetime, *, actor: User | None) -> bool:
    """Hand the follow-up to the next owner, once (compare-and-set); the caller commits."""
    next_owner = await resolve_owner(
        session,
        follow_up.escalation_role,
        agent_id=follow_up.agent_id,
        customer_id=follow_up.customer_id,
        queue_id=follow_up.queue_id,
    )
    if next_owner == follow_up.owner_user_id:
        next_owner = None  # no one above the owner in that role: every supervisor sees it
    period = follow_up.due_at - follow_up.created_at
    previous_owner = follow_up.owner_user_id
    result = await session.execute(
        update(FollowUp)
        .where(
            FollowUp.id == follow_up.id,
            FollowUp.version == follow_up.version,
            FollowUp.escalated_at.is_(None),
            FollowUp.state.in_(OPEN_STATES),
        )
        .values(
            state=FollowUpState.ESCALATED,
            escalated_at=now,
            escalated_from_user_id=previous_owner,
            owner_user_id=next_owner,
            due_at=now + period,
            version=FollowUp.version + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    await session.refresh(follow_up)
    await _timeline(
        session,
        follow_up,
        "follow_up_escalated",
        actor=actor,
        data={
            "status": "escalated",
            "to": await _display_name(session, next_owner),
            "preview": follow_up.title,
        },
    )
    return True


async def escalate_overdue(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Escalate every overdue open or in-progress follow-up that has not been escalated yet."""
    now = now or utcnow()
    ids = list(
        await session.scalars(
            select(FollowUp.id).where(
                FollowUp.state.in_(OPEN_STATES), FollowUp.escalated_at.is_(None), FollowUp.due_at < now
            )
        )
    )
    await session.commit()
    escalated = 0
    for follow_up_id in ids:
        follow_up = await session.get(FollowUp, follow_up_id, populate_existing=True)
        if follow_up is not None and await _escalate(session, follow_up, now, actor=None):
            escalated += 1
            await session.commit()
        else:
            await session.rollback()
    return escalated


# --------------------------------------------------------------------------- reading


def may_see(user: User, follow_up: FollowUp) -> bool:
    """Supervisors and admins see every follow-up; an agent only their own."""
    return user.role in (Role.SUPERVISOR, Role.ADMIN) or follow_up.owner_user_id == user.id


async def get_follow_up(
    session: AsyncSession, follow_up_id: uuid.UUID, user: User, *, lock: bool = False
) -> FollowUp:
    follow_up = await session.get(FollowUp, follow_up_id, with_for_update=lock)
    if follow_up is None or not may_see(user, follow_up):
        raise NotFound(f"No follow-up {follow_up_id}", field="follow_up_id")
    return follow_up


async def list_follow_ups(
    session: AsyncSession,
    user: User,
    *,
    owner: str = "all",
    states: list[FollowUpState] | None = None,
    signal: SignalKind | None = None,
    customer_id: uuid.UUID | None = None,
    overdue: bool | None = None,
    now: datetime | None = None,
    limit: int = 200,
) -> list[FollowUp]:
    """``owner``: "me", "unassigned", "all" or a user id. Agents only ever get their own."""
    now = now or utcnow()
    query = select(FollowUp)
    if user.role not in (Role.SUPERVISOR, Role.ADMIN) or owner == "me":
        query = query.where(FollowUp.owner_user_id == user.id)
    elif owner == "unassigned":
        query = query.where(FollowUp.owner_user_id.is_(None))
    elif owner != "all":
        try:
            query = query.where(FollowUp.owner_user_id == uuid.UUID(owner))
        except ValueError as exc:
            raise Invalid("owner is 'me', 'unassigned', 'all' or a user id", field="owner") from exc
    if states:
        query = query.where(FollowUp.state.in_(states))
    if signal is not None:
        query = query.where(FollowUp.signal == signal)
    if customer_id is not None:
        query = query.where(FollowUp.customer_id == customer_id)
    if overdue is not None:
        late = FollowUp.state.in_((*OPEN_STATES, FollowUpState.ESCALATED)) & (FollowUp.due_at < now)
        query = query.where(late if overdue else ~late)
    query = query.order_by(FollowUp.due_at, FollowUp.id).limit(limit)
    return list(await session.scalars(query))


async def links_and_notes(
    session: AsyncSession, follow_up_ids: list[uuid.UUID]
) -> tuple[dict[uuid.UUID, list[uuid.UUID]], dict[uuid.UUID, list[FollowUpNote]]]:
    links: dict[uuid.UUID, list[uuid.UUID]] = {i: [] for i in follow_up_ids}
    notes: dict[uuid.UUID, list[FollowUpNote]] = {i: [] for i in follow_up_ids}
    if not follow_up_ids:
        return links, notes
    for fid, iid in (
        await session.execute(
            select(FollowUpLink.follow_up_id, FollowUpLink.interaction_id).where(
                FollowUpLink.follow_up_id.in_(follow_up_ids)
            )
        )
    ).all():
        links[fid].append(iid)
    for note in await session.scalars(
        select(FollowUpNote).where(FollowUpNote.follow_up_id.in_(follow_up_ids)).order_by(FollowUpNote.at)
    ):
        notes[note.follow_up_id].append(note)
    return links, notes


def is_overdue(follow_up: FollowUp, now: datetime) -> bool:
    return follow_up.state != FollowUpState.RESOLVED and follow_up.due_at < now


async def open_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(FollowUp)
            .where(FollowUp.owner_user_id == user_id, FollowUp.state != FollowUpState.RESOLVED)
        )
        or 0
    )


# --------------------------------------------------------------------------- changing


async def change_follow_up(
    session: AsyncSession,
    follow_up_id: uuid.UUID,
    data: FollowUpChange,
    *,
    user: User,
    now: datetime | None = None,
) -> FollowUp:
    """An owner's (or a supervisor's) change: state, cause and/or a note; audited, one transaction."""
    now = now or utcnow()
    follow_up = await get_follow_up(session, follow_up_id, user, lock=True)
    note_text = (data.note or "").strip()
    if data.state is None and data.cause is None and not note_text:
        raise Invalid("Nothing to change: give a state, a cause or a note", field="state")
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if data.state is not None and data.state != follow_up.state:
        if data.state not in TRANSITIONS[follow_up.state]:
            raise Invalid(
                f"A follow-up that is {follow_up.state.value} cannot become {data.state.value}", field="state"
            )
        before["state"], after["state"] = follow_up.state, data.state
        if data.state == FollowUpState.ESCALATED:
            if follow_up.escalated_at is not None:
                raise Invalid("This follow-up has been escalated already", field="state")
            if not await _escalate(session, follow_up, now, actor=user):
                raise Invalid("This follow-up changed meanwhile; reload it", field="state")
            after["owner_user_id"] = str(follow_up.owner_user_id) if follow_up.owner_user_id else None
        else:
            follow_up.state = data.state
            follow_up.resolved_at = now if data.state == FollowUpState.RESOLVED else None
            follow_up.version += 1
            await _timeline(
                session,
                follow_up,
                f"follow_up_{data.state.value}",
                actor=user,
                data={"status": data.state.value.replace("_", " "), "preview": follow_up.title},
            )
    if data.cause is not None:
        cause = data.cause.strip().lower() or None
        if cause != follow_up.cause:
            before["cause"], after["cause"] = follow_up.cause, cause
            follow_up.cause = cause
    follow_up.updated_at = now
    if after:
        record_audit(
            session,
            actor_id=user.id,
            action="follow_up.update",
            entity_type="follow_up",
            entity_id=follow_up.id,
            before=before,
            after=after,
        )
    if note_text:
        note = FollowUpNote(follow_up_id=follow_up.id, author_user_id=user.id, body=note_text, at=now)
        session.add(note)
        await session.flush()
        record_audit(
            session,
            actor_id=user.id,
            action="follow_up.note",
            entity_type="follow_up",
            entity_id=follow_up.id,
            data={"note_id": str(note.id)},
        )
    await session.flush()
    return follow_up
