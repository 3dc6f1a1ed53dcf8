"""The survey pass, an RQ job every 30 s (``switchboard.jobs.PERIODIC_JOBS``): invite the
customers of newly completed interactions, then deliver pending links.

1. **Invite**: completed interactions an agent answered (``connected_at`` set), ended within
   ``LOOKBACK``, with no invitation yet. ``surveys.plan`` decides; the invitation row is inserted
   with a timeline event (``survey_planned`` or ``survey_skipped`` with its reason) in one
   transaction. The unique ``interaction_id`` makes a second pass (or worker) a no-op.
2. **Deliver**: each pending invitation is claimed (``pending`` → ``sent`` by compare-and-set,
   committed), then the email or text goes out with no transaction open, then ``survey_sent`` is
   recorded. If the relay or carrier refuses, the claim is given back and a later pass retries.
   A worker killed between claim and send loses that one survey; asking twice is worse.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from customers.models import IdentityKind
from customers.timeline import append_event
from experience import surveys
from experience.survey_models import SurveyDelivery, SurveyInvitation, SurveyStatus
from interactions.chat_verify import send_sms
from interactions.email import outbound
from interactions.models import ActorType, Interaction
from interactions.states import State
from switchboard.db import Database, utcnow
from switchboard.errors import ServiceUnavailable
from switchboard.jobs import run_async
from switchboard.settings import Settings, get_settings

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=2)
BATCH = 200


@dataclass
class PassResult:
    invited: int = 0
    skipped: int = 0
    sent: int = 0
    failed: int = 0


async def _due(db: Database, now: datetime) -> list[uuid.UUID]:
    has_invitation = select(SurveyInvitation.id).where(SurveyInvitation.interaction_id == Interaction.id)
    async with db.sessionmaker() as session:
        ids = list(
            await session.scalars(
                select(Interaction.id)
                .where(
                    Interaction.state == State.COMPLETED,
                    Interaction.connected_at.is_not(None),
                    Interaction.ended_at >= now - LOOKBACK,
                    ~has_invitation.exists(),
                )
                .order_by(Interaction.ended_at)
                .limit(BATCH)
            )
        )
        await session.commit()
    return ids


async def _invite(db: Database, settings: Settings, interaction_id: uuid.UUID, now: datetime) -> bool | None:
    """Insert the invitation; True when a link is to be sent, False when not, None when another
    pass got there first."""
    async with db.sessionmaker() as session:
        interaction = await session.get(Interaction, interaction_id)
        assert interaction is not None
        planned = await surveys.plan(session, interaction, settings, now)
        invitation = planned.invitation
        session.add(invitation)
        append_event(
            session,
            customer_id=interaction.customer_id,
            interaction_id=interaction.id,
            kind="survey_skipped" if invitation.status == SurveyStatus.SKIPPED else "survey_planned",
            channel=interaction.channel.value,
            actor_type=ActorType.SYSTEM,
            actor_id="survey-pass",
            data={
                "delivery": invitation.delivery.value,
                "questions": invitation.questions,
                **({"reason": invitation.reason.value} if invitation.reason else {}),
            },
            at=now,
        )
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return None
    return invitation.status == SurveyStatus.PENDING


def _email(invitation: SurveyInvitation, to: str, settings: Settings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = "How did we do? One quick question"
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = outbound.new_message_id(settings.smtp_from)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not answer it
    days = settings.survey_link_days
    message.set_content(
        "Thank you for contacting us. Would you tell us how it went?\n\n"
        f"{surveys.link_url(invitation, settings)}\n\n"
        f"The link works once and for {days} days. You will not get another survey from us for a while.\n"
    )
    return message


async def _deliver(db: Database, settings: Settings, invitation_id: uuid.UUID, now: datetime) -> bool | None:
    """Send one pending invitation; True sent, False refused (retried later), None not ours."""
    async with db.sessionmaker() as session:
        claimed = await session.execute(
            update(SurveyInvitation)
            .where(SurveyInvitation.id == invitation_id, SurveyInvitation.status == SurveyStatus.PENDING)
            .values(status=SurveyStatus.SENT, sent_at=now)
        )
        invitation = await session.get(SurveyInvitation, invitation_id)
        interaction = await session.get(Interaction, invitation.interaction_id) if invitation else None
        kind = (
            IdentityKind.PHONE
            if invitation and invitation.delivery == SurveyDelivery.SMS
            else IdentityKind.EMAIL
        )
        address = await surveys.address_for(session, interaction, kind) if interaction else None
        await session.commit()
    if claimed.rowcount != 1 or invitation is None or interaction is None:  # type: ignore[attr-defined]
        return None
    try:
        if address is None:
            raise ServiceUnavailable("the customer's address has gone")
        if invitation.delivery == SurveyDelivery.SMS:
            link = surveys.link_url(invitation, settings)
            await send_sms(settings, to=address, body=f"Thanks for calling. How did we do? {link}")
        else:
            await outbound.send(_email(invitation, address, settings), outbound.Relay.from_settings(settings))
    except ServiceUnavailable as exc:
        log.warning("survey %s not sent, will retry: %s", invitation_id, exc.detail)
        async with db.sessionmaker() as session:
            await session.execute(
                update(SurveyInvitation)
                .where(SurveyInvitation.id == invitation_id)
                .values(status=SurveyStatus.PENDING, sent_at=None)
            )
            await session.commit()
        return False
    async with db.sessionmaker() as session:
        append_event(
            session,
            customer_id=interaction.customer_id,
            interaction_id=interaction.id,
            kind="survey_sent",
            channel=interaction.channel.value,
            actor_type=ActorType.SYSTEM,
            actor_id="survey-pass",
            data={"delivery": invitation.delivery.value, "questions": invitation.questions},
        )
        await session.commit()
    return True


async def survey_pass(db: Database, settings: Settings, *, now: datetime | None = None) -> PassResult:
    now = now or utcnow()
    result = PassResult()
    for interaction_id in await _due(db, now):
        to_send = await _invite(db, settings, interaction_id, now)
        if to_send is True:
            result.invited += 1
        elif to_send is False:
            result.skipped += 1
    async with db.sessionmaker() as session:
        pending = list(
            await session.scalars(
                select(SurveyInvitation.id)
                .where(SurveyInvitation.status == SurveyStatus.PENDING, SurveyInvitation.expires_at > now)
                .order_by(SurveyInvitation.created_at)
                .limit(BATCH)
            )
        )
        await session.commit()
    for invitation_id in pending:
        sent = await _deliver(db, settings, invitation_id, now)
        if sent is True:
            result.sent += 1
        elif sent is False:
            result.failed += 1
    return result


async def _run() -> PassResult:
    settings = get_settings()
    db = Database(settings.resolved_database_url, schema=settings.database_schema)
    try:
        return await survey_pass(db, settings)
    finally:
        await db.dispose()


def send_due_surveys_job() -> dict[str, int]:
    """RQ entry point (queued by name by the workers' maintenance pass)."""
    result = run_async(_run())
    log.info("survey pass: %s", result)
    return {
        "invited": result.invited,
        "skipped": result.skipped,
        "sent": result.sent,
        "failed": result.failed,
    }
